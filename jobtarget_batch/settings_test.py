"""Settings for the test suite: the project's settings, with messages kept in memory.

Submit messages stay in the process unless a test starts a broker and a worker itself (and says
so with CELERY_BROKER_URL). Subprocesses a test starts inherit this module through
DJANGO_SETTINGS_MODULE.
"""

from jobtarget_batch.settings import *  # noqa: F403
from jobtarget_batch.settings import broker_transport_options, env_str

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://localhost//")
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL)
# Tests compare the console's figures with the database they just wrote: no cached trends.
JTB_CONSOLE_TRENDS_CACHE_SECONDS = 0

"""Settings for the test suite: the project's settings, with messages kept in memory.

Submit messages stay in the process unless a test starts a broker and a worker itself (and says
so with CELERY_BROKER_URL). Subprocesses a test starts inherit this module through
DJANGO_SETTINGS_MODULE.
"""

import os
import secrets

# Tests and the runners and workers they start sign nothing that outlives them.
os.environ.setdefault("SECRET_KEY", "test-only-" + secrets.token_hex(24))

from jobtarget_batch.settings import *  # noqa: E402, F403
from jobtarget_batch.settings import DATA_DIR, broker_transport_options, env_str  # noqa: E402

# The test databases live in the data folder, which a fresh clone does not have yet.
DATA_DIR.mkdir(parents=True, exist_ok=True)

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://localhost//")
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL)
# Tests compare the console's figures with the database they just wrote: no cached trends.
JTB_CONSOLE_TRENDS_CACHE_SECONDS = 0

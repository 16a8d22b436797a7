"""`settings` for code that also runs before Django is set up.

The container runner claims its run, fetches the template and finds the job's environment
before it loads Django (runner/runtime/direct_db.py), and every millisecond there delays the
job. `django.conf` imports asyncio through asgiref (~20 ms), so the modules on that path read
settings through this proxy instead: Django's settings once they are configured (so tests'
`override_settings` and every Django process see exactly what Django sees), else the settings
module itself, which is where Django's would come from anyway.
"""

from __future__ import annotations

import importlib
import os
import sys


def settings_source():
    conf = sys.modules.get("django.conf")
    if conf is not None and conf.settings.configured:
        return conf.settings
    return importlib.import_module(os.environ.get("DJANGO_SETTINGS_MODULE", "jobtarget_batch.settings"))


class _Settings:
    def __getattr__(self, name: str):
        return getattr(settings_source(), name)


settings = _Settings()

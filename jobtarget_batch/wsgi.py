"""WSGI entry point (gunicorn jobtarget_batch.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobtarget_batch.settings")
application = get_wsgi_application()

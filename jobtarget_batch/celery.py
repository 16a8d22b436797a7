"""The Celery application: workers hand runs to the executor; beat drives periodic upkeep."""

import os

from celery import Celery

from jobtarget_batch.broker import transport_register

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobtarget_batch.settings")

# Before any connection is made: the default broker URL names our file-system transport.
transport_register()
app = Celery("jobtarget_batch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_broker_folders(sender, **kwargs):
    # The file-system broker needs its folders before the first message is sent.
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "claimed_folder", "control_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)

"""JobTarget Batch: define, schedule, run and monitor Python batch jobs from the Django admin."""

from jobtarget_batch.celery import app as celery_app

__all__ = ["celery_app"]

"""JobTarget Batch: define, schedule, run and monitor Python batch jobs from the Django admin.

The Celery app (jobtarget_batch.celery) is made current when Django starts (ProcessesConfig.ready),
not on importing this package: the container's runner reads settings before it loads Django and
must not pay for importing Celery before its template starts.
"""

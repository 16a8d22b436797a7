from django.apps import AppConfig


class ProcessesConfig(AppConfig):
    name = "processes"
    verbose_name = "Runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from runner.isolation import process_make_non_dumpable

        # Control-plane processes hold the secrets: job code running as the same user must not
        # read them from /proc/<pid>/environ (runner/isolation.py).
        process_make_non_dumpable()
        # Every process that loads Django sends tasks through the project's Celery app (its broker
        # settings), never Celery's default app: shared_task binds to the current app.
        from jobtarget_batch.celery import app

        app.set_current()
        # Register every app's tasks now, so drivers can send one by its name through the registry
        # (with the app's settings, task_always_eager included) without importing entry points.
        app.autodiscover_tasks(force=True)

from django.apps import AppConfig


class ProcessesConfig(AppConfig):
    name = "processes"
    verbose_name = "Runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every process that loads Django sends tasks through the project's Celery app (its broker
        # settings), never Celery's default app: shared_task binds to the current app.
        from jobtarget_batch.celery import app

        app.set_current()

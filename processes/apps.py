import os
from pathlib import Path

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _sqlite_folder_make() -> None:
    """SQLite makes its file but not its folder: a fresh data folder (the embedded default's var/)
    exists before the first connection. Done at start-up, not in settings (settings write nothing)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and database["NAME"] != ":memory:":
        Path(database["NAME"]).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_owner_only(sender, connection, **kwargs) -> None:
    """The embedded SQLite file holds every user's password hash and token: owner-only (0600).
    SQLite gives its -wal and -shm files the same mode."""
    if connection.vendor != "sqlite":
        return
    path = Path(connection.settings_dict["NAME"])
    try:
        if path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
            path.chmod(0o600)
    except (FileNotFoundError, ValueError, OSError):  # in-memory databases have no file
        pass


class ProcessesConfig(AppConfig):
    name = "processes"
    verbose_name = "Runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from runner.isolation import process_make_non_dumpable

        # Control-plane processes hold the secrets: job code running as the same user must not
        # read them from /proc/<pid>/environ (runner/isolation.py).
        process_make_non_dumpable()
        connection_created.connect(_sqlite_owner_only, dispatch_uid="jtb_sqlite_owner_only")
        _sqlite_folder_make()
        # Every process that loads Django sends tasks through the project's Celery app (its broker
        # settings), never Celery's default app: shared_task binds to the current app.
        from jobtarget_batch.celery import app

        app.set_current()
        # Register every app's tasks now, so drivers can send one by its name through the registry
        # (with the app's settings, task_always_eager included) without importing entry points.
        app.autodiscover_tasks(force=True)

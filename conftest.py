"""Fixtures shared by every test: a per-run test database, and settings for subprocess runners."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from django.conf import settings as django_settings

REPO = Path(__file__).resolve().parent
# Runners, workers and servers the tests start are not under pytest: with DEBUG off they need a
# signing key (settings refuse to start without one).
os.environ.setdefault("SECRET_KEY", "test-only-" + os.urandom(24).hex())


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle counters live in the cache; each test starts with none used."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    # A suffix per test session, so two suites (two developers, SQLite and PostgreSQL runs)
    # never share a test database.
    suffix = f"_{os.getpid()}"
    db = django_settings.DATABASES["default"]
    test = db.setdefault("TEST", {})
    if db["ENGINE"].endswith("sqlite3"):
        base = Path(test.get("NAME") or django_settings.DATA_DIR / "test.sqlite3")
        test["NAME"] = str(base.with_name(f"{base.stem}{suffix}{base.suffix}"))
    else:
        test["NAME"] = f"{test.get('NAME') or 'test_' + db['NAME']}{suffix}"


def database_url_for_subprocesses() -> str:
    """A DATABASE_URL naming the database the tests use right now (the test database)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    if db["ENGINE"].endswith("postgresql"):
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    raise RuntimeError(f"no subprocess URL for {db['ENGINE']}")


@pytest.fixture
def run_dirs(tmp_path, settings):
    """Private log and work folders for this test; job environments stay shared (they are a cache)."""
    settings.JTB_LOG_DIR = tmp_path / "logs"
    settings.JTB_WORK_DIR = tmp_path / "work"
    return {"JTB_LOG_DIR": str(settings.JTB_LOG_DIR), "JTB_WORK_DIR": str(settings.JTB_WORK_DIR)}


@pytest.fixture
def subprocess_env(run_dirs, transactional_db, settings):
    """Environment for a runner or worker started by a test: same database, folders and settings."""
    env = dict(os.environ)
    env.update(run_dirs)
    env["DATABASE_URL"] = database_url_for_subprocesses()
    env["JTB_TEMPLATE_ROOT"] = str(settings.JTB_TEMPLATE_ROOT)
    env["JTB_ENV_ROOT"] = str(settings.JTB_ENV_ROOT)
    env["JTB_HEARTBEAT_SECONDS"] = str(settings.JTB_HEARTBEAT_SECONDS)
    env["JTB_KILL_GRACE_SECONDS"] = str(settings.JTB_KILL_GRACE_SECONDS)
    env["EMAIL_BACKEND"] = "django.core.mail.backends.console.EmailBackend"
    # Messages a runner sends (releasing a queued run) must not land in the developer's broker.
    env["CELERY_BROKER_URL"] = "memory://localhost//"
    return env


@pytest.fixture
def local_templates(tmp_path, settings, subprocess_env, monkeypatch):
    """A template folder for runs the local executor's watcher starts in this test process: the
    settings and this process's environment (which its runners inherit) point at it."""
    root = tmp_path / "templates"
    root.mkdir()
    settings.JTB_TEMPLATE_ROOT = root
    for name, value in {**subprocess_env, "JTB_TEMPLATE_ROOT": str(root)}.items():
        monkeypatch.setenv(name, value)
    return root


def service_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is missing on a developer machine; fail under CI=true."""
    if service_reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: tests that need it must run)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def embedded_database(tmp_path_factory):
    """A migrated data folder of the embedded default (tests/embedded.py), made once per module:
    each test copies it (database_copy) instead of migrating again."""
    from tests.embedded import database_prepare

    template = tmp_path_factory.mktemp("embedded-template")
    database_prepare(template)
    return template


@pytest.fixture(scope="session")
def moto_session(tmp_path_factory):
    from tests.moto import start_moto

    server = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def moto_server(moto_session, settings, monkeypatch):
    """A clean moto server that every AWS client of the code under test talks to."""
    from runner.aws.client import aws_clients_reset
    from tests.moto import FAKE_CREDENTIALS

    moto_session.reset()
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_session.url)
    settings.AWS_ENDPOINT_URL = moto_session.url
    settings.AWS_REGION = FAKE_CREDENTIALS["AWS_REGION"]
    aws_clients_reset()
    yield moto_session
    aws_clients_reset()


@pytest.fixture(scope="session", autouse=True)
def _end_stray_database_sessions(django_db_setup, django_db_blocker):
    """Before the test database is dropped, end sessions a stray subprocess still holds on it
    (a runner or worker a failed test left behind), so the drop cannot fail and leave it behind."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def make_job(db):
    """The one job factory (tests/support.py): saved through the service, validated, unique names."""
    from tests.support import make_job

    return make_job


@pytest.fixture
def no_dispatch():
    """Dispatch messages are dropped: for tests of what is recorded, not of what runs."""
    from unittest import mock

    with mock.patch("processes.tasks.submit_processes.delay") as delay:
        yield delay


@pytest.fixture
def celery_eager():
    """Tasks run in the calling thread, retries included (eager mode ignores countdowns). Errors are
    not propagated: with propagation, Celery raises a task's own `retry()` instead of retrying."""
    from jobtarget_batch.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = saved

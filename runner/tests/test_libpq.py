"""runner/libpq.py: the container runner's PostgreSQL client before Django (and psycopg) load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_service
from runner.libpq import Connection, LibpqError

REPO = Path(__file__).resolve().parents[2]
SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


@pytest.fixture
def connection():
    require_service("PostgreSQL", "127.0.0.1", 5432)
    with Connection(**SERVER, connect_timeout=10) as conn:
        yield conn


def test_text_parameters_and_results_with_nulls_and_unicode(connection):
    rows, _ = connection.execute(
        "SELECT %s::int + 1, %s::jsonb, %s::text, %s::text IS NULL",
        [41, json.dumps({"name": "Zoë ☃"}), None, None],
    )
    assert rows == [("42", '{"name": "Zoë ☃"}', None, "t")]


def test_affected_rows_and_a_transaction(connection):
    connection.execute("CREATE TEMPORARY TABLE claim_probe (id int, status text)")
    connection.execute("INSERT INTO claim_probe VALUES (1, 'queued'), (2, 'running')")
    connection.execute("BEGIN")
    _, updated = connection.execute(
        "UPDATE claim_probe SET status = %s WHERE status IN (%s, %s)", ["running", "queued", "submitted"]
    )
    connection.execute("ROLLBACK")
    rows, _ = connection.execute("SELECT status FROM claim_probe ORDER BY id")
    assert updated == 1 and rows == [("queued",), ("running",)]


def test_errors_are_raised_with_the_server_message(connection):
    with pytest.raises(LibpqError, match="no_such_table"):
        connection.execute("SELECT * FROM no_such_table")
    assert connection.execute("SELECT 1")[0] == [("1",)]  # the connection is still usable
    with pytest.raises(LibpqError, match="2 placeholders for 1 parameters"):
        connection.execute("SELECT %s, %s", [1])


def test_a_refused_connection_is_an_error_not_a_crash():
    require_service("PostgreSQL", "127.0.0.1", 5432)
    with pytest.raises(LibpqError, match="no_such_database"):
        Connection(**{**SERVER, "dbname": "no_such_database"}, connect_timeout=10)


def test_the_container_claim_and_preparation_modules_load_neither_psycopg_nor_django_settings(tmp_path):
    """What the container runner imports before the template starts delays every job
    (bench/runner_startup.py, `container_vs_bare`): the direct claim and the work folder's
    preparation must not pull in psycopg or django.conf."""
    script = (
        "import sys\n"
        "import runner.runtime.runner, runner.runtime.direct_db, runner.runtime.workdir\n"
        "from jobtarget_batch.conf import settings\n"
        "assert settings.JTB_WORK_DIR\n"
        "print(sorted(name for name in ('psycopg', 'django.conf', 'logging', 'packaging.requirements', 'django.core.validators')"
        " if name in sys.modules))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "jobtarget_batch.settings",
           "SECRET_KEY": "test-only", "JTB_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

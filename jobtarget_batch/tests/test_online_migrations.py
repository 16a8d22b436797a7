"""Index migrations of the history tables: CONCURRENTLY on PostgreSQL, plain on SQLite and SQL Server."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import NotSupportedError

from conftest import require_service
from jobtarget_batch.online_migrations import _online

MIGRATION = ("processes", "0005_history_scale_indexes")
ADDED = ["process_job_newest_idx", "process_trigger_newest_idx", "process_user_newest_idx", "process_external_id_idx",
         "process_created_newest_idx", "task_unsuccessful_newest_idx"]
# The automatic one-column foreign key indexes that other indexes made redundant.
DROPPED = ["process_created_idx", "processes_process_job_id_ca3cb1a3", "processes_process_triggered_by_id_c67ac918",
           "processes_task_process_id_a89502ca"]


def sqlmigrate(database_url: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", "sqlmigrate", *MIGRATION], cwd=settings.BASE_DIR, capture_output=True,
        text=True, timeout=120, env={**os.environ, "DATABASE_URL": database_url},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.postgres
def test_postgres_builds_and_drops_every_history_index_concurrently_outside_a_transaction():
    require_service("PostgreSQL", "127.0.0.1", 5432)
    sql = sqlmigrate("postgres://postgres@127.0.0.1:5432/postgres")
    assert "BEGIN;" not in sql
    for name in ADDED:
        assert f'CREATE INDEX CONCURRENTLY "{name}"' in sql
    for name in DROPPED:
        assert f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"' in sql
    assert "WHERE \"status\" IN ('running', 'failed')" in sql


def test_sqlite_uses_the_plain_statements(tmp_path):
    sql = sqlmigrate(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert "CONCURRENTLY" not in sql
    for name in ADDED:
        assert f'CREATE INDEX "{name}"' in sql
    for name in DROPPED:
        assert f'DROP INDEX "{name}"' in sql


def test_sql_server_renders_plain_index_statements_with_the_names_it_created():
    """SQL Server cannot run here: render the DDL of every migration (as the settings test does)."""
    if not ctypes.util.find_library("odbc"):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("libodbc2 is missing (CI=true: .ci/run installs it)")
        pytest.skip("pyodbc needs unixODBC's libodbc (apt-get install libodbc2)")
    result = subprocess.run([sys.executable, "-m", "jobtarget_batch.tests.mssql_sql"], cwd=settings.BASE_DIR,
                            env={**os.environ, "DATABASE_URL": "mssql://sa:pw@127.0.0.1:1433/jobs"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    initial, _, ours = result.stdout.partition("-- processes.0005_history_scale_indexes")
    assert ours and "CONCURRENTLY" not in ours
    for name in ADDED:
        assert f"CREATE INDEX [{name}] ON" in ours
    # Filtered indexes on SQL Server take no NOT: the partial index is an IN list.
    assert "([status], [id] DESC) WHERE [status] IN ('running', 'failed')" in ours
    for name in DROPPED:
        table = "processes_task" if "task" in name else "processes_process"
        assert f"DROP INDEX [{name}] ON [{table}]" in ours
        assert f"CREATE INDEX [{name}] ON [{table}]" in initial


def test_an_online_index_change_inside_a_transaction_is_refused_with_the_fix():
    editor = SimpleNamespace(connection=SimpleNamespace(vendor="postgresql", in_atomic_block=True))
    with pytest.raises(NotSupportedError, match="atomic = False"):
        _online(editor)
    editor.connection.in_atomic_block = False
    assert _online(editor) is True
    editor.connection.vendor = "microsoft"
    assert _online(editor) is False

import ctypes.util
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from jobtarget_batch.env import env_bool, env_int, env_str, parse_database_url


def test_postgres_url_becomes_a_psycopg_database():
    config = parse_database_url("postgres://jobs:s%40cret@db.internal:5433/batch?sslmode=require")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["NAME"], config["USER"], config["PASSWORD"]) == ("batch", "jobs", "s@cret")
    assert (config["HOST"], config["PORT"]) == ("db.internal", "5433")
    assert config["OPTIONS"] == {"sslmode": "require"}


def test_mssql_url_uses_mssql_django_with_the_python_driver_by_default():
    config = parse_database_url("mssql://sa:pw@sql.internal:1433/jobs")
    assert config["ENGINE"] == "mssql"
    assert config["OPTIONS"] == {"python_driver": "mssql_python"}


def test_mssql_url_with_an_odbc_driver_keeps_it():
    config = parse_database_url("mssql://sa:pw@sql.internal/jobs?driver=ODBC+Driver+18+for+SQL+Server")
    assert config["OPTIONS"] == {"driver": "ODBC Driver 18 for SQL Server"}


def test_sqlite_url_keeps_the_path_and_concurrency_options():
    config = parse_database_url("sqlite:////tmp/x.sqlite3")
    assert config["NAME"] == "/tmp/x.sqlite3"
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


@pytest.mark.parametrize("url", ["mysql://x/y", "postgres://host:5432/", "postgres://host:notaport/db", "sqlite://"])
def test_unsupported_or_incomplete_database_urls_are_refused(url):
    with pytest.raises(ImproperlyConfigured):
        parse_database_url(url)


def test_strict_helpers_name_the_variable_on_bad_values(monkeypatch):
    monkeypatch.setenv("JTB_X", "maybe")
    with pytest.raises(ImproperlyConfigured, match="JTB_X"):
        env_bool("JTB_X")
    monkeypatch.setenv("JTB_Y", "ten")
    with pytest.raises(ImproperlyConfigured, match="JTB_Y"):
        env_int("JTB_Y", 1)
    monkeypatch.setenv("JTB_Y", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("JTB_Y", 1, minimum=1)


def test_secret_can_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    monkeypatch.delenv("JTB_SECRET", raising=False)
    monkeypatch.setenv("JTB_SECRET_FILE", str(secret))
    assert env_str("JTB_SECRET") == "from-file"


def test_bad_setting_stops_start_up_with_its_name():
    env = {**os.environ, "JTB_LOCAL_SLOTS": "lots"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "JTB_LOCAL_SLOTS must be a whole number" in result.stderr


def test_embedded_default_is_sqlite_and_a_file_system_broker():
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='jobtarget_batch.settings'; django.setup();"
            "from django.conf import settings as s; print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.JTB_EXECUTOR)")
    result = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.split() == ["django.db.backends.sqlite3", "jtb-filesystem://localhost//", "local"], result.stderr


def test_sql_server_settings_path_loads_mssql_django_and_renders_every_migration():
    """SQL Server cannot run here: check as far as we can — backend, driver option, DDL of our models."""
    if not ctypes.util.find_library("odbc"):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("libodbc2 is missing (CI=true: .ci/run installs it)")
        pytest.skip("pyodbc needs unixODBC's libodbc (apt-get install libodbc2)")
    env = {**os.environ, "DATABASE_URL": "mssql://sa:pw@127.0.0.1:1433/jobs"}
    result = subprocess.run([sys.executable, "-m", "jobtarget_batch.tests.mssql_sql"], cwd=settings.BASE_DIR,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    sql = result.stdout
    assert "vendor=microsoft" in sql and "'python_driver': 'mssql_python'" in sql
    assert "CREATE TABLE [processes_process]" in sql
    assert "CREATE UNIQUE INDEX [process_one_run_per_schedule_tick]" in sql
    assert "CONSTRAINT [process_status_valid] CHECK" in sql
    assert "CREATE UNIQUE INDEX [task_one_row_per_step]" in sql or "[task_one_row_per_step] UNIQUE" in sql

"""Hardened defaults: `check --deploy` is clean under the documented production environment, the
app refuses to start without a signing key, and the files it writes are owner-only."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The production environment docs/security.md documents (besides DATABASE_URL and the broker).
PRODUCTION = {
    "DEBUG": "false", "ALLOWED_HOSTS": "jobs.example.com", "CSRF_TRUSTED_ORIGINS": "https://jobs.example.com",
    "JTB_HTTPS": "true", "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https",
    # Where the control plane runs as root, templates run as an unprivileged user (runner/isolation.py).
    "JTB_TEMPLATE_USER": "nobody",
}


def manage(*args: str, env: dict[str, str], data_dir: Path) -> subprocess.CompletedProcess:
    # Only what a production host would have: no settings, and no test-only Django switches.
    base = {key: value for key, value in os.environ.items()
            if not key.startswith(("SECRET_KEY", "DEBUG", "JTB_", "SECURE_", "DATABASE_URL", "DJANGO_"))}
    base.update({"JTB_DATA_DIR": str(data_dir), **env})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=base, capture_output=True, text=True,
                          timeout=300)


def test_check_deploy_is_clean_under_the_documented_production_environment(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING",
                    env={**PRODUCTION, "SECRET_KEY": secrets.token_urlsafe(50)}, data_dir=tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "no issues" in result.stdout


def test_check_deploy_names_the_https_settings_left_off_by_default(tmp_path):
    result = manage("check", "--deploy", env={"SECRET_KEY": secrets.token_urlsafe(50)}, data_dir=tmp_path)

    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr + result.stdout


def test_with_debug_off_the_app_refuses_to_start_without_a_secret_key_and_writes_none(tmp_path):
    result = manage("check", env={}, data_dir=tmp_path)

    assert result.returncode != 0
    # One line saying what to do, not a traceback ending in "Models aren't loaded yet".
    assert result.stderr.startswith("Configuration error: SECRET_KEY is not set"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_the_embedded_default_starts_after_make_runs_key_step_with_owner_only_files(tmp_path):
    made = subprocess.run([sys.executable, "-m", "jobtarget_batch.secret_key_file"], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "JTB_DATA_DIR": str(tmp_path)}, timeout=60)
    assert made.returncode == 0, made.stderr
    key = (tmp_path / "secret_key").read_text()

    result = manage("migrate", "--no-input", env={}, data_dir=tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]
    assert len(key) >= 50
    for name in ("secret_key", "db.sqlite3"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    # Running the step again keeps the key (sessions survive restarts).
    subprocess.run([sys.executable, "-m", "jobtarget_batch.secret_key_file"], cwd=REPO, check=True,
                   env={**os.environ, "JTB_DATA_DIR": str(tmp_path)}, capture_output=True, timeout=60)
    assert (tmp_path / "secret_key").read_text() == key


def test_an_existing_world_readable_database_file_is_made_owner_only(tmp_path):
    db = tmp_path / "db.sqlite3"
    db.touch()
    db.chmod(0o644)

    # Settings write no files: the first connection makes it owner-only (processes.apps).
    result = manage("migrate", "--no-input", env={"SECRET_KEY": "x" * 60}, data_dir=tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


@pytest.mark.parametrize(("value", "expected"), [
    ("X-Forwarded-Proto: https", ("HTTP_X_FORWARDED_PROTO", "https")),
])
def test_the_proxy_ssl_header_is_read_from_the_environment(tmp_path, value, expected):
    result = manage("shell", "-c", "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)",
                    env={"SECRET_KEY": "x" * 60, "SECURE_PROXY_SSL_HEADER": value}, data_dir=tmp_path)

    assert result.stdout.strip().splitlines()[-1] == str(expected)


def test_a_malformed_proxy_ssl_header_stops_the_start_with_its_name(tmp_path):
    result = manage("check", env={"SECRET_KEY": "x" * 60, "SECURE_PROXY_SSL_HEADER": "https"}, data_dir=tmp_path)

    assert result.returncode != 0 and "SECURE_PROXY_SSL_HEADER" in result.stderr


def test_the_aws_executor_without_template_buckets_fails_the_system_check(settings):
    from jobs.checks import check_template_buckets

    settings.JTB_EXECUTOR = "aws_batch"
    settings.JTB_TEMPLATE_BUCKETS = []
    assert [error.id for error in check_template_buckets(None)] == ["jobtarget_batch.E101"]
    settings.JTB_TEMPLATE_BUCKETS = ["jtb-templates"]
    assert check_template_buckets(None) == []

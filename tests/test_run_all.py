"""What `make run` starts, on the embedded default: a fresh data folder, SQLite, the file-system
broker, gunicorn, both workers and beat — and a job run through all of it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

# The embedded default is SQLite whatever the suite runs on: only the SQLite half runs these.
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=timeout)


def wait_for_http(url: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def embedded_env(tmp_path):
    """The environment of a fresh machine: nothing set but a private data folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "CELERY_", "JTB_", "DJANGO_SUPERUSER", "DJANGO_SETTINGS"))}
    env.update({"JTB_DATA_DIR": str(tmp_path / "var"), "PORT": str(free_port())})
    return env


def test_bootstrap_creates_an_admin_with_a_password_printed_once_and_the_example_jobs(embedded_env):
    assert manage("migrate", "--no-input", env=embedded_env).returncode == 0
    first = manage("bootstrap", env=embedded_env)
    assert first.returncode == 0, first.stderr
    assert "Created admin user 'admin' with password: " in first.stdout
    assert "Created 3 example job(s)." in first.stdout
    again = manage("bootstrap", env=embedded_env)
    assert "password" not in again.stdout and "example job" not in again.stdout
    check = manage("shell", "--no-imports", "-c", "from jobs.models import Job; from runner.template_source import template_fetch;"
                   "print(sorted(len(template_fetch(j.template)) > 0 for j in Job.objects.all()))", env=embedded_env)
    assert check.stdout.strip().endswith("[True, True, True]"), check.stderr


def test_run_all_serves_the_admin_and_runs_a_job_until_ctrl_c(embedded_env):
    env = {**embedded_env, "DJANGO_SUPERUSER_PASSWORD": "a-long-test-password", "JTB_LOCAL_SLOTS": "2"}
    assert manage("migrate", "--no-input", env=env).returncode == 0
    assert manage("bootstrap", env=env).returncode == 0
    system = subprocess.Popen([sys.executable, "manage.py", "run_all"], cwd=settings.BASE_DIR, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for_http(f"http://127.0.0.1:{env['PORT']}/admin/login/") == 200
        started = manage("shell", "--no-imports", "-c",
                         "from jobs.models import Job; from processes.services import process_start;"
                         "print(process_start(job=Job.objects.get(name='Hello world'), trigger='manual').pk)", env=env)
        process_id = started.stdout.strip().splitlines()[-1]
        status = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and status not in ("succeeded", "failed"):
            time.sleep(1)
            status = manage("shell", "--no-imports", "-c", f"from processes.models import Process; "
                            f"print(Process.objects.get(pk={process_id}).status)", env=env).stdout.strip()
        assert status == "succeeded"
    finally:
        system.send_signal(signal.SIGINT)
        output, _ = system.communicate(timeout=60)
    assert system.returncode == 0
    assert "JobTarget Batch is running" in output
    # A quiet terminal: the banner, the run's outcome, no access or INFO lines; those are in files.
    assert f"Run {process_id} (Hello world) succeeded in " in output
    assert "INFO" not in output and "GET /admin/login/" not in output, output
    logs = Path(env["JTB_DATA_DIR"]) / "logs"
    assert "GET /admin/login/" in (logs / "web-access.log").read_text()
    assert "INFO" in (logs / "beat.log").read_text()


def test_make_run_banner_shows_the_admin_url_user_one_time_password_and_log_folder(embedded_env):
    """`make run` is `run_all --setup`: migrate, bootstrap, then a banner a new user can act on."""
    system = subprocess.Popen([sys.executable, "manage.py", "run_all", "--setup"], cwd=settings.BASE_DIR,
                              env=embedded_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for_http(f"http://127.0.0.1:{embedded_env['PORT']}/admin/login/", timeout=240) == 200
    finally:
        system.send_signal(signal.SIGINT)
        output, _ = system.communicate(timeout=60)
    assert system.returncode == 0, output
    password = re.search(r"User:\s+admin\s+password: (\S+)\s+\(shown once", output)
    assert password, output
    assert f"Admin:  http://127.0.0.1:{embedded_env['PORT']}/admin/" in output
    assert f"Logs:   {Path(embedded_env['JTB_DATA_DIR']).resolve() / 'logs'}/" in output
    login = manage("shell", "--no-imports", "-c", "from django.contrib.auth.models import User; "
                   f"print(User.objects.get(username='admin').check_password({password.group(1)!r}))",
                   env=embedded_env)
    assert login.stdout.strip().endswith("True"), login.stderr
    # A second start has no new password to show, and says so.
    assert "(password set at first start)" in run_until_answering(embedded_env)


def run_until_answering(env: dict) -> str:
    system = subprocess.Popen([sys.executable, "manage.py", "run_all", "--setup"], cwd=settings.BASE_DIR, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{env['PORT']}/admin/login/", timeout=240)
    finally:
        system.send_signal(signal.SIGINT)
        output, _ = system.communicate(timeout=60)
    return output

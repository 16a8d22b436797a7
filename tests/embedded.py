"""The embedded system as `make run` starts it, driven from outside like a user would: `manage.py
run_all` in a private data folder, the REST API over HTTP, and the SQLite file read directly.

Used by the fault tests (tests/test_run_all_faults.py) and the soak benchmark (bench/soak_local.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "a-long-test-password"
ACTIVE = ("queued", "submitted", "running")
FINISHED = ("succeeded", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_environment(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """A fresh machine's environment: nothing set but a private data folder (and what a test adds)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "CELERY_", "JTB_", "DJANGO_SUPERUSER", "DJANGO_SETTINGS"))}
    env.update({"JTB_DATA_DIR": str(data_dir), "PORT": str(port), "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
                "PYTHONUNBUFFERED": "1", **extra})
    return env


def manage(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def database_prepare(data_dir: Path) -> None:
    """Migrate and bootstrap a data folder (the slow part of a first start, done once and copied)."""
    env = embedded_environment(data_dir, free_port())
    # make run's first step: the signing key file (settings refuse to start without a key).
    subprocess.run([sys.executable, "-m", "jobtarget_batch.secret_key_file"], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=120)
    for args in (("migrate", "--no-input"), ("bootstrap",)):
        result = manage(*args, env=env)
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {result.stderr[-2000:]}")


def database_copy(template: Path, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    # The secret key too: the admin's password hashes do not depend on it, sessions would.
    for name in ("db.sqlite3", "secret_key"):
        shutil.copy2(template / name, data_dir / name)


class EmbeddedSystem:
    def __init__(self, data_dir: Path, port: int | None = None, **env: str):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.env = embedded_environment(data_dir, self.port, **env)
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.output_path = data_dir / "run_all.out"
        self._token: str | None = None

    # --- the supervisor ----------------------------------------------------------------------
    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        output = open(self.output_path, "ab")
        self.process = subprocess.Popen([sys.executable, "manage.py", "run_all"], cwd=REPO, env=self.env,
                                        stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        output.close()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        """Send Ctrl-C (or `sig`) and wait for the supervisor to exit; returns its exit code."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def children(self) -> dict[str, int]:
        """{child name: pid} as the supervisor recorded them."""
        try:
            recorded = json.loads((self.data_dir / "run_all.groups.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {name: int(pgid) for name, (pgid, _) in recorded.items()}

    def wait_answering(self, timeout: float = 120) -> float:
        """Seconds until the login page answers 200."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"run_all exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/admin/login/", timeout=3) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"{self.base} did not answer within {timeout} s:\n{self.output()[-3000:]}")

    # --- the API --------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> tuple[int, object]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Token {self._token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}/api/v1/{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, text.decode(errors="replace")

    def login(self) -> None:
        status, answer = self.api("POST", "auth/token/", {"username": "admin", "password": PASSWORD})
        assert status == 200, answer
        self._token = answer["token"]

    def runs_start(self, job_id: int, count: int, seconds: float) -> list[int]:
        """`count` runs of the job in one bulk request, each told to last `seconds`; their ids."""
        status, answer = self.api("POST", "runs/", {
            "runs": [{"job": job_id, "parameters": {"seconds": seconds}} for _ in range(count)]
        })
        assert status == 202, answer
        return [run["id"] for run in answer]

    def job_create(self, name: str, template: str, **fields) -> int:
        status, answer = self.api("POST", "jobs/", {"name": name, "template": template, **fields})
        assert status == 201, answer
        return answer["id"]

    # --- the database, read directly ----------------------------------------------------------
    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        deadline = time.monotonic() + 30
        while True:
            try:
                with sqlite3.connect(f"file:{self.data_dir / 'db.sqlite3'}?mode=ro", uri=True, timeout=10) as db:
                    return db.execute(sql, params).fetchall()
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def statuses(self, ids: list[int] | None = None) -> dict[int, tuple[str, str]]:
        """{process id: (status, failure reason)}."""
        rows = self.query("SELECT id, status, failure_reason FROM processes_process")
        wanted = set(ids) if ids is not None else None
        return {pk: (status, reason) for pk, status, reason in rows if wanted is None or pk in wanted}

    def wait_all_finished(self, ids: list[int], timeout: float) -> dict[int, tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            current = self.statuses(ids)
            if all(current.get(pk, ("",))[0] in FINISHED for pk in ids) or time.monotonic() > deadline:
                return current
            time.sleep(1)

    def runner_starts(self) -> dict[int, int]:
        """{process id: how many runners started it}, from the runners' own lines in the run logs."""
        counts = {}
        pattern = re.compile(r"^\[runner\] process (\d+) of job .* started", re.M)
        for log in (self.data_dir / "logs").glob("process-*.log"):
            for match in pattern.finditer(log.read_text(errors="replace")):
                counts[int(match.group(1))] = counts.get(int(match.group(1)), 0) + 1
        return counts

    def live_runners(self) -> list[int]:
        """Pids of runner processes started from this data folder that are still alive."""
        pids = []
        for process in psutil.process_iter(["pid", "cmdline", "environ"]):
            try:
                cmd = process.info["cmdline"] or []
                if "runner.runtime" in cmd and (process.info["environ"] or {}).get("JTB_DATA_DIR") == str(self.data_dir):
                    pids.append(process.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return pids

    def processes_of_this_folder(self) -> list[psutil.Process]:
        """Every live process started with this data folder in its environment (none after a stop)."""
        found = []
        for process in psutil.process_iter(["pid", "environ"]):
            try:
                if (process.info["environ"] or {}).get("JTB_DATA_DIR") == str(self.data_dir):
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def kill_leftovers(self) -> None:
        """Test cleanup: nothing started from this folder may outlive the test."""
        for process in self.processes_of_this_folder():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

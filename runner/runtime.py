"""The runner: one run of a job, from fetching its template to recording how it ended.

`python manage.py run_process <id>` calls `run(process_id)` — locally as a subprocess of the
worker, on AWS Batch as the container's command. The template runs in a child interpreter of the
job's own environment (runner/child.py); this side reads its events, writes Tasks and the final
status through the services, enforces the timeout and memory limit, and turns SIGTERM into a
recorded `cancelled` or `failed`.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection

from processes import services
from processes.models import Process, ProcessStatus, TaskStatus
from runner import proctree
from runner.dbretry import db_retry
from runner.environments import EnvironmentBuildError, environment_ensure
from runner.template_source import TemplateFetchError, template_fetch

logger = logging.getLogger("runner")
CHILD_SCRIPT = Path(__file__).with_name("child.py")
INSTALL_TASK = "install modules"


@dataclass
class Outcome:
    status: str = ProcessStatus.SUCCEEDED
    reason: str = ""
    exit_code: int | None = None


@dataclass
class ChildReport:
    """What the child told us, in the order it happened."""

    error: dict | None = None
    failed_tasks: list[tuple[str, str]] = field(default_factory=list)
    task_names: dict[int, str] = field(default_factory=dict)


def say(message: str) -> None:
    """A runner line in the process log."""
    print(f"[runner] {message}", flush=True)


class Runner:
    def __init__(self, process_id: int) -> None:
        self.process_id = process_id
        self.child: subprocess.Popen | None = None
        self.interrupted_by: str | None = None
        self.sequence_offset = 0
        self._stop_heartbeat = threading.Event()

    # --- the run ---------------------------------------------------------------------------
    def run(self) -> int:
        claimed = db_retry(lambda: services.process_mark_running(process_id=self.process_id))
        process = db_retry(lambda: Process.objects.select_related("job").filter(pk=self.process_id).first())
        self._release_connection()
        if process is None:
            say(f"process {self.process_id} does not exist")
            return 2
        if not claimed:
            say(f"process {self.process_id} is {process.status}; nothing to do")
            return 0
        self._install_signal_handlers()
        heartbeat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        heartbeat.start()
        say(f"process {process.pk} of job {process.job.name!r} started (attempt {process.attempt})")
        try:
            outcome = self._execute(process)
        except Exception as exc:  # a bug or an outage in the runner itself must still be recorded
            logger.exception("runner error")
            outcome = Outcome(ProcessStatus.FAILED, f"The runner failed: {type(exc).__name__}: {exc}")
        finally:
            self._stop_heartbeat.set()
        if self.interrupted_by:
            outcome = self._interruption_outcome(outcome)
        self._finish(outcome)
        say(f"process {process.pk} {outcome.status}" + (f": {outcome.reason}" if outcome.reason else ""))
        return 0 if outcome.status == ProcessStatus.SUCCEEDED else 1

    def _execute(self, process: Process) -> Outcome:
        snapshot = process.snapshot
        say(f"fetching template {snapshot['template']}")
        try:
            source = template_fetch(snapshot["template"])
        except TemplateFetchError as exc:
            return Outcome(ProcessStatus.FAILED, f"Could not fetch the template: {exc}")
        if self.interrupted_by:
            return Outcome(ProcessStatus.FAILED)

        environment = self._environment(snapshot.get("python_modules") or [])
        if isinstance(environment, Outcome):
            return environment
        if self.interrupted_by:
            return Outcome(ProcessStatus.FAILED)

        workdir = Path(settings.JTB_WORK_DIR) / f"process-{process.pk}-{os.getpid()}"
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            (workdir / "template.py").write_text(source, encoding="utf-8")
            shutil.copyfile(CHILD_SCRIPT, workdir / "jtb_child.py")
            (workdir / "params.json").write_text(json.dumps(process.parameters), encoding="utf-8")
            return self._run_child(process, environment.python, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _environment(self, modules: list[str]):
        if not modules:
            return environment_ensure([])
        say(f"preparing modules: {', '.join(modules)}")
        try:
            # Only a build is worth a task row; reusing a ready environment is instant.
            from runner.environments import environment_key

            ready = (Path(settings.JTB_ENV_ROOT) / environment_key(modules) / ".jtb-ready").exists()
            if ready:
                environment = environment_ensure(modules, output=sys.stdout.buffer)
                say(f"reusing environment {environment.path.name}")
                return environment
            self.sequence_offset = 1
            db_retry(lambda: services.task_start(process_id=self.process_id, sequence=1, name=INSTALL_TASK))
            self._release_connection()
            environment = environment_ensure(modules, output=sys.stdout.buffer)
        except EnvironmentBuildError as exc:
            db_retry(lambda: services.task_finish(
                process_id=self.process_id, sequence=1, status=TaskStatus.FAILED, error=str(exc)
            ))
            self._release_connection()
            return Outcome(ProcessStatus.FAILED, f"Task '{INSTALL_TASK}' failed: {_first_lines(str(exc))}")
        db_retry(lambda: services.task_finish(process_id=self.process_id, sequence=1, status=TaskStatus.SUCCEEDED))
        self._release_connection()
        return environment

    def _run_child(self, process: Process, python: Path, workdir: Path) -> Outcome:
        snapshot = process.snapshot
        timeout = int(snapshot["timeout_seconds"])
        memory_bytes = int(snapshot["memory_mib"]) * 1024 * 1024
        read_fd, write_fd = os.pipe()
        env = {
            **_child_base_environment(),
            **snapshot.get("environment", {}),
            "JTB_PROCESS_ID": str(process.pk),
            "JTB_JOB_NAME": process.job.name,
            "JTB_PARAMS_FILE": str(workdir / "params.json"),
            "JTB_EVENTS_FD": str(write_fd),
            "PYTHONUNBUFFERED": "1",
        }
        say(f"running main(ctx) (timeout {timeout} s, memory {snapshot['memory_mib']} MiB)")
        started = time.monotonic()
        self.child = subprocess.Popen(
            [str(python), "-I", str(workdir / "jtb_child.py"), str(workdir / "template.py")],
            cwd=workdir, env=env, pass_fds=[write_fd], stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=lambda: _limit_memory(memory_bytes),
        )
        os.close(write_fd)
        report, timed_out = self._follow(read_fd, started + timeout)
        returncode = self.child.wait()
        if timed_out:
            return Outcome(ProcessStatus.FAILED, f"Timed out after {timeout} s.", returncode)
        return _outcome(report, returncode, snapshot)

    def _follow(self, read_fd: int, deadline: float) -> tuple[ChildReport, bool]:
        """Record the child's events until it closes the pipe or the deadline passes."""
        report = ChildReport()
        selector = selectors.DefaultSelector()
        stream = os.fdopen(read_fd, "rb")
        selector.register(stream, selectors.EVENT_READ)
        buffer = b""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    proctree.kill_tree(self.child.pid, grace_seconds=min(settings.JTB_KILL_GRACE_SECONDS, 5))
                    return report, True
                if not selector.select(timeout=min(remaining, 1.0)):
                    continue
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    return report, False
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._handle_event(json.loads(line), report)
        finally:
            selector.close()
            stream.close()

    def _handle_event(self, event: dict, report: ChildReport) -> None:
        kind = event.get("event")
        if kind == "task_start":
            sequence = int(event["sequence"]) + self.sequence_offset
            report.task_names[sequence] = event["name"]
            db_retry(lambda: services.task_start(process_id=self.process_id, sequence=sequence, name=event["name"]))
        elif kind == "task_end":
            sequence = int(event["sequence"]) + self.sequence_offset
            if event["status"] == "failed":
                report.failed_tasks.append((report.task_names.get(sequence, "?"), event.get("error", "")))
            db_retry(lambda: services.task_finish(
                process_id=self.process_id, sequence=sequence, status=event["status"],
                error=event.get("error", ""), traceback=event.get("traceback", ""),
            ))
        elif kind == "error":
            report.error = event
        self._release_connection()

    # --- ending --------------------------------------------------------------------------------
    def _interruption_outcome(self, outcome: Outcome) -> Outcome:
        process = db_retry(lambda: Process.objects.filter(pk=self.process_id).only("cancel_requested_at", "failure_reason").first())
        if process is not None and process.cancel_requested_at:
            return Outcome(ProcessStatus.CANCELLED, process.failure_reason or "Cancelled.", outcome.exit_code)
        return Outcome(ProcessStatus.FAILED, f"Interrupted ({self.interrupted_by}).", outcome.exit_code)

    def _finish(self, outcome: Outcome) -> None:
        db_retry(lambda: services.process_finish(
            process_id=self.process_id, status=outcome.status, failure_reason=outcome.reason,
            exit_code=outcome.exit_code,
        ))
        self._release_connection()

    # --- signals and heartbeat -----------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        def handle(signum, frame):
            self.interrupted_by = signal.Signals(signum).name
            say(f"received {self.interrupted_by}; stopping the template")
            if self.child is not None and self.child.poll() is None:
                # SIGTERM lets the template clean up; the child is killed if it lingers.
                proctree.signal_tree(self.child.pid, signal.SIGTERM)
                threading.Timer(
                    max(settings.JTB_KILL_GRACE_SECONDS - 2, 1), proctree.kill_tree, args=[self.child.pid]
                ).start()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _beat(self) -> None:
        while not self._stop_heartbeat.wait(settings.JTB_HEARTBEAT_SECONDS):
            try:
                services.process_heartbeat(process_id=self.process_id)
            except Exception:  # a missed beat is harmless; the next one may get through
                logger.warning("heartbeat failed", exc_info=True)
            finally:
                close_old_connections()
                connection.close()

    @staticmethod
    def _release_connection() -> None:
        # A runner holds a database connection only while it writes: hundreds of runners
        # waiting on their templates must not exhaust the server's connections.
        connection.close()


def _outcome(report: ChildReport, returncode: int, snapshot: dict) -> Outcome:
    error = report.error or {}
    kind = error.get("kind")
    if report.failed_tasks:
        name, message = report.failed_tasks[0]
        if kind == "memory":
            message = f"out of memory (limit {snapshot['memory_mib']} MiB)"
        return Outcome(ProcessStatus.FAILED, f"Task '{name}' failed: {message}", returncode)
    if kind == "memory":
        return Outcome(ProcessStatus.FAILED, f"Out of memory (limit {snapshot['memory_mib']} MiB).", returncode)
    if kind == "import":
        return Outcome(ProcessStatus.FAILED, f"Could not import the template: {error.get('message')}", returncode)
    if kind == "no_main":
        return Outcome(ProcessStatus.FAILED, "The template has no main(ctx) function.", returncode)
    if kind == "raised":
        return Outcome(ProcessStatus.FAILED, f"The template raised {error.get('message')}", returncode)
    if kind == "exit":
        return Outcome(ProcessStatus.FAILED, f"The template exited with code {error.get('code')}.", returncode)
    if returncode < 0:
        name = _signal_name(-returncode)
        if name == "SIGKILL":
            return Outcome(ProcessStatus.FAILED, f"The template was killed by {name} (out of memory?).", returncode)
        return Outcome(ProcessStatus.FAILED, f"The template was killed by {name}.", returncode)
    if returncode != 0:
        return Outcome(ProcessStatus.FAILED, f"The template exited with code {returncode}.", returncode)
    return Outcome(ProcessStatus.SUCCEEDED, "", 0)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _first_lines(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _limit_memory(limit_bytes: int) -> None:
    # Address-space limit: allocations past it raise MemoryError in the template, which the
    # child reports as "out of memory". Python itself needs some room, hence the floor.
    limit = max(limit_bytes, 64 * 1024 * 1024)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _child_base_environment() -> dict[str, str]:
    # The template sees no secrets of the runner (database URL, AWS keys of the web app ...).
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
            "REQUESTS_CA_BUNDLE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL")
    return {name: os.environ[name] for name in keep if name in os.environ}


def run(process_id: int) -> int:
    return Runner(process_id).run()

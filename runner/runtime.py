"""The runner: one run of a job, from fetching its template to recording how it ended.

Two ways in, one Runner:
- `manage.py run_process <id>` (AWS Batch's container command, and by hand): claims the run,
  fetches the template, prepares the module environment, then starts the child.
- `python -m runner.runtime <id> --workdir DIR` (the local executor): the worker, which already
  has Django loaded, claimed the run and wrote the template, parameters and environment path to
  DIR (`run_prepare`). When the environment is ready the runner starts the child interpreter
  before it loads Django, so the template does not wait ~0.7 s for Django's start-up; events
  wait in the pipe until the recorder is ready.

The template runs in a child interpreter of the job's own environment (runner/child.py); this
side reads its events, writes Tasks and the final status through the services, enforces the
timeout (whole process tree) and the memory limit (address space, and the tree's resident
memory), beats a heartbeat, and turns SIGTERM/SIGINT into a recorded `cancelled` or `failed`.

Nothing here imports Django at module level: the fast path must not pay for it before the child
has started.
"""

from __future__ import annotations

import json
import logging
import os
import select
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from runner.outcomes import CANCELLED, FAILED, ChildReport, Outcome, outcome_of, shorten

logger = logging.getLogger("runner")
CHILD_SCRIPT = Path(__file__).with_name("child.py")
INSTALL_TASK = "install modules"
SPEC_FILE = "spec.json"
# How often the tree's resident memory is compared with the limit (less often where that means
# scanning every process on the host, see proctree.tree_rss).
RSS_CHECK_SECONDS = 1.0
RSS_CHECK_SLOW_SECONDS = 5.0
PR_SET_PDEATHSIG = 1
# Longest the recorder waits for the template to reach main(ctx) before it loads Django anyway.
MAIN_WAIT_SECONDS = 3.0

def say(message: str) -> None:
    """A runner line in the process log."""
    print(f"[runner] {message}", flush=True)


def django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobtarget_batch.settings")
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


# --- preparing a run (worker side of the local executor, Django loaded) --------------------------
def run_prepare(*, process_id: int) -> Path:
    """Write what the runner needs to start the child at once into a fresh work folder.

    Called by the local executor after it claimed the run. A template that cannot be fetched is
    written down as such; the runner records the failure, so every outcome has one writer.
    """
    from django.conf import settings

    from processes.models import Process
    from runner.environments import environment_ready
    from runner.template_source import TemplateFetchError, template_fetch

    process = Process.objects.select_related("job").get(pk=process_id)
    snapshot = process.snapshot
    workdir = Path(settings.JTB_WORK_DIR) / f"process-{process.pk}-{uuid.uuid4().hex[:8]}"
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "process_id": process.pk,
        "job": process.job.name,
        "attempt": process.attempt,
        "timeout_seconds": int(snapshot["timeout_seconds"]),
        "memory_mib": int(snapshot["memory_mib"]),
        "environment": snapshot.get("environment", {}),
        "modules": snapshot.get("python_modules") or [],
        "template": snapshot["template"],
        "kill_grace_seconds": settings.JTB_KILL_GRACE_SECONDS,
        "python": None,
        "template_error": None,
    }
    try:
        source = template_fetch(snapshot["template"])
    except TemplateFetchError as exc:
        spec["template_error"] = str(exc)
    else:
        workdir_fill(workdir, source, process.parameters)
        ready = environment_ready(spec["modules"])
        spec["python"] = str(ready.python) if ready else None
    (workdir / SPEC_FILE).write_text(json.dumps(spec), encoding="utf-8")
    return workdir


def workdir_fill(workdir: Path, source: str, parameters: dict) -> None:
    (workdir / "template.py").write_text(source, encoding="utf-8")
    shutil.copyfile(CHILD_SCRIPT, workdir / "jtb_child.py")
    (workdir / "params.json").write_text(json.dumps(parameters), encoding="utf-8")


class Runner:
    def __init__(self, process_id: int) -> None:
        self.process_id = process_id
        self.child: subprocess.Popen | None = None
        self.child_started = 0.0
        self.events_fd: int | None = None
        # Events read before the recorder was ready.
        self.pending = b""
        self.interrupted_by: str | None = None
        self.kill_grace_seconds = int(os.environ.get("JTB_KILL_GRACE_SECONDS") or 10)
        self.sequence_offset = 0
        self._stop_heartbeat = threading.Event()

    # --- the two ways in -------------------------------------------------------------------
    def run(self) -> int:
        """Claim the run and do everything from the template on (Django must be set up)."""
        from processes import services
        from processes.models import Process
        from runner.dbretry import db_retry

        self._install_signal_handlers()
        claimed = db_retry(lambda: services.process_mark_running(process_id=self.process_id))
        process = db_retry(lambda: Process.objects.select_related("job").filter(pk=self.process_id).first())
        if process is None:
            say(f"process {self.process_id} does not exist")
            return 2
        if not claimed:
            say(f"process {self.process_id} is {process.status}; nothing to do")
            return 0
        say(f"process {process.pk} of job {process.job.name!r} started (attempt {process.attempt})")
        return self._supervise(lambda: self._execute(process))

    def run_prepared(self, workdir: Path) -> int:
        """Run a process the local executor already claimed and prepared in `workdir`."""
        self._install_signal_handlers()
        spec = json.loads((workdir / SPEC_FILE).read_text(encoding="utf-8"))
        self.kill_grace_seconds = int(spec["kill_grace_seconds"])
        if spec["python"] and not self.interrupted_by:
            # Before Django: the template starts at once, and the recorder loads Django once the
            # template is in main(ctx); its events wait in the pipe meanwhile.
            self._child_start(spec, Path(spec["python"]), workdir)
            self._wait_for_main(MAIN_WAIT_SECONDS)
        django_setup()
        say(f"process {self.process_id} of job {spec['job']!r} started (attempt {spec['attempt']})")
        try:
            return self._supervise(lambda: self._execute_prepared(spec, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _supervise(self, execute) -> int:
        from processes.models import ProcessStatus

        heartbeat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        heartbeat.start()
        try:
            outcome = execute()
        except Exception as exc:  # a bug or an outage in the runner itself must still be recorded
            logger.exception("runner error")
            if self.child is not None and self.child.poll() is None:
                self._kill_child()
            outcome = Outcome(ProcessStatus.FAILED, f"The runner failed: {type(exc).__name__}: {exc}")
        finally:
            self._stop_heartbeat.set()
        if self.interrupted_by:
            outcome = self._interruption_outcome(outcome)
        self._finish(outcome)
        say(f"process {self.process_id} {outcome.status}" + (f": {outcome.reason}" if outcome.reason else ""))
        return 0 if outcome.status == ProcessStatus.SUCCEEDED else 1

    # --- the run ---------------------------------------------------------------------------
    def _execute(self, process) -> Outcome:
        from django.conf import settings

        from runner.template_source import TemplateFetchError, template_fetch

        snapshot = process.snapshot
        say(f"fetching template {snapshot['template']}")
        try:
            source = template_fetch(snapshot["template"])
        except TemplateFetchError as exc:
            return Outcome(FAILED, f"Could not fetch the template: {exc}")
        if self.interrupted_by:
            return Outcome(FAILED)
        environment = self._environment(snapshot.get("python_modules") or [])
        if isinstance(environment, Outcome):
            return environment
        if self.interrupted_by:
            return Outcome(FAILED)
        workdir = Path(settings.JTB_WORK_DIR) / f"process-{process.pk}-{os.getpid()}"
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            workdir_fill(workdir, source, process.parameters)
            spec = {
                "process_id": process.pk, "job": process.job.name,
                "timeout_seconds": int(snapshot["timeout_seconds"]), "memory_mib": int(snapshot["memory_mib"]),
                "environment": snapshot.get("environment", {}),
            }
            self._child_start(spec, environment.python, workdir)
            return self._child_follow(spec)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _execute_prepared(self, spec: dict, workdir: Path) -> Outcome:
        if spec["template_error"]:
            return Outcome(FAILED, f"Could not fetch the template: {spec['template_error']}")
        if self.child is None:
            if self.interrupted_by:
                return Outcome(FAILED)
            environment = self._environment(spec["modules"])
            if isinstance(environment, Outcome):
                return environment
            if self.interrupted_by:
                return Outcome(FAILED)
            self._child_start(spec, environment.python, workdir)
        else:
            say(f"reusing the environment at {Path(spec['python']).parent.parent}")
        return self._child_follow(spec)

    def _environment(self, modules: list[str]):
        from processes import services
        from processes.models import TaskStatus
        from runner.dbretry import db_retry
        from runner.environments import EnvironmentBuildError, environment_ensure

        building = []

        def on_build() -> None:
            # Only a run that actually installs gets the task row: runs that waited for it
            # (or found it ready) reuse the environment instantly.
            building.append(True)
            self.sequence_offset = 1
            db_retry(lambda: services.task_start(process_id=self.process_id, sequence=1, name=INSTALL_TASK))

        if modules:
            say(f"preparing modules: {', '.join(modules)}")
        try:
            environment = environment_ensure(modules, output=sys.stdout.buffer, on_build=on_build, say=say)
        except EnvironmentBuildError as exc:
            message = str(exc)
            if not building:
                on_build()
            db_retry(lambda: services.task_finish(
                process_id=self.process_id, sequence=1, status=TaskStatus.FAILED, error=message
            ))
            return Outcome(FAILED, f"Task '{INSTALL_TASK}' failed: {shorten(message)}")
        if building:
            db_retry(lambda: services.task_finish(process_id=self.process_id, sequence=1, status=TaskStatus.SUCCEEDED))
        elif modules:
            say(f"reusing the environment at {environment.path}")
        return environment

    def _child_start(self, spec: dict, python: Path, workdir: Path) -> None:
        memory_bytes = int(spec["memory_mib"]) * 1024 * 1024
        read_fd, write_fd = os.pipe()
        env = {
            **_child_base_environment(),
            **spec.get("environment", {}),
            "JTB_PROCESS_ID": str(spec["process_id"]),
            "JTB_JOB_NAME": spec["job"],
            "JTB_PARAMS_FILE": str(workdir / "params.json"),
            "JTB_EVENTS_FD": str(write_fd),
            "PYTHONUNBUFFERED": "1",
        }
        say(f"running main(ctx) (timeout {spec['timeout_seconds']} s, memory {spec['memory_mib']} MiB)")
        self.child_started = time.monotonic()
        self.child = subprocess.Popen(
            [str(python), "-I", str(workdir / "jtb_child.py"), str(workdir / "template.py")],
            cwd=workdir, env=env, pass_fds=[write_fd], stdin=subprocess.DEVNULL,
            # Same process group as the runner: if the runner is SIGKILLed, whoever started it
            # can still stop the template with one killpg (see runner/local_run.py).
            preexec_fn=_child_limits(memory_bytes),
        )
        os.close(write_fd)
        self.events_fd = read_fd

    def _wait_for_main(self, limit: float) -> None:
        """Read the child's first events until it reports main(ctx), it exits, or `limit` passes."""
        deadline = time.monotonic() + limit
        while b'"event": "main"' not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            ready, _, _ = select.select([self.events_fd], [], [], remaining)
            if not ready:
                return
            chunk = os.read(self.events_fd, 65536)
            if not chunk:
                return
            self.pending += chunk

    def _child_follow(self, spec: dict) -> Outcome:
        timeout = int(spec["timeout_seconds"])
        report, stop = self._follow(self.events_fd, self.child_started + timeout, int(spec["memory_mib"]))
        returncode = self.child.wait()
        if stop == "timeout":
            return Outcome(FAILED, f"Timed out after {timeout} s.", returncode)
        if stop == "memory":
            return Outcome(
                FAILED,
                f"Out of memory: the template used {report.rss_mib} MiB, more than its limit of {spec['memory_mib']} MiB.",
                returncode,
            )
        return outcome_of(report, returncode, spec)

    def _follow(self, read_fd: int, deadline: float, memory_mib: int) -> tuple[ChildReport, str | None]:
        """Record the child's events until it closes the pipe, the deadline passes or the
        tree's resident memory goes over the limit (RLIMIT_AS cannot see a tree of processes)."""
        from runner import proctree

        report = ChildReport()
        selector = selectors.DefaultSelector()
        stream = os.fdopen(read_fd, "rb")
        selector.register(stream, selectors.EVENT_READ)
        buffer, self.pending = self.pending, b""
        if b"\n" in buffer:
            *lines, buffer = buffer.split(b"\n")
            self._handle_lines(lines, report)
        next_rss_check = 0.0
        try:
            while True:
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    say("timed out; killing the template's process tree")
                    self._kill_child()
                    return report, "timeout"
                if now >= next_rss_check and not self.interrupted_by:
                    next_rss_check = now + (RSS_CHECK_SECONDS if proctree.CHEAP_TREE_WALK else RSS_CHECK_SLOW_SECONDS)
                    rss = proctree.tree_rss(self.child.pid)
                    if rss > memory_mib * 1024 * 1024:
                        report.rss_mib = rss // (1024 * 1024)
                        say(f"the template's processes use {report.rss_mib} MiB, over the {memory_mib} MiB limit; killing them")
                        self._kill_child()
                        return report, "memory"
                if not selector.select(timeout=min(remaining, RSS_CHECK_SECONDS)):
                    continue
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    return report, None
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                self._handle_lines(lines, report)
        finally:
            selector.close()
            stream.close()

    def _handle_lines(self, lines: list[bytes], report: ChildReport) -> None:
        """Record the events read together in one short transaction: one connection, not one per
        event, when hundreds of runners share a limited number of database connections."""
        from runner.dbretry import db_retry

        writes = [self._event_write(json.loads(line), report) for line in lines if line.strip()]
        writes = [write for write in writes if write is not None]
        if writes:
            # Each write is idempotent (get_or_create on the step, conditional update), so the
            # whole group can be retried after a lost connection.
            db_retry(lambda: _apply_together(writes))

    def _event_write(self, event: dict, report: ChildReport):
        from processes import services

        kind = event.get("event")
        if kind == "task_start":
            sequence = int(event["sequence"]) + self.sequence_offset
            report.task_names[sequence] = event["name"]
            return lambda: services.task_start(process_id=self.process_id, sequence=sequence, name=event["name"])
        if kind == "task_end":
            sequence = int(event["sequence"]) + self.sequence_offset
            if event["status"] == "failed":
                report.failed_tasks.append((report.task_names.get(sequence, "?"), event.get("error", "")))
            return lambda: services.task_finish(
                process_id=self.process_id, sequence=sequence, status=event["status"],
                error=event.get("error", ""), traceback=event.get("traceback", ""),
            )
        if kind == "error":
            report.error = event
        return None

    def _kill_child(self) -> None:
        from runner import proctree

        proctree.kill_tree(self.child.pid, grace_seconds=min(self.kill_grace_seconds, 5))

    # --- ending --------------------------------------------------------------------------------
    def _interruption_outcome(self, outcome: Outcome) -> Outcome:
        from processes.models import Process
        from runner.dbretry import db_retry

        process = db_retry(
            lambda: Process.objects.filter(pk=self.process_id).only("cancel_requested_at", "failure_reason").first()
        )
        if process is not None and process.cancel_requested_at:
            return Outcome(CANCELLED, process.failure_reason or "Cancelled.", outcome.exit_code)
        return Outcome(FAILED, f"Interrupted ({self.interrupted_by}).", outcome.exit_code)

    def _finish(self, outcome: Outcome) -> None:
        from processes import services
        from runner.dbretry import db_retry

        db_retry(lambda: services.process_finish(
            process_id=self.process_id, status=outcome.status, failure_reason=outcome.reason,
            exit_code=outcome.exit_code,
        ))

    # --- signals and heartbeat -----------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        def handle(signum, frame):
            from runner import proctree

            first = self.interrupted_by is None
            self.interrupted_by = signal.Signals(signum).name
            if not first:
                return
            say(f"received {self.interrupted_by}; stopping the template")
            # Everything this runner started: the template's tree, or uv building modules.
            # SIGTERM lets them clean up; what lingers is killed well inside the grace period.
            proctree.signal_descendants(os.getpid(), signal.SIGTERM)
            timer = threading.Timer(
                max(self.kill_grace_seconds - 3, 1), proctree.kill_descendants, args=[os.getpid()]
            )
            timer.daemon = True
            timer.start()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _beat(self) -> None:
        from django.conf import settings

        from processes import services
        from runner.dbretry import db_retry

        while not self._stop_heartbeat.wait(settings.JTB_HEARTBEAT_SECONDS):
            try:
                # One attempt: a missed beat is harmless, the next one may get through.
                db_retry(lambda: services.process_heartbeat(process_id=self.process_id), retries=False)
            except Exception:
                logger.warning("heartbeat failed", exc_info=True)


def _apply_together(writes) -> None:
    from django.db import transaction

    with transaction.atomic():
        for write in writes:
            write()


def _child_limits(limit_bytes: int):
    """The function the child runs between fork and exec (prepared here: no imports after fork)."""
    import ctypes
    import resource

    # Address-space limit: allocations past it raise MemoryError in the template, which the
    # child reports as "out of memory". Python itself needs some room, hence the floor.
    limit = max(limit_bytes, 64 * 1024 * 1024)
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        # The template dies with the runner: a SIGKILLed runner must not leave it running unwatched.
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    return apply


def _child_base_environment() -> dict[str, str]:
    # The template sees no secrets of the runner (database URL, AWS keys of the web app ...).
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
            "REQUESTS_CA_BUNDLE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL")
    return {name: os.environ[name] for name in keep if name in os.environ}


def run(process_id: int) -> int:
    """`manage.py run_process`: Django is set up already."""
    return Runner(process_id).run()


def main(argv: list[str] | None = None) -> int:
    """`python -m runner.runtime <id> [--workdir DIR]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m runner.runtime")
    parser.add_argument("process_id", type=int)
    parser.add_argument("--workdir", type=Path, help="a folder prepared by run_prepare (local executor)")
    args = parser.parse_args(argv)
    runner = Runner(args.process_id)
    if args.workdir:
        return runner.run_prepared(args.workdir)
    django_setup()
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())

"""The runner's flow, shared by both ways in: start the child, follow it, record how it ended.

See the package docstring for the two ways in. Signals: SIGTERM/SIGINT stop the template's tree
(SIGTERM first, SIGKILL well inside the grace period) and the run is recorded `cancelled` when a
cancel was requested, else `failed` ("Interrupted").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from runner.isolation import process_make_non_dumpable, runner_secrets_scrub
from runner.outcomes import FAILED, SUCCEEDED, Outcome, outcome_of, shorten
from runner.runtime.child_process import MEMORY, TIMEOUT, ChildProcess
from runner.runtime.spec import RunSpec

# Longest the fast path waits for the template to reach main(ctx) before it loads Django anyway.
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
    # The settings hold the credentials now; nothing this runner starts later may inherit them.
    runner_secrets_scrub()


class Runner:
    def __init__(self, process_id: int) -> None:
        # The runner holds the database credential: the template must not read it from /proc.
        process_make_non_dumpable()
        self.process_id = process_id
        self.child: ChildProcess | None = None
        self.recorder = None
        self.workdir: Path | None = None
        self.interrupted_by: str | None = None
        self.kill_grace_seconds = int(os.environ.get("JTB_KILL_GRACE_SECONDS") or 10)

    # --- the two ways in -------------------------------------------------------------------------
    def run_prepared(self, workdir: Path, *, announce: bool = True) -> int:
        """The local path: the worker claimed the run and prepared `workdir`; Django is not loaded."""
        self._install_signal_handlers()
        self.workdir = workdir
        spec = RunSpec.read(workdir)
        self.kill_grace_seconds = spec.kill_grace_seconds
        if announce:
            say(f"process {spec.process_id} of job {spec.job!r} started (attempt {spec.attempt})")
        if spec.python and not spec.template_error and not self.interrupted_by:
            # Before Django: the template starts at once, and the recorder loads Django once the
            # template is in main(ctx); its events wait in the pipe meanwhile.
            if spec.modules:
                say(f"reusing the environment at {Path(spec.python).parent.parent}")
            self._child_start(spec, Path(spec.python), workdir)
            self.child.wait_for_main(MAIN_WAIT_SECONDS)
        django_setup()
        return self._supervise(lambda: self._execute(spec, workdir))

    def run_container(self) -> int:
        """The container path (`manage.py run_process`), before Django: claim the run with the database
        driver, prepare it, start the template, then continue as the local path does."""
        from runner.runtime.direct_db import claim_direct
        from runner.runtime.workdir import workdir_prepare

        self._install_signal_handlers()
        try:
            run = claim_direct(self.process_id)
        except Exception as exc:  # the Django path claims with retries through an outage
            say(f"claiming directly failed ({type(exc).__name__}: {exc}); claiming through Django")
            run = None
        if run is None:
            django_setup()
            return self.run()
        if run.status is None:
            say(f"process {self.process_id} does not exist")
            return 2
        if not run.claimed:
            say(f"process {self.process_id} is {run.status}; nothing to do")
            return 0
        say(f"process {self.process_id} of job {run.job!r} started (attempt {run.attempt})")
        say(f"fetching template {run.snapshot['template']}")
        try:
            workdir = workdir_prepare(
                process_id=self.process_id, job=run.job, attempt=run.attempt, snapshot=run.snapshot,
                parameters=run.parameters,
            )
        except Exception as exc:  # claimed: the failure must be recorded
            failure = exc
            django_setup()
            return self._supervise(lambda: _raise(failure))
        return self.run_prepared(workdir, announce=False)

    def run(self) -> int:
        """The container path through Django (set up already): claim, prepare, run."""
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

        def execute() -> Outcome:
            from runner.runtime.prepare import run_prepare

            say(f"fetching template {process.snapshot['template']}")
            self.workdir = db_retry(lambda: run_prepare(process_id=self.process_id))
            return self._execute(RunSpec.read(self.workdir), self.workdir)

        return self._supervise(execute)

    # --- the run ---------------------------------------------------------------------------------
    def _supervise(self, execute: Callable[[], Outcome]) -> int:
        from runner.runtime.recorder import Recorder

        self.recorder = Recorder(self.process_id)
        # A cancel request reaches the runner itself, not only as a signal from a watcher.
        self.recorder.heartbeat_start(on_cancel=lambda: os.kill(os.getpid(), signal.SIGTERM))
        try:
            outcome = execute()
        except Exception as exc:  # a bug or an outage in the runner itself must still be recorded
            import logging  # not at import: the container runner starts its template sooner without it

            logging.getLogger("runner").exception("runner error")
            if self.child is not None and self.child.running():
                self.child.kill(min(self.kill_grace_seconds, 5))
            outcome = Outcome(FAILED, f"The runner failed: {type(exc).__name__}: {exc}")
        finally:
            self.recorder.heartbeat_stop()
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
        if self.interrupted_by:
            outcome = self.recorder.interruption_outcome(outcome, self.interrupted_by)
        self.recorder.finish(outcome)
        say(f"process {self.process_id} {outcome.status}" + (f": {outcome.reason}" if outcome.reason else ""))
        return 0 if outcome.status == SUCCEEDED else 1

    def _execute(self, spec: RunSpec, workdir: Path) -> Outcome:
        if spec.template_error:
            return Outcome(FAILED, f"Could not fetch the template: {spec.template_error}")
        if self.child is None:
            if self.interrupted_by:
                return Outcome(FAILED)
            python = self._environment(spec.modules)
            if isinstance(python, Outcome):
                return python
            if self.interrupted_by:
                return Outcome(FAILED)
            self._child_start(spec, python, workdir)
        return self._follow(spec)

    def _environment(self, modules: list[str]) -> Path | Outcome:
        """The job environment's interpreter, built or restored now if needed ("install modules")."""
        from runner.environments import EnvironmentBuildError, environment_ensure
        from runner.runtime.recorder import INSTALL_TASK

        building = []

        def on_build() -> None:
            # Only a run that actually installs gets the task row: runs that waited for it
            # (or found it ready) reuse the environment instantly. The empty environment of jobs
            # without modules is made once per host and is no step of the job.
            building.append(True)
            if modules:
                self.recorder.install_started()

        if modules:
            say(f"preparing modules: {', '.join(modules)}")
        try:
            environment = environment_ensure(modules, output=sys.stdout.buffer, on_build=on_build, say=say)
        except EnvironmentBuildError as exc:
            if not modules:
                return Outcome(FAILED, f"Could not prepare the Python environment: {shorten(str(exc))}")
            if not building:
                on_build()
            self.recorder.install_finished(error=str(exc))
            return Outcome(FAILED, f"Task '{INSTALL_TASK}' failed: {shorten(str(exc))}")
        if building and modules:
            self.recorder.install_finished()
        elif modules:
            say(f"reusing the environment at {environment.path}")
        return environment.python

    def _child_start(self, spec: RunSpec, python: Path, workdir: Path) -> None:
        say(f"running main(ctx) (timeout {spec.timeout_seconds} s, memory {spec.memory_mib} MiB)")
        self.child = ChildProcess(spec, python, workdir)

    def _follow(self, spec: RunSpec) -> Outcome:
        stop, rss_mib = self.child.follow(
            deadline=self.child.started + spec.timeout_seconds, memory_mib=spec.memory_mib,
            on_lines=self.recorder.record_lines, memory_checks=lambda: not self.interrupted_by,
        )
        if stop == TIMEOUT:
            say("timed out; killing the template's process tree")
            self.child.kill(min(self.kill_grace_seconds, 5))
            return Outcome(FAILED, f"Timed out after {spec.timeout_seconds} s.", self.child.wait())
        if stop == MEMORY:
            say(f"the template's processes use {rss_mib} MiB, over the {spec.memory_mib} MiB limit; killing them")
            self.child.kill(min(self.kill_grace_seconds, 5))
            return Outcome(
                FAILED,
                f"Out of memory: the template used {rss_mib} MiB, more than its limit of {spec.memory_mib} MiB.",
                self.child.wait(),
            )
        return outcome_of(self.recorder.report, self.child.wait(), memory_mib=spec.memory_mib)

    # --- signals ---------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        def handle(signum, frame):
            from runner import proctree  # psutil: loaded when needed, not before the template starts

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


def _raise(exc: Exception) -> Outcome:
    raise exc


def run(process_id: int) -> int:
    """`manage.py run_process` called with Django set up already (call_command, tests)."""
    return Runner(process_id).run()


def run_container(process_id: int) -> int:
    """`manage.py run_process <id>` from the command line (manage.py hands it here before Django)."""
    return Runner(process_id).run_container()


def exit_at_once(code: int) -> None:
    """Exit without the interpreter's teardown, which takes a good half second with Django loaded
    (on a busy host more) while the local executor's slot stays taken. Only for a runner that has
    recorded its outcome: output is flushed and database connections are closed first."""
    import logging  # loaded by Django long before this point

    with contextlib.suppress(Exception):  # exiting either way: what matters is recorded already
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
    return runner.run_container()

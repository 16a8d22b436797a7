"""The supervision loop: start every child in its own process group, restart one that dies (with
backoff) while the others keep running, and on Ctrl-C or SIGTERM stop every group within a bounded
time. One supervisor per data folder; a start after a killed supervisor first stops its leftovers.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runner.supervisor.groups import group_kill, group_members, group_wait_empty
from runner.supervisor.logs import LogFollower, log_open
from runner.supervisor.ports import port_holders, port_wait_free
from runner.supervisor.state import SupervisorState

logger = logging.getLogger(__name__)

# Restart delays (seconds) for a child that keeps dying; back to the first after a good run.
BACKOFF = (1, 2, 4, 8, 16, 30)
HEALTHY_AFTER_SECONDS = 60
# Time for children to stop on their own after the stop signal, before their groups are killed.
STOP_GRACE_SECONDS = 10
# How long a start waits for the port to be released (a socket closing, a leftover being killed).
PORT_WAIT_SECONDS = 15
LOOP_SECONDS = 0.5
OUTCOME_SECONDS = 2.0


@dataclass
class ChildSpec:
    name: str
    command: list[str]
    log: Path
    # Celery beat, gunicorn and a control worker stop cleanly on SIGTERM (sent to the leader, which
    # stops its own workers). SIGKILL goes to the whole group at once (see run_all's local worker).
    stop_signal: int = signal.SIGTERM
    before_start: Callable[[], None] | None = None
    needs_port: bool = False


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen | None = None
    started_at: float = 0.0  # wall clock, to tell our group members from a reused id
    started_monotonic: float = 0.0
    restarts: int = 0
    failures_in_a_row: int = 0
    restart_at: float | None = None
    follower: LogFollower | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, *, specs: list[ChildSpec], data_dir: Path, bind: str, port: int, cwd: Path,
                 say: Callable[[str], None], warn: Callable[[str], None], outcomes=None):
        self.children = [Child(spec) for spec in specs]
        self.state = SupervisorState(data_dir)
        self.bind, self.port, self.cwd = bind, port, cwd
        self.say, self.warn = say, warn
        self.outcomes = outcomes
        self.stopping = False
        self.stop_now = False

    # --- start ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Take the data folder's lock, stop a killed supervisor's leftovers, and make sure the port
        is free. Raises AlreadyRunning or RuntimeError with a message for the user."""
        self.state.lock()
        for name, count in self.state.leftovers_stop().items():
            self.warn(f"Stopped {count} process(es) of {name} left over from a run_all that did not stop cleanly.")
        if not port_wait_free(self.bind, self.port, PORT_WAIT_SECONDS):
            holders = ", ".join(port_holders(self.port)) or "an unknown process"
            self.state.unlock()
            raise RuntimeError(f"Port {self.port} on {self.bind} is in use by {holders}. Stop it or set PORT.")

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)
        self._record_groups()

    def _start(self, child: Child) -> None:
        spec = child.spec
        if spec.before_start:
            spec.before_start()
        if spec.needs_port and not port_wait_free(self.bind, self.port, PORT_WAIT_SECONDS):
            holders = ", ".join(port_holders(self.port)) or "an unknown process"
            self.warn(f"{spec.name}: port {self.port} is still in use by {holders}; trying again later.")
            self._schedule_restart(child)
            return
        log = log_open(spec.log)
        child.follower = child.follower or LogFollower(spec.log)
        # Taken before the start: a member of the group is never older than this.
        child.started_at = time.time()
        try:
            # Its own session and process group: Ctrl-C in the terminal reaches only the supervisor,
            # which stops each group itself, and killpg reaches everything the child started.
            child.process = subprocess.Popen(spec.command, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        child.started_monotonic = time.monotonic()
        child.restart_at = None

    def _record_groups(self) -> None:
        self.state.groups_record({
            child.spec.name: (child.process.pid, child.started_at) for child in self.children if child.process
        })

    # --- watch ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Supervise until a stop is requested; then stop everything."""
        next_outcomes = 0.0
        try:
            while not self.stopping:
                self.check_children()
                self._echo_warnings()
                if self.outcomes is not None and time.monotonic() >= next_outcomes:
                    next_outcomes = time.monotonic() + OUTCOME_SECONDS
                    self._echo_outcomes()
                time.sleep(LOOP_SECONDS)
        finally:
            self.stop_all()
            if self.outcomes is not None:
                # Runs that ended since the last look (or as everything stopped) are still told:
                # a Ctrl-C right after a run ends must not hide its outcome.
                self._echo_outcomes()

    def check_children(self) -> None:
        restarted = False
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                self._on_exit(child)
            if child.process is None and child.restart_at is not None and time.monotonic() >= child.restart_at:
                child.restarts += 1
                self._start(child)
                if child.process is not None:
                    self.warn(f"{child.spec.name} restarted (restart {child.restarts}).")
                    restarted = True
        if restarted:
            self._record_groups()

    def _on_exit(self, child: Child) -> None:
        code = child.process.returncode
        pgid = child.process.pid
        child.process = None
        # What the child started dies with it: an orphaned gunicorn worker would hold the port, an
        # orphaned pool process would go on consuming.
        group_kill(pgid, started_after=child.started_at)
        if self.stopping:
            return
        ran = time.monotonic() - child.started_monotonic
        # A child that ran a good while starts over from the shortest delay.
        child.failures_in_a_row = 1 if ran >= HEALTHY_AFTER_SECONDS else child.failures_in_a_row + 1
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        delay = self._schedule_restart(child)
        self.warn(f"{child.spec.name} {how} after {ran:.0f} s; restarting in {delay} s "
                  f"(its log: {child.spec.log}).")

    def _schedule_restart(self, child: Child) -> int:
        delay = BACKOFF[min(max(child.failures_in_a_row - 1, 0), len(BACKOFF) - 1)]
        child.restart_at = time.monotonic() + delay
        return delay

    def _echo_warnings(self) -> None:
        for child in self.children:
            if child.follower is not None:
                for line in child.follower.warnings():
                    self.warn(f"{child.spec.name}: {line}")

    def _echo_outcomes(self) -> None:
        try:
            lines = self.outcomes.lines()
        except Exception as exc:  # a locked or restarting database must not stop the supervisor
            logger.debug("Run outcomes unavailable: %s", exc)
            return
        for line in lines:
            self.say(line)

    # --- stop ----------------------------------------------------------------------------------
    def request_stop(self, signum=None, frame=None) -> None:
        if self.stopping:
            self.stop_now = True  # a second Ctrl-C: no more waiting
        self.stopping = True

    def stop_all(self) -> None:
        """Signal every child, wait up to STOP_GRACE_SECONDS, then kill every group that is left."""
        self.stopping = True
        running = [child for child in self.children if child.process is not None]
        for child in running:
            # The leader only: it stops its own workers in order; killing its pool processes under
            # it would only make it log errors. What is left after the grace is killed as a group.
            if child.spec.stop_signal == signal.SIGKILL:
                group_kill(child.process.pid, started_after=child.started_at, timeout=0)
                continue
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(child.spec.stop_signal)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in running:
            while not self.stop_now and time.monotonic() < deadline:
                try:
                    child.process.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for child in running:
            pgid = child.process.pid
            # The leader may be gone while members linger (a gunicorn worker holding the port).
            if group_members(pgid, child.started_at):
                group_kill(pgid, started_after=child.started_at)
            group_wait_empty(pgid, child.started_at, time.monotonic() + 5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=5)
        self._echo_warnings()
        self.state.unlock()


def signals_install(supervisor: Supervisor) -> None:
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGHUP, supervisor.request_stop)

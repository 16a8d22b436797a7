"""The local executor's worker side of a run: claim it, start the runner, watch it, stop it on cancel.

The runner records its own progress. This watcher only steps in when the runner could not: it was
killed, crashed, or ran far past its timeout — so a run never stays `running` after its runner died.
It runs on the control plane, so once the runner is gone it finalizes the run (notification,
release of the next queued run) itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

from processes import services
from processes.executors import ExecutorName
from processes.models import Process, ProcessStatus
from runner import proctree
from runner.executors.local.executor import local_log_path
from runner.executors.local.orphans import orphan_recover, watcher_identity
from runner.executors.local.slots import Slot, slot_take
from runner.runtime.prepare import run_prepare

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# How often a run waiting for a free slot looks again.
SLOT_POLL_SECONDS = 0.5
# On top of the job's timeout: the runner enforces the timeout itself; this is the backstop.
BACKSTOP_EXTRA_SECONDS = 60


def runner_command(process_id: int, workdir: Path) -> list[str]:
    # Not `manage.py run_process`: that loads Django before anything else, and the template would
    # wait for it. The runner's fast path starts the template first (runner/runtime/).
    return [sys.executable, "-m", "runner.runtime", str(process_id), "--workdir", str(workdir)]


def local_run(*, process_id: int) -> None:
    """Run one process: take a slot, claim the run, start the runner and watch it to its end."""
    slot = _slot_wait(process_id)
    if slot is None:
        return  # cancelled, or another worker has it, while this one waited for a slot
    try:
        _run_in_slot(process_id, slot)
    finally:
        slot.release()


def _slot_wait(process_id: int) -> Slot | None:
    """A free slot on this host, waited for while runners (this worker's or ones left over from a
    killed worker) hold them all; None once the run no longer needs one. The message stays
    unacknowledged meanwhile, so a worker killed while waiting loses nothing."""
    announced = False
    while True:
        slot = slot_take()
        if slot is not None:
            return slot
        if not _may_need_a_runner(process_id):
            return None
        if not announced:
            logger.info("Process %s waits for a free slot: runners hold all %s (some may be left over from an "
                        "earlier worker)", process_id, settings.JTB_LOCAL_SLOTS)
            announced = True
        time.sleep(SLOT_POLL_SECONDS)


def _may_need_a_runner(process_id: int) -> bool:
    try:
        return Process.objects.filter(
            pk=process_id, status__in=(ProcessStatus.QUEUED, ProcessStatus.SUBMITTED, ProcessStatus.RUNNING),
            external_id="",
        ).exists()
    finally:
        close_old_connections()


def _claim(process_id: int) -> bool:
    """Claim the run for this watcher (recorded, so a watcher killed before it starts the runner is
    noticed at once: orphans.py); a run an earlier watcher claimed and then died with is recovered."""
    for _ in range(2):
        details = Process.objects.filter(pk=process_id).values_list("executor_details", flat=True).first()
        if details is None:
            return False
        if services.process_mark_submitted(
            process_id=process_id, executor=ExecutorName.LOCAL,
            executor_details={**(details or {}), "watcher": watcher_identity()},
        ):
            # The claim the runner makes on Batch is made here: this worker has Django loaded, so
            # the runner can start the template at once.
            return services.process_mark_running(process_id=process_id)  # False: cancelled between
        if not orphan_recover(process_id):
            return False  # cancelled, finished, or another live worker has it
    return False


def _pause_for_tests() -> None:
    """The test-only fault hook (JTB_TEST_WATCHER_PAUSE_FILE, see settings): a window between the
    claim and the runner's start in which a test kills this watcher."""
    pause_file = settings.JTB_TEST_WATCHER_PAUSE_FILE
    deadline = time.monotonic() + 300
    while pause_file and Path(pause_file).exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def _run_in_slot(process_id: int, slot: Slot) -> None:
    if not _claim(process_id):
        return
    _pause_for_tests()
    process = Process.objects.get(pk=process_id)
    log_path = local_log_path(process_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        workdir = run_prepare(process_id=process_id)
    except Exception as exc:  # the run is claimed: it must not stay `running`
        logger.exception("Process %s: could not prepare the run", process_id)
        services.process_finish(
            process_id=process_id, status=ProcessStatus.FAILED,
            failure_reason=f"The local executor could not prepare the run: {type(exc).__name__}: {exc}",
            finalize_later=False,
        )
        services.process_finalize(process_id=process_id)
        return
    close_old_connections()
    # Owner-only (0600): a run's log may hold whatever its job printed.
    with open(log_path, "ab", opener=lambda path, flags: os.open(path, flags, 0o600)) as log:
        # The runner inherits the slot's locked descriptor: the slot stays taken while it lives,
        # even when this worker is killed (slots.py).
        runner = subprocess.Popen(
            runner_command(process_id, workdir), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=settings.BASE_DIR, env=os.environ.copy(), start_new_session=True, pass_fds=[slot.fd],
        )
    Process.objects.filter(pk=process_id).update(external_id=f"pid:{runner.pid}")
    close_old_connections()
    try:
        returncode = _watch(process, runner)
    finally:
        _kill_leftovers(runner.pid)
        shutil.rmtree(workdir, ignore_errors=True)
    _record_if_runner_did_not(process_id, returncode)
    services.process_finalize(process_id=process_id)


def _kill_leftovers(group_id: int) -> None:
    """Kill what is left of the runner's process group: a runner killed with SIGKILL could not
    stop its template interpreter, which would otherwise run on unwatched."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group_id, signal.SIGKILL)


def _watch(process: Process, runner: subprocess.Popen) -> int:
    timeout = int(process.snapshot.get("timeout_seconds") or settings.JTB_DEFAULT_TIMEOUT_SECONDS)
    deadline = time.monotonic() + timeout + settings.JTB_KILL_GRACE_SECONDS + BACKSTOP_EXTRA_SECONDS
    stopping_since = None
    while True:
        try:
            return runner.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        if stopping_since is None and (_cancel_requested(process.pk) or time.monotonic() > deadline):
            # The runner records `cancelled` itself on SIGTERM; the tree is killed after the grace.
            stopping_since = time.monotonic()
            runner.send_signal(signal.SIGTERM)
        elif stopping_since is not None and time.monotonic() - stopping_since > settings.JTB_KILL_GRACE_SECONDS:
            proctree.kill_tree(runner.pid)


def _cancel_requested(process_id: int) -> bool:
    try:
        return Process.objects.filter(pk=process_id, cancel_requested_at__isnull=False).exists()
    finally:
        close_old_connections()


def _record_if_runner_did_not(process_id: int, returncode: int) -> None:
    process = Process.objects.get(pk=process_id)
    if process.status not in (ProcessStatus.QUEUED, ProcessStatus.SUBMITTED, ProcessStatus.RUNNING):
        return
    if process.cancel_requested_at:
        services.process_finish(
            process_id=process_id, status=ProcessStatus.CANCELLED,
            failure_reason=process.failure_reason or "Cancelled.", exit_code=returncode, finalize_later=False,
        )
        return
    if returncode < 0:
        reason = f"The runner was killed by {signal.Signals(-returncode).name} before it recorded a result."
    else:
        reason = f"The runner exited with code {returncode} before it recorded a result."
    logger.warning("Process %s: %s", process_id, reason)
    services.process_finish(
        process_id=process_id, status=ProcessStatus.FAILED, failure_reason=reason, exit_code=returncode,
        finalize_later=False,
    )

"""Runs whose local watcher died between its claim and the start of the runner.

The watcher records itself in the claim (executor_details["watcher"]: host, pid and the pid's start
time, so a reused pid does not pass for it). Such a run is `submitted` or `running` with no runner
recorded in external_id, and nothing would move it until the sweeper or the reaper (minutes). When
a watcher of this host sees one whose watcher is gone — the worker's redelivered message, or the
scan at worker start — it recovers it at once:

- a runner for it is alive after all (the watcher died right after starting it): its pid is
  recorded, and the runner goes on and records its own end (the finalize sweep finalizes it);
- otherwise the claim is undone (`queued` again, once per run: `watchers_lost` counts) and the
  run is started afresh; a run whose watcher was lost twice is failed with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
from pathlib import Path

import psutil
from django.conf import settings

from processes import services
from processes.executors import ExecutorName
from processes.models import Process, ProcessStatus

logger = logging.getLogger(__name__)

# A run is put back in the queue this many times after losing its watcher; then it fails.
REQUEUES_AFTER_LOST_WATCHER = 1
CLAIMED = (ProcessStatus.SUBMITTED, ProcessStatus.RUNNING)


def watcher_identity() -> dict:
    me = psutil.Process()
    return {"host": socket.gethostname(), "pid": me.pid, "started": me.create_time()}


def watcher_gone(watcher: dict | None) -> bool:
    """Whether the recorded watcher is known to be dead: only a watcher of this host can be checked."""
    if not watcher or watcher.get("host") != socket.gethostname():
        return False
    try:
        process = psutil.Process(int(watcher["pid"]))
        return process.status() == psutil.STATUS_ZOMBIE or abs(process.create_time() - float(watcher["started"])) > 0.5
    except psutil.NoSuchProcess:
        return True
    except (KeyError, TypeError, ValueError, psutil.AccessDenied):
        return False


def runner_pid_find(process_id: int) -> int | None:
    """The pid of a live runner of this run on this host, found by its command line: the run's id
    and a work folder of this installation (another installation on the host has its own ids)."""
    work_dir = Path(settings.JTB_WORK_DIR).resolve()
    for candidate in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error, ValueError):
            command = candidate.info["cmdline"] or []
            if candidate.info["status"] == psutil.STATUS_ZOMBIE or "runner.runtime" not in command:
                continue
            position = command.index("runner.runtime")
            workdir = Path(command[command.index("--workdir") + 1])
            if (command[position + 1 : position + 2] == [str(process_id)] and workdir.parent == work_dir
                    and workdir.name.startswith(f"process-{process_id}-")):
                return candidate.pid
    return None


def orphan_recover(process_id: int) -> bool:
    """Recover the run if its watcher died before starting its runner; True when it is `queued`
    again (the caller starts it, or sends it to the executor)."""
    process = (
        Process.objects.filter(pk=process_id, status__in=CLAIMED, executor=ExecutorName.LOCAL, external_id="")
        .only("pk", "executor_details", "submitted_at").first()
    )
    if process is None or process.submitted_at is None:
        return False
    details = dict(process.executor_details or {})
    if not watcher_gone(details.get("watcher")):
        return False
    runner_pid = runner_pid_find(process_id)
    if runner_pid is not None:
        Process.objects.filter(pk=process_id, external_id="").update(external_id=f"pid:{runner_pid}")
        logger.warning("Process %s: its watcher died after starting runner %s; the runner goes on", process_id,
                       runner_pid)
        return False
    lost = int(details.get("watchers_lost") or 0) + 1
    if lost > REQUEUES_AFTER_LOST_WATCHER:
        if services.process_finish(
            process_id=process_id, status=ProcessStatus.FAILED, finalize_later=False,
            failure_reason=f"The local worker that claimed this run was stopped before it started the runner, "
                           f"{lost} times; the run was not started again.",
        ):
            services.process_finalize(process_id=process_id)
        return False
    details.pop("watcher", None)
    details["watchers_lost"] = lost
    if not services.process_unclaim(process_id=process_id, submitted_at=process.submitted_at,
                                    executor_details=details):
        return False
    logger.warning("Process %s: the local worker that claimed it was stopped before it started the runner; "
                   "queued again", process_id)
    # A work folder the dead watcher may have prepared.
    for stale in Path(settings.JTB_WORK_DIR).glob(f"process-{process_id}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return True


def orphans_recover_all() -> list[int]:
    """At worker start: recover every local run of this host whose watcher is gone; the ids queued again."""
    candidates = Process.objects.filter(
        status__in=CLAIMED, executor=ExecutorName.LOCAL, external_id=""
    ).values_list("pk", flat=True)[:1000]
    return [pk for pk in list(candidates) if orphan_recover(pk)]


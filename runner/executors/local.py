"""The local executor: runs on this machine as `manage.py run_process` subprocesses.

Submitting sends a message to the local queue; the worker consuming it (concurrency = slots,
JTB_LOCAL_SLOTS) starts the runner and stays with it until it exits, so it can stop it on cancel
and record a result when the runner itself could not (killed, crashed).
"""

from __future__ import annotations

from pathlib import Path

import psutil

from django.conf import settings

from processes.models import Process
from runner.executors.base import Executor, LogChunk


def local_log_path(process_id: int) -> Path:
    return settings.JTB_LOG_DIR / f"process-{process_id}.log"


def read_log_file(path: Path, offset: int, limit: int) -> LogChunk:
    try:
        with path.open("rb") as handle:
            handle.seek(max(offset, 0))
            data = handle.read(limit)
    except FileNotFoundError:
        return LogChunk(text="", next_offset=max(offset, 0))
    return LogChunk(text=data.decode("utf-8", errors="replace"), next_offset=max(offset, 0) + len(data))


class LocalExecutor(Executor):
    name = "local"

    def submit(self, process: Process) -> None:
        from runner.tasks import run_local_process

        run_local_process.apply_async(args=[process.pk], queue=settings.JTB_LOCAL_QUEUE)

    def cancel(self, process: Process) -> None:
        # The worker watching the runner sees cancel_requested_at within a second and stops it.
        return None

    def read_log(self, process: Process, offset: int = 0, limit: int = 1_000_000) -> LogChunk:
        return read_log_file(local_log_path(process.pk), offset, limit)

    def is_alive(self, process: Process) -> bool:
        """Whether the runner recorded in external_id ("pid:N") still runs this process here.

        A runner whose heartbeat is late but which is alive (a stalled database, a busy host) is
        not reaped; the command line is checked so a reused pid does not count.
        """
        if not process.external_id.startswith("pid:"):
            return False
        try:
            runner = psutil.Process(int(process.external_id.removeprefix("pid:")))
            if runner.status() == psutil.STATUS_ZOMBIE:
                return False
            command = runner.cmdline()
        except (ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
            return False
        is_runner = any("runner.runtime" in part or part == "run_process" for part in command)
        return is_runner and str(process.pk) in command

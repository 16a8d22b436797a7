"""The local executor: runs on this machine as `manage.py run_process` subprocesses.

Submitting sends a message to the local queue; the worker consuming it (concurrency = slots,
JTB_LOCAL_SLOTS) starts the runner and stays with it until it exits, so it can stop it on cancel
and record a result when the runner itself could not (killed, crashed).
"""

from __future__ import annotations

from pathlib import Path

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
        # The watching worker records a result itself when the runner dies; a heartbeat that
        # stopped means the worker went too.
        return False

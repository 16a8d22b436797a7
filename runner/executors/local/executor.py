"""The local executor: runs on this machine as runner subprocesses.

Submitting sends one message per run to the local queue; the worker consuming it (concurrency =
slots, JTB_LOCAL_SLOTS) claims the run, starts the runner and stays with it until it exits
(`runner.executors.local.watch`), so it can stop it on cancel and record a result when the runner
itself could not (killed, crashed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import psutil
from celery import current_app
from django.conf import settings

from processes.executors import Executor, ExecutorName, LogChunk
from processes.models import Process

# The Celery task the local queue's worker runs (runner.tasks); sent by name so this driver does
# not import the entry points that call it.
RUN_TASK = "runner.tasks.run_local_process"


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


def run_message_send(process_id: int) -> None:
    # The task as the app registered it (Django's autodiscovery), so the app's own settings such as
    # task_always_eager apply; by name, so this driver does not import the entry points.
    current_app.tasks[RUN_TASK].apply_async(args=[process_id], queue=settings.JTB_LOCAL_QUEUE)


class LocalExecutor(Executor):
    name = ExecutorName.LOCAL

    def submit(self, processes: Sequence[Process]) -> None:
        # The worker claims each run before starting it, so a message sent twice starts one runner.
        for process in processes:
            run_message_send(process.pk)

    def cancel(self, process: Process) -> None:
        # The worker watching the runner sees cancel_requested_at within a second and stops it.
        return None

    def read_log(self, process: Process, offset: int = 0, limit: int = 1_000_000) -> LogChunk:
        return read_log_file(local_log_path(process.pk), offset, limit)

    def reconcile(self, process: Process) -> bool:
        """Whether the runner recorded in external_id ("pid:N") still runs this process here.

        A runner whose heartbeat is late but which is alive (a stalled database, a busy host) is
        not reaped; the command line is checked so a reused pid does not count.
        """
        return runner_pid_alive(process)


def runner_pid_alive(process: Process) -> bool:
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

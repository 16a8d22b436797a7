"""Delete the logs of runs the retention purge (or a job deletion) removed from the database.

Logs live outside the database: a file per run for the local executor, CloudWatch log streams
for AWS Batch. `processes.retention` deletes the rows and hands each batch's runs here.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from django.conf import settings

from processes.retention import LogRemover, PurgedRun
from runner.executors.local.executor import local_log_path


def process_logs_delete(runs: Sequence[PurgedRun], *, cloudwatch: bool = False) -> int:
    """Remove each run's local log file and, with `cloudwatch`, its CloudWatch streams; the number of
    logs removed. A missing file is fine (a run that never started, a log removed by hand)."""
    removed = 0
    for run in runs:
        try:
            local_log_path(run.id).unlink()
            removed += 1
        except FileNotFoundError:
            pass
        if cloudwatch and run.executor == "aws_batch":
            streams = list(run.executor_details.get("log_streams") or [])
            if streams:
                from runner.aws.logs import cloudwatch_log_streams_delete

                group = run.executor_details.get("log_group") or settings.JTB_BATCH_LOG_GROUP
                removed += cloudwatch_log_streams_delete(group=group, streams=streams)
    return removed


def log_remover() -> LogRemover:
    """The remover the settings ask for (CloudWatch streams too with JTB_PURGE_CLOUDWATCH_LOGS)."""
    return partial(process_logs_delete, cloudwatch=settings.JTB_PURGE_CLOUDWATCH_LOGS)

"""Celery task of the local executor: run one process with the runner and watch it to the end."""

from __future__ import annotations

from celery import shared_task

from runner import local_run
from runner import tasks_batch  # noqa: F401  (registers the AWS Batch tracker task)


@shared_task(name="runner.tasks.run_local_process")
def run_local_process(process_id: int) -> None:
    local_run.local_run(process_id=process_id)

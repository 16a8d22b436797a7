"""Celery tasks of the executors. Thin, and safe to run twice (redelivery, two beats)."""

from __future__ import annotations

from celery import shared_task

from runner.executors.aws_batch import events, tracking
from runner.executors.local import watch


@shared_task(name="runner.tasks.run_local_process")
def run_local_process(process_id: int) -> None:
    """The local executor: run one process with the runner and watch it to the end."""
    watch.local_run(process_id=process_id)


@shared_task(name="runner.tasks.track_batch_jobs", ignore_result=True)
def track_batch_jobs() -> dict[str, int]:
    return tracking.batch_processes_track()


@shared_task(name="runner.tasks.consume_batch_events", ignore_result=True)
def consume_batch_events() -> dict[str, int]:
    # Two at once is harmless: SQS hides a received message from the other, and applying is idempotent.
    return events.batch_events_consume()

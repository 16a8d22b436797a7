"""Celery tasks of the AWS Batch executor. Thin, and safe to run twice (two beats, redelivery)."""

from __future__ import annotations

from celery import shared_task

from runner import batch_events, batch_tracking


@shared_task(name="runner.tasks_batch.track_batch_jobs", ignore_result=True)
def track_batch_jobs() -> dict[str, int]:
    return batch_tracking.batch_processes_track()


@shared_task(name="runner.tasks_batch.consume_batch_events", ignore_result=True)
def consume_batch_events() -> dict[str, int]:
    # Two at once is harmless: SQS hides a received message from the other, and applying is idempotent.
    return batch_events.batch_events_consume()

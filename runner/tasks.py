"""Celery tasks of the executors. Thin, and safe to run twice (redelivery, two beats)."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import connections

from runner.executors.aws_batch import events, tracking
from runner.executors.local import orphans, watch
from runner.executors.local.executor import run_message_send

logger = logging.getLogger(__name__)


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


@worker_ready.connect
def recover_orphaned_local_runs(**_kwargs) -> None:
    """At a worker's start: runs a killed watcher of this host claimed but never started are queued
    again and sent (the worker's redelivered message usually gets there first; both are safe)."""
    try:
        for process_id in orphans.orphans_recover_all():
            run_message_send(process_id)
    except Exception:  # a worker must start even when the database does not answer yet
        logger.warning("Could not look for runs orphaned by a killed local worker", exc_info=True)
    finally:
        # The worker's main process forks new pool processes later: it keeps no connection of its own.
        connections.close_all()

"""Celery tasks for runs. Thin: each takes ids and calls a service; each is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from processes import services


@shared_task(name="processes.tasks.submit_processes")
def submit_processes(process_ids: list[int]) -> None:
    services.processes_submit(process_ids=process_ids)


@shared_task(name="processes.tasks.finalize_processes", ignore_result=True)
def finalize_processes(process_ids: list[int]) -> list[int]:
    return services.processes_finalize(process_ids=process_ids)


@shared_task(name="processes.tasks.finalize_pending_processes", ignore_result=True)
def finalize_pending_processes() -> list[int]:
    return services.processes_finalize_pending()


@shared_task(name="processes.tasks.sweep_stuck_processes", ignore_result=True)
def sweep_stuck_processes() -> dict[str, int]:
    return services.processes_sweep_stuck(
        queued_seconds=settings.JTB_QUEUED_RESEND_SECONDS, submitted_seconds=settings.JTB_SUBMITTED_LOST_SECONDS,
    )


@shared_task(name="processes.tasks.expire_idempotency_records", ignore_result=True)
def expire_idempotency_records() -> int:
    return services.idempotency_records_expire(older_than_seconds=settings.JTB_IDEMPOTENCY_SECONDS)


@shared_task(name="processes.tasks.reap_lost_processes")
def reap_lost_processes() -> list[int]:
    return services.processes_reap_lost(older_than_seconds=settings.JTB_HEARTBEAT_TIMEOUT_SECONDS)


@shared_task(name="processes.tasks.purge_history", ignore_result=True)
def purge_history() -> dict[str, int]:
    """Beat sends this daily when JTB_PURGE_OLDER_THAN_DAYS is set: the retention purge."""
    from datetime import timedelta

    from processes.retention import history_purge
    from runner.log_retention import log_remover

    if not settings.JTB_PURGE_OLDER_THAN_DAYS:
        return {}
    keep_failed = settings.JTB_PURGE_KEEP_FAILED_DAYS
    report = history_purge(
        older_than=timedelta(days=settings.JTB_PURGE_OLDER_THAN_DAYS),
        keep_failed=timedelta(days=keep_failed) if keep_failed else None,
        batch_size=settings.JTB_PURGE_BATCH, remove_logs=log_remover(),
    )
    return {"processes": report.processes, "tasks": report.tasks, "logs": report.logs}

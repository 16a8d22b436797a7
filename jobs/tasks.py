"""Celery tasks for schedules. Thin: each calls a service and is safe to run twice or at once."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="jobs.tasks.schedules_tick", ignore_result=True)
def schedules_tick(helper: bool = False) -> int:
    """Beat sends this every JTB_SCHEDULE_TICK_SECONDS: start every due beat schedule.

    A busy tick sends a few more with `helper=True` so other workers share the work.
    """
    from jobs.scheduling.tick import schedules_tick as tick

    return tick(fan_out=not helper).started


@shared_task(name="jobs.tasks.sync_schedules", ignore_result=True)
def sync_schedules(schedule_ids: list[int]) -> dict[int, str]:
    """Make these schedules' EventBridge copies match the database (create, update or delete)."""
    from jobs.scheduling.eventbridge import schedule_remote_sync

    return {schedule_id: schedule_remote_sync(schedule_id=schedule_id) for schedule_id in schedule_ids}


@shared_task(name="jobs.tasks.schedules_sync_all", ignore_result=True)
def schedules_sync_all() -> dict[str, int]:
    from jobs.scheduling.eventbridge import schedules_remote_sync_all

    report = schedules_remote_sync_all()
    return {outcome: len(ids) for outcome, ids in report.outcomes.items()}


@shared_task(name="jobs.tasks.delete_job_history", ignore_result=True)
def delete_job_history(job_id: int) -> bool:
    """Sent by jobs.services.job_delete for a job with a long history: its runs in batches, then the job."""
    from jobs.services import job_history_delete
    from runner.log_retention import log_remover

    return job_history_delete(job_id=job_id, remove_logs=log_remover())

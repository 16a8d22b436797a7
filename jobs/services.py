"""State changes of jobs and schedules. The admin and the API both save through these."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from jobs.masking import MASK, environment_unmasked
from jobs.models import Job, Schedule, ScheduleDriver
from jobs.scheduling.times import next_fire_at
from processes.models import ACTIVE_STATUSES, FINISHED_STATUSES, Process, Task
from processes.retention import LogRemover, PurgedRun, process_batch_delete
from processes.services import ProcessRefused


def _audit(instance, *, user, reason: str) -> None:
    """Tell django-simple-history who made this change and where (admin, API, bootstrap)."""
    if user is not None and getattr(user, "is_authenticated", False):
        instance._history_user = user
    if reason:
        instance._change_reason = reason[:100]


def job_save(*, job: Job, user=None, reason: str = "") -> Job:
    """Validate and save a new or changed job (the same checks the admin form runs).

    Environment values the user was shown masked (jobs.masking) and sent back unchanged keep their
    stored value. The change is kept in the job's history with `user` and `reason`.
    """
    if job.pk and isinstance(job.environment, dict) and MASK in job.environment.values():
        stored = Job.objects.filter(pk=job.pk).values_list("environment", flat=True).first() or {}
        job.environment = environment_unmasked(job.environment, stored=stored)
    job.full_clean()
    _audit(job, user=user, reason=reason)
    with transaction.atomic():
        job.save()
        transaction.on_commit(lambda: job_changed(job_id=job.pk))
    return job


def job_changed(*, job_id: int) -> None:
    """Hook after a job's settings changed: its EventBridge schedules carry the job's resources,
    queue and enabled state, so they re-sync."""
    schedules_remote_sync_later(schedule_ids=Schedule.objects.filter(
        job_id=job_id, driver=ScheduleDriver.EVENTBRIDGE
    ).values_list("pk", flat=True))


# A job with at most this many runs is deleted at once, in the request; one with more is disabled
# and its history deleted in batches by a Celery task (jobs.tasks.delete_job_history), then the job.
JOB_DELETE_INLINE_RUNS = 500


def job_delete(*, job: Job, remove_logs: LogRemover | None = None, user=None, reason: str = "") -> bool:
    """Delete a job and its history; refused while any of its runs is active.

    True when the job is gone. False when it has more than JOB_DELETE_INLINE_RUNS runs: it is
    disabled now (no new runs, its schedules stop) and a task deletes its runs in small batches,
    then the job, so no request or transaction ever holds a whole history. `remove_logs` deletes
    the logs of the deleted runs (runner.log_retention), after commit. The audit history keeps
    who deleted it (`user`, `reason`).
    """
    _audit(job, user=user, reason=reason)
    with transaction.atomic():
        Job.objects.select_for_update().filter(pk=job.pk).first()
        active = job.processes.filter(status__in=ACTIVE_STATUSES).count()
        if active:
            raise ProcessRefused(
                f"Job {job.name!r} has {active} active run(s); cancel them or wait before deleting it.",
                code="job_active",
            )
        if job.processes.order_by()[JOB_DELETE_INLINE_RUNS:JOB_DELETE_INLINE_RUNS + 1].exists():
            Job.objects.filter(pk=job.pk).update(enabled=False)
            job.enabled = False
            job_id = job.pk
            transaction.on_commit(lambda: job_changed(job_id=job_id))
            from jobs.tasks import delete_job_history

            transaction.on_commit(lambda: delete_job_history.delay(job_id))
            return False
        runs = [PurgedRun(id=pk, executor=executor, executor_details=details or {})
                for pk, executor, details in job.processes.values_list("pk", "executor", "executor_details")]
        job.delete()
    if remove_logs is not None and runs:
        remove_logs(runs)
    return True


def job_history_delete(*, job_id: int, remove_logs: LogRemover | None = None,
                       batch_size: int = JOB_DELETE_INLINE_RUNS) -> bool:
    """The task behind job_delete: delete the job's finished runs in batches, then the job.

    Safe to run twice. False when the job stays: it is gone already, or a run became active
    meanwhile (someone enabled and ran it again), which job_delete refuses.
    """
    after = 0
    while True:
        ids = list(Process.objects.filter(job_id=job_id, pk__gt=after, status__in=FINISHED_STATUSES)
                   .order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        after = ids[-1]
        _, _, deleted = process_batch_delete(process_ids=ids)
        if remove_logs is not None and deleted:
            remove_logs(deleted)
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return False
    try:
        return job_delete(job=job, remove_logs=remove_logs)
    except ProcessRefused:
        return False


def job_history_counts(*, job_ids: list[int], cap: int = 100_000) -> dict[str, int]:
    """Runs, tasks and schedules of these jobs for the delete confirmation, runs and tasks counted up
    to cap + 1 (process_job_newest_idx, then task_one_row_per_step): never the whole history."""
    runs = Process.objects.filter(job_id__in=job_ids)
    return {
        "schedules": Schedule.objects.filter(job_id__in=job_ids).count(),
        "processes": runs.order_by()[: cap + 1].count(),
        "tasks": Task.objects.filter(process__job_id__in=job_ids).order_by()[: cap + 1].count(),
    }


# Changing any of these moves the schedule's next fire time (and the remote schedule).
SCHEDULE_TIMING_FIELDS = ("cron", "timezone", "enabled", "driver", "start_at", "end_at")
# Set by the tick and the EventBridge sync, never by a form: a stale copy must not roll them back.
SCHEDULE_SYSTEM_FIELDS = ("next_fire_at", "last_fired_at", "remote_synced_at", "remote_error")


def schedule_save(*, schedule: Schedule, user=None, reason: str = "") -> Schedule:
    """Validate and save a schedule; every schedule change goes through here.

    The beat driver's `next_fire_at` is recomputed from now when the cron, zone, enabled flag,
    driver, start or end changed; the EventBridge driver is told after commit.
    """
    schedule.full_clean()
    _audit(schedule, user=user, reason=reason)
    with transaction.atomic():
        previous = None
        if schedule.pk:
            previous = Schedule.objects.select_for_update().filter(pk=schedule.pk).values(
                *SCHEDULE_TIMING_FIELDS, *SCHEDULE_SYSTEM_FIELDS
            ).first()
        if previous is not None:
            for name in SCHEDULE_SYSTEM_FIELDS:
                setattr(schedule, name, previous[name])
        if previous is None or any(previous[name] != getattr(schedule, name) for name in SCHEDULE_TIMING_FIELDS):
            schedule.next_fire_at = None
            if schedule.enabled and schedule.driver == ScheduleDriver.BEAT:
                schedule.next_fire_at = next_fire_at(
                    cron=schedule.cron, tz_name=schedule.timezone, after=timezone.now(),
                    start_at=schedule.start_at, end_at=schedule.end_at,
                )
        schedule.save()
        was_remote = previous is not None and previous["driver"] == ScheduleDriver.EVENTBRIDGE
        if was_remote or schedule.driver == ScheduleDriver.EVENTBRIDGE:
            schedules_remote_sync_later(schedule_ids=[schedule.pk])
    return schedule


def schedule_delete(*, schedule: Schedule, user=None, reason: str = "") -> None:
    """Delete a schedule; its runs stay (their schedule becomes empty) and a remote one is deleted
    after commit (by `schedule_remote_forget`, which jobs.receivers also calls for job deletes and
    bulk deletes)."""
    _audit(schedule, user=user, reason=reason)
    with transaction.atomic():
        schedule.delete()


def schedule_remote_forget(*, schedule: Schedule) -> None:
    """A schedule row is gone: its EventBridge copy must go too (synced after commit)."""
    if schedule.driver == ScheduleDriver.EVENTBRIDGE:
        schedules_remote_sync_later(schedule_ids=[schedule.pk])


def schedules_remote_sync_later(*, schedule_ids) -> None:
    """Sync these schedules' EventBridge copies in a worker once the current transaction commits."""
    from jobs.tasks import sync_schedules

    ids = sorted(set(schedule_ids))
    if ids:
        transaction.on_commit(lambda: sync_schedules.delay(ids))

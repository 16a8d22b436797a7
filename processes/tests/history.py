"""Build run history quickly for tests of lists, search and retention (bulk rows, no services)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from processes.models import FINISHED_STATUSES, Process, ProcessStatus, Task, TaskStatus, Trigger


def make_history(job, count: int, *, age: timedelta = timedelta(0), status: str = ProcessStatus.SUCCEEDED,
                 tasks: int = 2, **fields) -> list[Process]:
    """`count` runs of `job` created `age` ago (oldest first), each with `tasks` finished steps.

    Finished runs are finalized (the control plane is done with them) unless `finalized_at=None` is given.
    """
    created = timezone.now() - age
    fields.setdefault("trigger", Trigger.SCHEDULE)
    fields.setdefault("finalized_at", created if status in FINISHED_STATUSES else None)
    runs = Process.objects.bulk_create([Process(job=job, status=status, **fields) for _ in range(count)])
    # auto_now_add ignores a given value: set the creation time afterwards.
    Process.objects.filter(pk__in=[run.pk for run in runs]).update(created_at=created)
    step_status = TaskStatus.RUNNING if status == ProcessStatus.RUNNING else TaskStatus.SUCCEEDED
    Task.objects.bulk_create([
        Task(process=run, name=f"step {n}", sequence=n, status=step_status, started_at=created)
        for run in runs for n in range(1, tasks + 1)
    ])
    for run in runs:
        run.created_at = created
    return runs

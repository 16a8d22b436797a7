"""Retention of the run history: delete old finished runs in small batches (tasks, run, log).

`history_purge` is what `manage.py purge_history` and the daily beat task call. It never deletes
an active run (queued, submitted, running) nor the latest run of a job (the job page and the
concurrency policy read it), and it can keep failed runs longer than the others.

Each batch of at most `batch_size` runs is deleted in its own short transaction (its tasks, the
run, and `rerun_of` links to it cleared), so runners writing statuses meanwhile wait for at most
one batch's locks. Logs are not in the database: after a batch commits, the caller's
`remove_logs` deletes them (the runner layer knows where logs live: local files, CloudWatch).
`process_batch_delete` is the same batch step for deleting a job's whole history.

The run rollups (processes.rollup: ProcessHourly, ProcessTotal) are left as they are: they are the
long-term record of runs whose rows are gone, so the console's 30-day trends, the job page's
figures and /metrics' counters do not drop when old runs are purged (Prometheus would read a
falling counter as a restart). They go only with their job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from processes.models import FINISHED_STATUSES, Process, ProcessStatus, Task


@dataclass(frozen=True)
class PurgedRun:
    """What a log remover needs to know about a deleted run."""

    id: int
    executor: str
    executor_details: dict


# Deletes the logs of deleted runs; returns how many logs it removed.
LogRemover = Callable[[Sequence[PurgedRun]], int]
# Told (runs done, runs in all or None when not counted) after each batch.
Progress = Callable[[int, int | None], None]


@dataclass
class PurgeReport:
    processes: int = 0
    tasks: int = 0
    logs: int = 0
    batches: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    log_errors: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.processes + self.tasks


def history_purge_queryset(*, older_than: timedelta, keep_failed: timedelta | None = None,
                           now: datetime | None = None) -> QuerySet:
    """Runs `history_purge` would delete: finished and finalized, created before now - older_than
    (failed ones before now - keep_failed when given), and not the latest run of their job."""
    now = now or timezone.now()
    # Finished and finalized: the control plane has sent its failure e-mail and released queued runs.
    runs = Process.objects.filter(created_at__lt=now - older_than, status__in=FINISHED_STATUSES,
                                  finalized_at__isnull=False)
    if keep_failed is not None and keep_failed > older_than:
        runs = runs.exclude(status=ProcessStatus.FAILED, created_at__gte=now - keep_failed)
    # One probe of process_job_newest_idx per run: is there a newer run of the same job?
    newer = Process.objects.filter(job_id=OuterRef("job_id"), pk__gt=OuterRef("pk"))
    return runs.filter(Exists(newer))


def process_batch_delete(*, process_ids: Sequence[int]) -> tuple[int, int, list[PurgedRun]]:
    """Delete these runs if they are finished, with their tasks, in one short transaction.

    Returns (runs deleted, tasks deleted, what the log remover needs about each deleted run).
    """
    with transaction.atomic():
        rows = list(
            Process.objects.select_for_update()
            .filter(pk__in=process_ids, status__in=FINISHED_STATUSES)
            .order_by("pk")
            .values_list("pk", "executor", "executor_details")
        )
        ids = [pk for pk, _, _ in rows]
        if not ids:
            return 0, 0, []
        # One DELETE of the tasks (task_one_row_per_step), reruns unlinked (rerun_of is SET_NULL),
        # one DELETE of the runs.
        _, per_model = Process.objects.filter(pk__in=ids).delete()
    return per_model.get(Process._meta.label, 0), per_model.get(Task._meta.label, 0), [PurgedRun(id=pk, executor=executor, executor_details=details or {})
                              for pk, executor, details in rows]


def _remove_logs(remove_logs: LogRemover | None, runs: list[PurgedRun], report: PurgeReport) -> None:
    if remove_logs is None or not runs:
        return
    try:
        report.logs += remove_logs(runs)
    except Exception as exc:  # the rows are gone either way; say which logs may be left
        report.log_errors.append(f"logs of runs {runs[0].id}..{runs[-1].id}: {exc}")


def history_purge(*, older_than: timedelta, keep_failed: timedelta | None = None, dry_run: bool = False,
                  batch_size: int = 500, remove_logs: LogRemover | None = None, progress: Progress | None = None,
                  count_first: bool = False, now: datetime | None = None) -> PurgeReport:
    """Delete finished runs older than `older_than` (see the module docstring); report counts.

    `dry_run` counts what would go and changes nothing. `count_first` counts the runs before
    deleting, so `progress` can show a total (one scan of the candidates).
    """
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    now = now or timezone.now()
    runs = history_purge_queryset(older_than=older_than, keep_failed=keep_failed, now=now)
    report = PurgeReport(dry_run=dry_run)
    if dry_run:
        report.processes = runs.count()
        report.tasks = Task.objects.filter(process__in=runs.values("pk")).count()
        report.seconds = time.perf_counter() - started
        return report
    total = runs.count() if count_first else None
    position = None
    while True:
        batch = runs
        if position is not None:
            # Keyset paging in (created_at, id) order on process_created_newest_idx: each batch
            # starts where the last one ended, and the scan ends at the cutoff.
            created, pk = position
            batch = batch.filter(Q(created_at__gt=created) | Q(created_at=created, pk__gt=pk), created_at__gte=created)
        rows = list(batch.order_by("created_at", "pk").values_list("pk", "created_at")[:batch_size])
        if not rows:
            break
        position = rows[-1][1], rows[-1][0]
        processes, tasks, deleted = process_batch_delete(process_ids=[pk for pk, _ in rows])
        report.processes += processes
        report.tasks += tasks
        report.batches += 1
        _remove_logs(remove_logs, deleted, report)
        if progress:
            progress(report.processes, total)
    report.seconds = time.perf_counter() - started
    return report

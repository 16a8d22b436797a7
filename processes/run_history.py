"""How a job's runs trend: the job page's grid, duration chart and figures, and the jobs list's columns.

Every read is bounded whatever the history size: the newest N runs of one job through the
`process_job_newest_idx` index, or the runs of the last days for the jobs of one list page. Run
counts and success rates over days come from the hourly rollup (processes.rollup: finished runs
in the hour they ended) plus the active runs (the (job, status) index), not from the runs. The
jobs list asks one query per column for the page's job ids, never one per row.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, F, OuterRef, Q, Subquery, Sum, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from jobs.models import Job, Schedule
from processes.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    Process,
    ProcessHourly,
    ProcessStatus,
    Task,
    rollup_hour,
)

GRID_RUNS = 25
CHART_RUNS = 50
STATS_DAYS = 30
LIST_DAYS = 7
# The list's median duration looks at most this many of a job's newest finished runs in LIST_DAYS.
LIST_MEDIAN_RUNS = 200


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (p50 = median of an odd count); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class GridCell:
    process_id: int
    # A task status, or "none" when the run has no such step.
    state: str
    label: str


@dataclass
class RunGrid:
    """Runs oldest to newest (left to right, like Airflow's grid) and the union of their steps."""

    runs: list[Process] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    # rows[i] holds the cells of steps[i], one per run.
    rows: list[list[GridCell]] = field(default_factory=list)


def job_run_grid(*, job: Job, runs: int = GRID_RUNS) -> RunGrid:
    """The last `runs` runs × their steps, coloured by status (two queries)."""
    newest = list(
        Process.objects.filter(job_id=job.pk).order_by("-pk")
        .only("pk", "status", "held", "created_at", "started_at", "finished_at", "job_id")[:runs]
    )
    processes = list(reversed(newest))
    tasks = Task.objects.filter(process_id__in=[p.pk for p in processes]).only(
        "process_id", "name", "sequence", "status").order_by("process_id", "sequence")
    by_run: dict[int, dict[str, Task]] = defaultdict(dict)
    order: dict[str, tuple[int, int]] = {}
    for task in tasks:
        by_run[task.process_id].setdefault(task.name, task)
        # Steps are ordered by where they come in the newest run that has them.
        order[task.name] = (task.sequence, -task.process_id) if task.name not in order else min(
            order[task.name], (task.sequence, -task.process_id))
    steps = sorted(order, key=lambda name: order[name])
    rows = []
    for name in steps:
        row = []
        for process in processes:
            task = by_run[process.pk].get(name)
            if task is None:
                row.append(GridCell(process.pk, "none", "not run"))
            else:
                row.append(GridCell(process.pk, task.status, task.get_status_display()))
        rows.append(row)
    return RunGrid(runs=processes, steps=steps, rows=rows)


@dataclass(frozen=True)
class DurationPoint:
    process_id: int
    status: str
    seconds: float


@dataclass(frozen=True)
class DurationSeries:
    points: list[DurationPoint]
    p50: float | None
    p95: float | None


def job_duration_series(*, job: Job, runs: int = CHART_RUNS) -> DurationSeries:
    """Durations of the job's newest finished runs that started, oldest first, with p50 and p95."""
    rows = list(
        Process.objects.filter(job_id=job.pk, status__in=FINISHED_STATUSES, started_at__isnull=False,
                               finished_at__isnull=False)
        .order_by("-pk").values_list("pk", "status", "started_at", "finished_at")[:runs]
    )
    points = [DurationPoint(pk, status, max((end - begin).total_seconds(), 0.0)) for pk, status, begin, end in rows]
    points.reverse()
    seconds = [point.seconds for point in points]
    return DurationSeries(points=points, p50=percentile(seconds, 0.5), p95=percentile(seconds, 0.95))


@dataclass(frozen=True)
class JobFigures:
    runs: int
    succeeded: int
    finished: int
    days: int
    last_run: Process | None
    next_run: datetime | None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None


def next_run_at(schedules) -> datetime | None:
    """The soonest next fire time among enabled schedules (each computed from its cron)."""
    soonest = None
    for schedule in schedules:
        if not schedule.enabled:
            continue
        try:
            times = schedule.next_fire_times(count=1)
        except Exception:  # an invalid cron in old data must not break a page
            continue
        if times and (soonest is None or times[0] < soonest):
            soonest = times[0]
    return soonest


def _finished_counts(*, job_ids: list[int], since: datetime) -> dict[int, tuple[int, int]]:
    """Per job: runs that finished since `since` (to the hour) and how many of them succeeded."""
    rows = (
        ProcessHourly.objects.filter(job_id__in=job_ids, hour__gte=rollup_hour(since), runs__gt=0)
        .values("job_id").annotate(finished=Sum("runs"), succeeded=Sum("runs", filter=Q(status=ProcessStatus.SUCCEEDED)))
        .values_list("job_id", "finished", "succeeded").order_by()
    )
    return {job_id: (finished, succeeded or 0) for job_id, finished, succeeded in rows}


def job_figures(*, job: Job, days: int = STATS_DAYS, now: datetime | None = None) -> JobFigures:
    """Runs that finished in the last `days` (the rollup's (job, hour) index) and active now, the last run."""
    now = now or timezone.now()
    counts = _finished_counts(job_ids=[job.pk], since=now - timedelta(days=days)).get(job.pk, (0, 0))
    active = Process.objects.filter(job_id=job.pk, status__in=ACTIVE_STATUSES).count()
    last_run = Process.objects.filter(job_id=job.pk).order_by("-pk").first()
    return JobFigures(
        runs=counts[0] + active, succeeded=counts[1], finished=counts[0], days=days,
        last_run=last_run, next_run=next_run_at(Schedule.objects.filter(job_id=job.pk, enabled=True)),
    )


@dataclass
class JobListRow:
    last_status: str | None = None
    last_at: datetime | None = None
    next_run: datetime | None = None
    runs: int = 0
    succeeded: int = 0
    finished: int = 0
    median_seconds: float | None = None
    running: int = 0

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None


def jobs_list_rows(*, job_ids: list[int], days: int = LIST_DAYS, now: datetime | None = None) -> dict[int, JobListRow]:
    """The jobs list's columns for one page of jobs: five queries whatever the page size.

    `runs` is the runs that finished in the window plus those active now."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    rows = {job_id: JobListRow() for job_id in job_ids}
    if not job_ids:
        return rows

    # Last run: one index probe per job (process_job_newest_idx).
    newest = Process.objects.filter(job_id=OuterRef("pk")).order_by("-pk")
    for pk, status, created in Job.objects.filter(pk__in=job_ids).annotate(
        last_status=Subquery(newest.values("status")[:1]), last_at=Subquery(newest.values("created_at")[:1]),
    ).values_list("pk", "last_status", "last_at"):
        rows[pk].last_status, rows[pk].last_at = status, created

    for job_id, (finished, succeeded) in _finished_counts(job_ids=job_ids, since=since).items():
        rows[job_id].runs, rows[job_id].succeeded, rows[job_id].finished = finished, succeeded, finished


    durations: dict[int, list[float]] = defaultdict(list)
    # The page's jobs as `job_id + 0`, which no index serves: the plan then reads the window's runs
    # on process_created_newest_idx and keeps the page's, instead of ANDing that window with the
    # (job, status) index over every run the page's jobs ever had (a third of a year's history
    # when the page holds the busiest jobs: 80 ms against 25 ms at a million runs).
    newest_finished = (
        Process.objects.alias(page_job=F("job_id") + 0)
        .filter(page_job__in=job_ids, created_at__gte=since)
        .filter(status__in=FINISHED_STATUSES, started_at__isnull=False, finished_at__isnull=False)
        .annotate(rank=Window(RowNumber(), partition_by=[F("job_id")], order_by=F("pk").desc()))
        .filter(rank__lte=LIST_MEDIAN_RUNS)
        .values_list("job_id", "started_at", "finished_at")
    )
    for job_id, begin, end in newest_finished:
        durations[job_id].append((end - begin).total_seconds())
    for job_id, values in durations.items():
        rows[job_id].median_seconds = percentile(values, 0.5)

    # Running now: the (job, status) index.
    for job_id, running in (
        Process.objects.filter(job_id__in=job_ids, status__in=ACTIVE_STATUSES)
        .values("job_id").annotate(n=Count("pk")).values_list("job_id", "n").order_by()
    ):
        rows[job_id].running = running
        rows[job_id].runs += running

    by_job: dict[int, list[Schedule]] = defaultdict(list)
    for schedule in Schedule.objects.filter(job_id__in=job_ids, enabled=True):
        by_job[schedule.job_id].append(schedule)
    for job_id, schedules in by_job.items():
        rows[job_id].next_run = next_run_at(schedules)
    return rows

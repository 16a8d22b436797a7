"""Read-only queries behind the console dashboard.

Every query is bounded at any history size: active runs through the status index (there are
few of them), finished runs through `process_status_finished_idx` (status + finished_at within
a window), created runs through `process_created_idx` (created_at within a window), schedules
through `schedule_next_fire_idx`; lists carry a LIMIT. Nothing counts the whole history.

The 24-hour charts read the runs themselves (a day of runs, exact in the viewer's zone); the
7- and 30-day charts read the hourly rollup (processes.rollup: a month is ~720 hours of rows, not
every run of the month), so they count finished runs in the hour they ended, place each UTC
hour in the bucket its start falls in, and show concurrency as the busiest hour's average.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal

from django.db.models import Avg, Count, DateTimeField, DurationField, ExpressionWrapper, F, Max, Q, Sum, Value
from django.db.models.functions import TruncHour
from django.utils import timezone

from jobs.models import Job, Schedule
from processes.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    Process,
    ProcessHourly,
    ProcessStatus,
    Task,
    TaskStatus,
    rollup_hour,
)
from processes.tracebacks import reason_split

# The runner's module-install step (runner.runtime.INSTALL_TASK); named here because the
# console sits above the runner and must not import it.
INSTALL_TASK_NAME = "install modules"
# AWS Batch states of a submitted job that mean "the container is being started".
STARTING_STATES = {"STARTING", "RUNNING"}
LIST_LIMIT = 50
FAILURES_LIMIT = 20
# The concurrency chart reads at most this many runs that ended in its window, the latest ones;
# buckets ending before the earliest of them are left out (`exact_since`).
CONCURRENCY_ROWS_LIMIT = 50_000


@dataclass(frozen=True)
class ChartWindow:
    key: str
    label: str
    span: timedelta
    bucket: timedelta
    bucket_label: str
    # Read from the hourly rollup rather than the runs (see the module docstring).
    from_rollup: bool = False


CHART_WINDOWS = {
    "24h": ChartWindow("24h", "24 hours", timedelta(hours=24), timedelta(hours=1), "per hour"),
    "7d": ChartWindow("7d", "7 days", timedelta(days=7), timedelta(hours=6), "per 6 hours", from_rollup=True),
    "30d": ChartWindow("30d", "30 days", timedelta(days=30), timedelta(days=1), "per day", from_rollup=True),
}
DEFAULT_WINDOW = "24h"


@dataclass
class ActiveRun:
    id: int
    job_id: int
    job_name: str
    status: str
    status_label: str
    stage: str
    since: datetime | None  # what the elapsed time counts from: start (running) or creation (waiting)
    trigger: str
    executor_state: str


@dataclass
class ActiveRuns:
    running: list[ActiveRun]
    waiting: list[ActiveRun]
    running_count: int
    waiting_count: int

    @property
    def any(self) -> bool:
        return bool(self.running_count or self.waiting_count)


def _is_running(status: str, executor_state: str) -> bool:
    return status == ProcessStatus.RUNNING or (
        status == ProcessStatus.SUBMITTED and executor_state in STARTING_STATES
    )


def run_stage(*, process: Process, latest_task: dict | None) -> str:
    """In words, where an active run is: waiting for capacity, installing modules, running step N."""
    state = process.executor_state
    if process.status == ProcessStatus.QUEUED:
        return "Waiting for the job's active run to end" if process.held else "Queued, about to be handed to the executor"
    if process.status == ProcessStatus.SUBMITTED:
        if state == "RUNNABLE":
            return "Waiting for capacity (AWS Batch: RUNNABLE)"
        if state in STARTING_STATES:
            return "Starting the container"
        if process.executor == "local":
            return "Waiting for a free local slot"
        return f"Submitted ({state})" if state else "Submitted"
    if latest_task is None:
        return "Starting"
    name = latest_task["name"]
    if latest_task["status"] == TaskStatus.RUNNING:
        if name == INSTALL_TASK_NAME:
            return "Installing modules"
        return f"Running step {latest_task['sequence']}: {name}"
    return f"Running (step {latest_task['sequence']}: {name} done)"


def active_runs(*, limit: int = LIST_LIMIT) -> ActiveRuns:
    """Runs not finished yet, split into running now and waiting, with their stage; newest first."""
    # Through process_status_id_idx (status, -id): active runs are a small slice of the history.
    counts = defaultdict(int)
    for row in (
        Process.objects.filter(status__in=ACTIVE_STATUSES)
        .values("status", "executor_state").annotate(n=Count("id")).order_by()
    ):
        counts[_is_running(row["status"], row["executor_state"])] += row["n"]
    starting = Q(status=ProcessStatus.SUBMITTED, executor_state__in=STARTING_STATES)
    running_q = Q(status=ProcessStatus.RUNNING) | starting
    waiting_q = Q(status=ProcessStatus.QUEUED) | (Q(status=ProcessStatus.SUBMITTED) & ~starting)
    base = (
        Process.objects.select_related("job")
        .only("id", "status", "held", "trigger", "executor", "executor_state", "created_at", "started_at",
              "job__id", "job__name")
        .order_by("-id")
    )
    processes = list(base.filter(running_q)[:limit]) + list(base.filter(waiting_q)[:limit])
    running_ids = [p.pk for p in processes if p.status == ProcessStatus.RUNNING]
    latest: dict[int, dict] = {}
    if running_ids:
        # Through task_one_row_per_step (process, sequence): the steps of at most `limit` runs.
        for task in Task.objects.filter(process_id__in=running_ids).values("process_id", "sequence", "name", "status"):
            current = latest.get(task["process_id"])
            if current is None or task["sequence"] > current["sequence"]:
                latest[task["process_id"]] = task
    running, waiting = [], []
    for process in processes:
        is_running = _is_running(process.status, process.executor_state)
        run = ActiveRun(
            id=process.pk, job_id=process.job_id, job_name=process.job.name, status=process.status,
            status_label=process.get_status_display(),
            stage=run_stage(process=process, latest_task=latest.get(process.pk)),
            since=(process.started_at or process.created_at) if is_running else process.created_at,
            trigger=process.get_trigger_display(), executor_state=process.executor_state,
        )
        (running if is_running else waiting).append(run)
    return ActiveRuns(running=running, waiting=waiting, running_count=counts[True], waiting_count=counts[False])


@dataclass
class Failure:
    id: int
    job_id: int
    job_name: str
    finished_at: datetime
    reason: str
    failed_step: str
    rerun_id: int | None
    job_enabled: bool


def _failure_text(reason: str, step: tuple[int, str] | None) -> dict:
    """The reason, and the step it failed at; the runner's "Task 'x' failed: " is not said twice."""
    if not reason:
        return {"reason": "No reason was recorded.", "failed_step": f"step {step[0]}: {step[1]}" if step else ""}
    if step is None:
        return {"reason": reason, "failed_step": ""}
    named, error = reason_split(reason)
    return {"reason": error if named == step[1] else reason, "failed_step": f"step {step[0]}: {step[1]}"}


def recent_failures(*, now: datetime, hours: int = 24, limit: int = FAILURES_LIMIT) -> tuple[list[Failure], int]:
    """Failed runs that ended in the last `hours`, newest first, and how many there are in all."""
    since = now - timedelta(hours=hours)
    # process_status_finished_idx: status = 'failed' AND finished_at >= ?.
    failed = Process.objects.filter(status=ProcessStatus.FAILED, finished_at__gte=since)
    total = failed.count()
    rows = list(
        failed.select_related("job").only("id", "finished_at", "failure_reason", "job__id", "job__name", "job__enabled")
        .order_by("-finished_at", "-id")[:limit]
    )
    ids = [row.pk for row in rows]
    steps = {}
    reruns = {}
    if ids:
        for task in (
            Task.objects.filter(process_id__in=ids, status=TaskStatus.FAILED)
            .order_by("process_id", "sequence").values("process_id", "sequence", "name")
        ):
            steps.setdefault(task["process_id"], (task["sequence"], task["name"]))
        # The foreign key's own index on rerun_of_id.
        for rerun_of_id, rerun_id in Process.objects.filter(rerun_of_id__in=ids).values_list("rerun_of_id", "id"):
            reruns[rerun_of_id] = max(rerun_id, reruns.get(rerun_of_id, 0))
    failures = [
        Failure(
            id=row.pk, job_id=row.job_id, job_name=row.job.name, finished_at=row.finished_at,
            **_failure_text(row.failure_reason, steps.get(row.pk)),
            rerun_id=reruns.get(row.pk), job_enabled=row.job.enabled,
        )
        for row in rows
    ]
    return failures, total


def finished_counts(*, now: datetime, hours: int = 24) -> dict[str, int]:
    """Runs that ended in the last `hours`, per final status."""
    since = now - timedelta(hours=hours)
    counts = dict.fromkeys(FINISHED_STATUSES, 0)
    for row in (
        Process.objects.filter(status__in=FINISHED_STATUSES, finished_at__gte=since)
        .values("status").annotate(n=Count("id")).order_by()
    ):
        counts[row["status"]] = row["n"]
    return counts


@dataclass
class NextRun:
    schedule_id: int
    job_id: int
    job_name: str
    at: datetime
    cron: str
    timezone: str


def next_scheduled_runs(*, limit: int = 8) -> list[NextRun]:
    """The next ticks of enabled beat schedules (schedule_next_fire_idx), soonest first."""
    schedules = (
        Schedule.objects.filter(enabled=True, job__enabled=True, next_fire_at__isnull=False)
        .select_related("job").only("id", "cron", "timezone", "next_fire_at", "job__id", "job__name")
        .order_by("next_fire_at")[:limit]
    )
    return [
        NextRun(schedule_id=s.pk, job_id=s.job_id, job_name=s.job.name, at=s.next_fire_at, cron=s.cron,
                timezone=s.timezone)
        for s in schedules
    ]


def cost_total(*, now: datetime, hours: int = 24) -> Decimal:
    """Estimated cost of the runs that ended in the last `hours` (process_status_finished_idx).

    A day, like the other figures: a month at a million runs would read every one of them."""
    total = Process.objects.filter(
        status__in=FINISHED_STATUSES, finished_at__gte=now - timedelta(hours=hours)
    ).aggregate(total=Sum("estimated_cost"))["total"]
    return total or Decimal(0)


# --- Charts -------------------------------------------------------------------------------------

@dataclass
class Bucket:
    start: datetime
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def window_buckets(*, window: ChartWindow, now: datetime, zone: tzinfo) -> list[datetime]:
    """Bucket starts covering the window up to now, aligned to the viewer's hours or days."""
    local_now = now.astimezone(zone)
    if window.bucket >= timedelta(days=1):
        last = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        hours = int(window.bucket.total_seconds() // 3600)
        last = local_now.replace(hour=local_now.hour - local_now.hour % hours, minute=0, second=0, microsecond=0)
    count = int(window.span / window.bucket)
    starts = []
    for index in range(count - 1, -1, -1):
        # Local calendar arithmetic, so a day across a DST change is still one bar.
        if window.bucket >= timedelta(days=1):
            naive = last.replace(tzinfo=None) - timedelta(days=index)
        else:
            naive = last.replace(tzinfo=None) - window.bucket * index
        starts.append(timezone.make_aware(naive, zone) if timezone.is_naive(naive) else naive)
    return starts


def _bucket_index(starts: list[datetime], instant: datetime) -> int | None:
    if instant < starts[0]:
        return None
    low, high = 0, len(starts) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if starts[middle] <= instant:
            low = middle
        else:
            high = middle - 1
    return low


def _add_count(buckets: list[Bucket], starts: list[datetime], instant: datetime, status: str, n: int) -> None:
    index = _bucket_index(starts, instant)
    if index is not None:
        counts = buckets[index].counts
        counts[status] = counts.get(status, 0) + n


def _rollup_hours(*, starts: list[datetime], now: datetime) -> list[dict]:
    """Per hour of the window and final status: runs that ended, run time inside the hour (one
    read of the rollup's (hour, ...) unique index for both charts)."""
    return list(
        ProcessHourly.objects.filter(hour__gte=rollup_hour(starts[0]), hour__lte=now)
        .values("hour", "status").annotate(n=Sum("runs"), busy=Sum("busy_seconds")).order_by()
    )


def _rollup_runs(*, starts: list[datetime], hours: list[dict]) -> list[Bucket]:
    """Finished runs in the hour they ended, active ones (few: process_status_id_idx) in the hour
    they were created."""
    buckets = [Bucket(start=start) for start in starts]
    for row in hours:
        if row["n"]:
            _add_count(buckets, starts, row["hour"], row["status"], row["n"])
    for created, status in (
        Process.objects.filter(status__in=ACTIVE_STATUSES, created_at__gte=starts[0]).order_by()
        .values_list("created_at", "status")
    ):
        _add_count(buckets, starts, created, status, 1)
    return buckets


def runs_by_status(*, window: ChartWindow, now: datetime, zone: tzinfo) -> list[Bucket]:
    """Runs in each bucket of the window, per status.

    24 hours: runs created in each bucket, per current status (process_created_idx). Longer
    windows: finished runs in the hour they ended (the rollup's hour index), and the active runs
    (few: process_status_id_idx) in the hour they were created.
    """
    starts = window_buckets(window=window, now=now, zone=zone)
    buckets = [Bucket(start=start) for start in starts]
    if window.from_rollup:
        return _rollup_runs(starts=starts, hours=_rollup_hours(starts=starts, now=now))
    rows = (
        Process.objects.filter(created_at__gte=starts[0], created_at__lte=now)
        .annotate(hour=TruncHour("created_at", tzinfo=zone)).values("hour", "status")
        .annotate(n=Count("id")).order_by()
    )
    for row in rows:
        _add_count(buckets, starts, row["hour"], row["status"], row["n"])
    return buckets


@dataclass
class Concurrency:
    peaks: list[tuple[datetime, int]]
    peak: int
    now: int
    # When the window held more runs than were read: peaks before this moment are not computed.
    exact_since: datetime | None
    # What a bucket's figure is: the most at once (24 hours), or its busiest hour's average.
    measure: str = "most"


def _rollup_concurrency(*, starts: list[datetime], hours: list[dict]) -> Concurrency:
    """Per bucket, its busiest hour's average of runs executing at once (run time inside the hour
    / one hour, from the rollup), rounded up: a lower bound of the bucket's true peak."""
    busy: dict[datetime, float] = defaultdict(float)
    for row in hours:
        busy[row["hour"]] += row["busy"] or 0.0
    peaks = [0] * len(starts)
    for hour, seconds in busy.items():
        index = _bucket_index(starts, hour)
        if index is not None and seconds > 0:
            peaks[index] = max(peaks[index], math.ceil(seconds / 3600 - 1e-9))
    running = Process.objects.filter(status=ProcessStatus.RUNNING).count()  # process_status_id_idx
    if peaks:
        # The last bucket holds the runs executing now, which the rollup counts only once they end.
        peaks[-1] = max(peaks[-1], running)
    return Concurrency(peaks=list(zip(starts, peaks, strict=True)), peak=max(peaks, default=0), now=running,
                       exact_since=None, measure="busiest hour's average")


def concurrency(*, window: ChartWindow, now: datetime, zone: tzinfo) -> Concurrency:
    """The most runs executing at once in each bucket (a sweep over starts and ends), and now.

    Reads runs that ended inside the window (process_status_finished_idx) and those running now;
    windows read from the rollup give each bucket its busiest hour's average instead.
    """
    starts = window_buckets(window=window, now=now, zone=zone)
    if window.from_rollup:
        return _rollup_concurrency(starts=starts, hours=_rollup_hours(starts=starts, now=now))
    window_start = starts[0]
    # Read as offsets from the window's start (intervals), not as timestamps: Django's time-zone
    # aware timestamp loader parses in Python, which at tens of thousands of runs a day cost more
    # than the query; intervals load natively.
    origin = Value(window_start, output_field=DateTimeField())
    finished = [
        (window_start + start_offset, window_start + end_offset)
        for start_offset, end_offset in (
            Process.objects.filter(status__in=FINISHED_STATUSES, finished_at__gte=window_start,
                                   started_at__isnull=False)
            .order_by("-finished_at")
            .values_list(ExpressionWrapper(F("started_at") - origin, output_field=DurationField()),
                         ExpressionWrapper(F("finished_at") - origin, output_field=DurationField()))
            [:CONCURRENCY_ROWS_LIMIT]
        )
    ]
    exact_since = None
    if len(finished) >= CONCURRENCY_ROWS_LIMIT:
        # Runs that ended before the earliest end read are missing: only later buckets are exact.
        earliest_end = min(end for _, end in finished)
        starts = [start for start in starts if start >= earliest_end] or [starts[-1]]
        exact_since = starts[0]
        window_start = starts[0]
        finished = [(started, ended) for started, ended in finished if ended > window_start]
    running = list(
        Process.objects.filter(status=ProcessStatus.RUNNING, started_at__isnull=False)
        .order_by().values_list("started_at", flat=True)[:CONCURRENCY_ROWS_LIMIT]
    )
    events: list[tuple[datetime, int]] = []
    for started, finished_at in finished:
        events.append((max(started, window_start), 1))
        events.append((finished_at, -1))
    for started in running:
        events.append((max(started, window_start), 1))
    events.sort()  # by instant, an end (-1) before a start (+1) at the same instant
    peaks = [0] * len(starts)
    level = 0
    event_iter = iter(events)
    pending = next(event_iter, None)
    # The level at each bucket's start counts as that bucket's floor; each rise inside it may peak.
    for index, start in enumerate(starts):
        while pending is not None and pending[0] < start:
            level += pending[1]
            pending = next(event_iter, None)
        peaks[index] = max(peaks[index], level)
        end = starts[index + 1] if index + 1 < len(starts) else now
        while pending is not None and pending[0] < end:
            level += pending[1]
            peaks[index] = max(peaks[index], level)
            pending = next(event_iter, None)
    return Concurrency(
        peaks=list(zip(starts, peaks, strict=True)), peak=max(peaks, default=0), now=len(running),
        exact_since=exact_since,
    )


@dataclass
class JobFigure:
    job_id: int
    job_name: str
    runs: int
    value: float  # seconds (slowest) or failures (most failing)
    extra: float = 0.0  # longest seconds (slowest) or failure share (most failing)


def _job_names(job_ids) -> dict[int, str]:
    return dict(Job.objects.filter(pk__in=list(job_ids)).values_list("pk", "name"))


def _rollup_job_figures(*, window: ChartWindow, now: datetime, limit: int) -> tuple[list[JobFigure], list[JobFigure]]:
    """The slowest and the most failing jobs of the window from one grouped read of the rollup."""
    succeeded = Q(status=ProcessStatus.SUCCEEDED)
    rows = list(
        ProcessHourly.objects.filter(hour__gte=rollup_hour(now - window.span)).values("job_id")
        .annotate(ended=Sum("runs"), failed=Sum("runs", filter=Q(status=ProcessStatus.FAILED)),
                  ok_timed=Sum("timed_runs", filter=succeeded), ok_seconds=Sum("duration_seconds", filter=succeeded),
                  ok_longest=Max("longest_seconds", filter=succeeded))
        .order_by()
    )
    timed = [row for row in rows if row["ok_timed"]]
    for row in timed:
        row["mean"] = row["ok_seconds"] / row["ok_timed"]
    slow = sorted(timed, key=lambda row: (-row["mean"], row["job_id"]))[:limit]
    failing = sorted((row for row in rows if row["failed"]), key=lambda row: (-row["failed"], row["job_id"]))[:limit]
    names = _job_names({row["job_id"] for row in slow + failing})
    name = lambda row: names.get(row["job_id"], f"#{row['job_id']}")  # noqa: E731
    return (
        [JobFigure(job_id=row["job_id"], job_name=name(row), runs=row["ok_timed"], value=float(row["mean"]),
                   extra=float(row["ok_longest"] or 0)) for row in slow],
        [JobFigure(job_id=row["job_id"], job_name=name(row), runs=row["ended"], value=row["failed"],
                   extra=row["failed"] / row["ended"]) for row in failing],
    )


def slowest_jobs(*, window: ChartWindow, now: datetime, limit: int = 5) -> list[JobFigure]:
    """Jobs by mean duration of their successful runs that ended in the window."""
    if window.from_rollup:
        return _rollup_job_figures(window=window, now=now, limit=limit)[0]
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    rows = list(
        Process.objects.filter(
            status=ProcessStatus.SUCCEEDED, finished_at__gte=now - window.span, started_at__isnull=False
        ).values("job_id").annotate(runs=Count("id"), mean=Avg(duration), longest=Max(duration))
        .order_by("-mean", "job_id")[:limit]
    )
    names = _job_names(row["job_id"] for row in rows)
    return [
        JobFigure(job_id=row["job_id"], job_name=names.get(row["job_id"], f"#{row['job_id']}"), runs=row["runs"],
                  value=row["mean"].total_seconds(), extra=row["longest"].total_seconds())
        for row in rows
    ]


def most_failing_jobs(*, window: ChartWindow, now: datetime, limit: int = 5) -> list[JobFigure]:
    """Jobs by number of failed runs that ended in the window, with their failure share."""
    if window.from_rollup:
        return _rollup_job_figures(window=window, now=now, limit=limit)[1]
    rows = list(
        Process.objects.filter(status__in=FINISHED_STATUSES, finished_at__gte=now - window.span)
        .values("job_id").annotate(runs=Count("id"), failed=Count("id", filter=Q(status=ProcessStatus.FAILED)))
        .filter(failed__gt=0).order_by("-failed", "job_id")[:limit]
    )
    names = _job_names(row["job_id"] for row in rows)
    return [
        JobFigure(job_id=row["job_id"], job_name=names.get(row["job_id"], f"#{row['job_id']}"), runs=row["runs"],
                  value=row["failed"], extra=row["failed"] / row["runs"])
        for row in rows
    ]


@dataclass
class Trends:
    buckets: list[Bucket]
    concurrency: Concurrency
    slowest: list[JobFigure]
    failing: list[JobFigure]


def trends(*, window: ChartWindow, now: datetime, zone: tzinfo, limit: int = 5) -> Trends:
    """Everything the dashboard's trend charts show; from the rollup, two reads whatever the window."""
    if not window.from_rollup:
        return Trends(
            buckets=runs_by_status(window=window, now=now, zone=zone),
            concurrency=concurrency(window=window, now=now, zone=zone),
            slowest=slowest_jobs(window=window, now=now, limit=limit),
            failing=most_failing_jobs(window=window, now=now, limit=limit),
        )
    starts = window_buckets(window=window, now=now, zone=zone)
    hours = _rollup_hours(starts=starts, now=now)
    slowest, failing = _rollup_job_figures(window=window, now=now, limit=limit)
    return Trends(buckets=_rollup_runs(starts=starts, hours=hours),
                  concurrency=_rollup_concurrency(starts=starts, hours=hours), slowest=slowest, failing=failing)

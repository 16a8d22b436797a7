"""The run rollups: ProcessHourly (per hour, job, final status, trigger) and ProcessTotal (per job,
final status, trigger, since the start), so the console's trends and /metrics never read the history.

Where they are written: `rollup_record_run`, once per run, by `processes.services.process_finalize`
in the transaction that claims the finalize (every finished run is finalized exactly once, wherever
it ended: a container's run by the sweep). Counted are finished runs the control plane is done with.

How a row is written safely by concurrent finalizes on SQLite, PostgreSQL and SQL Server: one
UPDATE ... SET n = n + 1 on the row's unique key; when it touched nothing, an INSERT in a
savepoint; when another worker inserted the row first (IntegrityError on the unique constraint),
the UPDATE again. No vendor upsert syntax.

`rollups_rebuild` (`manage.py rebuild_rollups`) recounts both from the history: for an install
upgraded from a version without rollups, or to repair them. It recounts only the runs still in
the history: after a purge, the purged runs' counts are lost (the purge itself leaves the rollups
alone: they are the long-term record).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Count, DecimalField, DurationField, ExpressionWrapper, F, Max, Min, Model, Q, Sum
from django.db.models.functions import Coalesce, TruncHour

from processes.models import (
    DURATION_BUCKET_FIELDS,
    DURATION_BUCKETS,
    FINISHED_STATUSES,
    WAIT_BUCKET_FIELDS,
    WAIT_BUCKETS,
    Process,
    ProcessHourly,
    ProcessTotal,
    rollup_hour,
)

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
# A lost insert race is retried this often; a third loss in a row means something else is wrong.
ADD_ATTEMPTS = 3


def busy_by_hour(started: datetime, finished: datetime) -> dict[datetime, float]:
    """Seconds of [started, finished) inside each UTC hour it overlaps."""
    spans: dict[datetime, float] = {}
    hour = rollup_hour(started)
    while hour < finished:
        overlap = (min(finished, hour + HOUR) - max(started, hour)).total_seconds()
        if overlap > 0:
            spans[hour] = overlap
        hour += HOUR
    return spans


def _add(model: type[Model], key: dict, increments: dict, *, longest: float | None = None) -> None:
    """Add `increments` to the row of `key`, creating it when missing; safe under concurrency."""
    for _ in range(ADD_ATTEMPTS):
        if model.objects.filter(**key).update(**{name: F(name) + value for name, value in increments.items()}):
            break
        try:
            with transaction.atomic():  # a savepoint: a lost race must not spoil the caller's transaction
                model.objects.create(**key, **increments, **({"longest_seconds": longest} if longest else {}))
            return
        except IntegrityError:
            continue  # another worker inserted the row first: add to it
    else:
        raise IntegrityError(f"{model.__name__} {key}: could not add to the row")
    if longest:
        # Portable max: only a smaller value is replaced (no GREATEST on every backend).
        model.objects.filter(**key, longest_seconds__lt=longest).update(longest_seconds=longest)


@dataclass(frozen=True)
class FinishedRun:
    job_id: int
    status: str
    trigger: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    estimated_cost: Decimal | None

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return max((self.finished_at - self.started_at).total_seconds(), 0.0)
        return None

    @property
    def wait(self) -> float | None:
        return max((self.started_at - self.created_at).total_seconds(), 0.0) if self.started_at else None


def total_increments(run: FinishedRun) -> dict:
    """What one run adds to its ProcessTotal row (the /metrics histograms are cumulative)."""
    duration, wait = run.duration, run.wait
    increments = {"runs": 1, "timed_runs": int(duration is not None), "duration_seconds": duration or 0.0,
                  "waited_runs": int(wait is not None), "wait_seconds": wait or 0.0}
    for name, bound in zip(DURATION_BUCKET_FIELDS, DURATION_BUCKETS, strict=True):
        increments[name] = int(duration is not None and duration <= bound)
    for name, bound in zip(WAIT_BUCKET_FIELDS, WAIT_BUCKETS, strict=True):
        increments[name] = int(wait is not None and wait <= bound)
    return increments


def rollup_record_run(*, process_id: int) -> None:
    """Count one finished run in both rollups. Call it once per run (process_finalize's claim)."""
    values = (
        Process.objects.filter(pk=process_id, status__in=FINISHED_STATUSES)
        .values("job_id", "status", "trigger", "created_at", "started_at", "finished_at", "estimated_cost")
        .first()
    )
    if values is None:
        return
    run = FinishedRun(**values)
    key = {"job_id": run.job_id, "status": run.status, "trigger": run.trigger}
    _add(ProcessTotal, key, total_increments(run))
    if run.finished_at is None:
        return  # no hour to put it in (only rows written by hand lack it)
    duration = run.duration
    busy = busy_by_hour(run.started_at, run.finished_at) if duration else {}
    end_hour = rollup_hour(run.finished_at)
    _add(ProcessHourly, {**key, "hour": end_hour}, {
        "runs": 1, "timed_runs": int(duration is not None), "duration_seconds": duration or 0.0,
        "busy_seconds": busy.pop(end_hour, 0.0), "estimated_cost": run.estimated_cost or Decimal(0),
    }, longest=duration)
    for hour, seconds in busy.items():  # the earlier hours a long run spent running
        _add(ProcessHourly, {**key, "hour": hour}, {"busy_seconds": seconds})


# --- Rebuilding from the history ---------------------------------------------------------------

@dataclass
class RebuildReport:
    days: int = 0
    hourly_rows: int = 0
    total_rows: int = 0
    runs: int = 0
    seconds: float = 0.0


def _seconds(value) -> float:
    """A summed duration: a timedelta, or microseconds where the backend has no interval type."""
    if value is None:
        return 0.0
    return value.total_seconds() if isinstance(value, timedelta) else float(value) / 1_000_000


DURATION = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
WAIT = ExpressionWrapper(F("started_at") - F("created_at"), output_field=DurationField())


def _counted() -> Q:
    """The runs the rollups count: finished, and finalized (a later finalize would count them again)."""
    return Q(status__in=FINISHED_STATUSES, finalized_at__isnull=False)


def totals_rebuild() -> int:
    """Recount ProcessTotal from the history in one grouped read; returns its rows."""
    ran = Q(started_at__isnull=False, finished_at__isnull=False)
    started = Q(started_at__isnull=False)
    buckets = {
        name: Count("pk", filter=ran & Q(finished_at__lte=F("started_at") + timedelta(seconds=bound)))
        for name, bound in zip(DURATION_BUCKET_FIELDS, DURATION_BUCKETS, strict=True)
    } | {
        name: Count("pk", filter=started & Q(started_at__lte=F("created_at") + timedelta(seconds=bound)))
        for name, bound in zip(WAIT_BUCKET_FIELDS, WAIT_BUCKETS, strict=True)
    }
    rows = (
        Process.objects.filter(_counted()).order_by().values("job_id", "status", "trigger")
        .annotate(runs=Count("pk"), timed_runs=Count("pk", filter=ran), duration=Sum(DURATION, filter=ran),
                  waited_runs=Count("pk", filter=started), wait=Sum(WAIT, filter=started), **buckets)
    )
    totals = [
        ProcessTotal(job_id=row["job_id"], status=row["status"], trigger=row["trigger"], runs=row["runs"],
                     timed_runs=row["timed_runs"], duration_seconds=_seconds(row["duration"]),
                     waited_runs=row["waited_runs"], wait_seconds=_seconds(row["wait"]),
                     **{name: row[name] for name in buckets})
        for row in rows
    ]
    with transaction.atomic():
        ProcessTotal.objects.all().delete()
        ProcessTotal.objects.bulk_create(totals, batch_size=500)
    return len(totals)


def _hourly_rows_of_day(day: datetime) -> tuple[dict[tuple, dict], dict[tuple, float], int]:
    """The hourly rows of runs that finished in [day, day + 1 day), and the busy seconds their
    runs spent in earlier hours (runs that started before the hour they finished in)."""
    finished = Process.objects.filter(_counted(), finished_at__gte=day, finished_at__lt=day + timedelta(days=1))
    ran = Q(started_at__isnull=False)
    # A run that started inside the hour it finished in is busy there for its whole duration.
    within_hour = ran & Q(started_at__gte=TruncHour("finished_at", tzinfo=UTC))
    rows: dict[tuple, dict] = {}
    runs = 0
    for row in (
        finished.annotate(hour=TruncHour("finished_at", tzinfo=UTC)).order_by()
        .values("hour", "job_id", "status", "trigger")
        .annotate(runs=Count("pk"), timed_runs=Count("pk", filter=ran), duration=Sum(DURATION, filter=ran),
                  longest=Max(DURATION, filter=ran), busy=Sum(DURATION, filter=within_hour),
                  cost=Coalesce(Sum("estimated_cost"), Decimal(0), output_field=DecimalField()))
    ):
        runs += row["runs"]
        rows[(row["hour"].astimezone(UTC), row["job_id"], row["status"], row["trigger"])] = {
            "runs": row["runs"], "timed_runs": row["timed_runs"], "duration_seconds": _seconds(row["duration"]),
            "longest_seconds": _seconds(row["longest"]), "busy_seconds": _seconds(row["busy"]),
            "estimated_cost": row["cost"],
        }
    carried: dict[tuple, float] = defaultdict(float)
    for job_id, status, trigger, started, ended in (
        finished.filter(ran).exclude(within_hour).values_list("job_id", "status", "trigger", "started_at",
                                                                "finished_at")
    ):
        for hour, seconds in busy_by_hour(started, ended).items():
            key = (hour, job_id, status, trigger)
            if key in rows:
                rows[key]["busy_seconds"] += seconds
            elif hour >= day:
                rows[key] = {"runs": 0, "busy_seconds": seconds}
            else:
                carried[key] += seconds
    return rows, carried, runs


def hourly_rebuild(*, progress: Callable[[int, int], None] | None = None) -> tuple[int, int, int]:
    """Recount ProcessHourly day by day, oldest first, each day in its own transaction.

    Returns (days, rows written, runs counted).
    """
    bounds = Process.objects.filter(_counted(), finished_at__isnull=False).aggregate(
        first=Min("finished_at"), last=Max("finished_at"))
    ProcessHourly.objects.all().delete()
    if bounds["first"] is None:
        return 0, 0, 0
    day = bounds["first"].astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = written = runs = 0
    total_days = (bounds["last"] - day).days + 1
    while day <= bounds["last"]:
        rows, carried, counted = _hourly_rows_of_day(day)
        with transaction.atomic():
            ProcessHourly.objects.bulk_create(
                [ProcessHourly(hour=hour, job_id=job_id, status=status, trigger=trigger, **values)
                 for (hour, job_id, status, trigger), values in rows.items()],
                batch_size=500,
            )
            for (hour, job_id, status, trigger), seconds in carried.items():
                _add(ProcessHourly, {"hour": hour, "job_id": job_id, "status": status, "trigger": trigger},
                     {"busy_seconds": seconds})
        days += 1
        written += len(rows)
        runs += counted
        day += timedelta(days=1)
        if progress:
            progress(days, total_days)
    return days, written, runs


def rollups_rebuild(*, progress: Callable[[int, int], None] | None = None) -> RebuildReport:
    """Recount both rollups from the history (see the module docstring).

    Meant for an upgrade or a repair, with the control plane stopped: a run finalized while a day
    is being recounted could be counted twice or not at all.
    """
    started = time.perf_counter()
    report = RebuildReport()
    report.total_rows = totals_rebuild()
    report.days, report.hourly_rows, report.runs = hourly_rebuild(progress=progress)
    report.seconds = time.perf_counter() - started
    return report

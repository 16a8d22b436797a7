"""A schedule's fire times within its start and end, and which due ticks still start a run."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.utils import timezone

from jobs import cron as cronlib


def schedule_fire_times(
    *, schedule, after: datetime | None = None, count: int = 5,
) -> list[datetime]:
    """The next `count` fire times (UTC) strictly after `after` (default now), within start and end."""
    result: list[datetime] = []
    after = after or timezone.now()
    start = _window_after(after, schedule.start_at)
    for instant in cronlib.fire_times(schedule.cron, schedule.timezone, after=start):
        if schedule.end_at and instant > schedule.end_at:
            break
        result.append(instant)
        if len(result) == count:
            break
    return result


def next_fire_at(*, cron: str, tz_name: str, after: datetime, start_at=None, end_at=None) -> datetime | None:
    instant = _next_fire_cached(cron, tz_name, _window_after(after, start_at))
    if instant is None or (end_at and instant > end_at):
        return None
    return instant


@lru_cache(maxsize=4096)
def _next_fire_cached(cron: str, tz_name: str, after: datetime) -> datetime | None:
    # Many schedules share an expression and a due tick: the tick asks the same question
    # thousands of times per minute.
    return cronlib.next_fire(cron, tz_name, after=after)


def _window_after(after: datetime, start_at: datetime | None) -> datetime:
    if start_at and start_at > after:
        # Fire times are strictly after `after`; one at exactly start_at counts.
        return start_at - timedelta(microseconds=1)
    return after


@dataclass(frozen=True)
class TickPlan:
    """For one due schedule: the ticks that start runs and where the schedule goes next."""

    ticks: tuple[datetime, ...]
    next_fire_at: datetime | None
    # Some due ticks were older than the grace period (beat or the workers were down).
    missed: bool = False


def plan_due(
    *, cron: str, tz_name: str, due_at: datetime, now: datetime, start_at=None, end_at=None,
    grace_seconds: int | None = None, missed_runs: int | None = None,
) -> TickPlan:
    """Which of the ticks from `due_at` up to `now` start a run.

    Ticks at most `grace_seconds` old are on time and all start. Older ones were missed (beat
    or the workers were down): only the latest `missed_runs` of them start.
    """
    grace = timedelta(seconds=settings.JTB_SCHEDULE_GRACE_SECONDS if grace_seconds is None else grace_seconds)
    keep = settings.JTB_SCHEDULE_MISSED_RUNS if missed_runs is None else missed_runs
    cutoff = now - grace
    window = {"start_at": start_at, "end_at": end_at}
    ticks: list[datetime] = []
    missed = due_at < cutoff
    if missed and keep:
        ticks.extend(_last_before(cron, tz_name, due_at=due_at, before=cutoff, count=keep, **window))
    instant = due_at if due_at >= cutoff else next_fire_at(
        cron=cron, tz_name=tz_name, after=cutoff - timedelta(microseconds=1), **window
    )
    while instant is not None and instant <= now:
        ticks.append(instant)
        instant = next_fire_at(cron=cron, tz_name=tz_name, after=instant, **window)
    return TickPlan(ticks=tuple(ticks), next_fire_at=instant, missed=missed)


def _last_before(cron, tz_name, *, due_at, before, count, start_at, end_at) -> list[datetime]:
    """The latest `count` fire times in [due_at, before), without walking a long outage minute by minute."""
    span = timedelta(hours=1)
    while True:
        low = max(due_at - timedelta(microseconds=1), before - span)
        found: deque[datetime] = deque(maxlen=count)
        instant = next_fire_at(cron=cron, tz_name=tz_name, after=low, start_at=start_at, end_at=end_at)
        while instant is not None and instant < before:
            found.append(instant)
            instant = next_fire_at(cron=cron, tz_name=tz_name, after=instant, start_at=start_at, end_at=end_at)
        if len(found) == count or low < due_at:
            return list(found)
        span *= 8

"""The beat driver: one frequent tick starts every schedule that is due.

Beat sends `jobs.tasks.schedules_tick` every JTB_SCHEDULE_TICK_SECONDS. A tick claims due
schedules in batches: it selects rows whose `next_fire_at` (indexed, UTC) has passed, locking
them (SKIP LOCKED where the database has it, so two ticks share the work instead of waiting),
moves `next_fire_at` forward with a conditional UPDATE that must touch every claimed row, and
starts the runs in the same transaction. A second beat, a tick that overlaps the previous one or
a redelivered message therefore finds nothing left to claim, and the database's unique
(schedule, scheduled_for) makes even a lost claim harmless.

Why one tick rather than one PeriodicTask per schedule: django-celery-beat's scheduler compares
every entry on every tick and sends one task per call, which cannot start 10,000 every-minute
schedules on time (docs/schedules.md, bench/schedule_scale.py).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from jobs.models import ConcurrencyPolicy, Job, Schedule, ScheduleDriver
from jobs.scheduling.times import plan_due
from processes.models import Trigger
from processes.services import ProcessRefused, RunRequest, process_start, process_start_many

logger = logging.getLogger(__name__)
TICK_TASK = "jobs.tasks.schedules_tick"


@dataclass
class TickResult:
    started: int = 0
    # Ticks that started nothing: the job is disabled, or its policy refused a second run.
    refused: int = 0
    schedules: int = 0
    missed: int = 0
    process_ids: list[int] = field(default_factory=list)


def schedules_tick(
    *, now: datetime | None = None, batch_size: int | None = None, fan_out: bool = False
) -> TickResult:
    """Start every due beat schedule's runs; safe to run in several processes at once.

    With `fan_out` (the tick beat sends), a tick that finds more than one batch due asks up to
    JTB_SCHEDULE_TICK_HELPERS more workers to tick too: SKIP LOCKED gives each its own batches.
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.JTB_SCHEDULE_TICK_BATCH
    result = TickResult()
    if not _more_due(now):
        # Most ticks: one indexed read, no transaction, no locks.
        return result
    if fan_out and settings.JTB_SCHEDULE_TICK_HELPERS:
        _call_helpers(now=now, batch_size=batch_size)
    while True:
        with transaction.atomic():
            claimed = _claim_batch(now=now, batch_size=batch_size)
            if not claimed:
                break
            _start_runs(claimed, result)
        result.schedules += len(claimed)
        if len(claimed) < batch_size and not _more_due(now):
            break
    if result.schedules:
        logger.info(
            "Schedule tick: %d schedule(s) due, %d run(s) started, %d refused, %d with missed ticks.",
            result.schedules, result.started, result.refused, result.missed,
        )
    return result


@dataclass
class _Due:
    schedule_id: int
    job_id: int
    ticks: tuple[datetime, ...]
    missed: bool


def _due_rows(*, now: datetime, batch_size: int):
    queryset = Schedule.objects.filter(
        next_fire_at__lte=now, enabled=True, driver=ScheduleDriver.BEAT
    ).order_by("next_fire_at", "pk")
    if connection.features.has_select_for_update:
        skip = connection.features.has_select_for_update_skip_locked
        queryset = queryset.select_for_update(skip_locked=skip)
    return list(queryset.values_list(
        "pk", "job_id", "cron", "timezone", "next_fire_at", "start_at", "end_at"
    )[:batch_size])


def _call_helpers(*, now: datetime, batch_size: int) -> None:
    limit = batch_size * (settings.JTB_SCHEDULE_TICK_HELPERS + 1)
    due = Schedule.objects.filter(next_fire_at__lte=now, enabled=True, driver=ScheduleDriver.BEAT)[:limit].count()
    for _ in range(min(settings.JTB_SCHEDULE_TICK_HELPERS, -(-due // batch_size) - 1)):
        # Sent by name: this driver does not import the Celery tasks (entry points) that call it.
        current_app.tasks[TICK_TASK].apply_async(kwargs={"helper": True}, expires=60)


def _more_due(now: datetime) -> bool:
    return Schedule.objects.filter(next_fire_at__lte=now, enabled=True, driver=ScheduleDriver.BEAT).exists()


def _claim_batch(*, now: datetime, batch_size: int) -> list[_Due]:
    rows = _due_rows(now=now, batch_size=batch_size)
    plans: dict[tuple, list[int]] = defaultdict(list)
    due: dict[int, _Due] = {}
    for pk, job_id, cron, tz_name, next_fire_at, start_at, end_at in rows:
        plan = plan_due(
            cron=cron, tz_name=tz_name, due_at=next_fire_at, now=now, start_at=start_at, end_at=end_at
        )
        last_fired = plan.ticks[-1] if plan.ticks else None
        plans[(next_fire_at, plan.next_fire_at, last_fired)].append(pk)
        due[pk] = _Due(schedule_id=pk, job_id=job_id, ticks=plan.ticks, missed=plan.missed)
    claimed: list[_Due] = []
    for (old, new, last_fired), ids in plans.items():
        fields = {"next_fire_at": new}
        if last_fired is not None:
            fields["last_fired_at"] = last_fired
        updated = Schedule.objects.filter(pk__in=ids, next_fire_at=old).update(**fields)
        if updated == len(ids):
            claimed.extend(due[pk] for pk in ids)
            continue
        # Without row locks someone else moved some of them: claim one by one to learn which.
        for pk in ids:
            if Schedule.objects.filter(pk=pk, next_fire_at=old).update(**fields) == 1:
                claimed.append(due[pk])
    return claimed


def _start_runs(claimed: list[_Due], result: TickResult) -> None:
    job_ids = {item.job_id for item in claimed}
    jobs = {
        pk: (enabled, policy)
        for pk, enabled, policy in Job.objects.filter(pk__in=job_ids).values_list("pk", "enabled", "concurrency_policy")
    }
    bulk: list[RunRequest] = []
    single: list[tuple[int, int, datetime]] = []
    for item in claimed:
        result.missed += item.missed
        enabled, policy = jobs.get(item.job_id, (False, None))
        if not enabled:
            # The schedule moves on; a disabled job's ticks are not made up later.
            result.refused += len(item.ticks)
            continue
        for tick in item.ticks:
            if policy == ConcurrencyPolicy.ALLOW:
                bulk.append(RunRequest(
                    job=Job(pk=item.job_id), schedule=Schedule(pk=item.schedule_id), scheduled_for=tick
                ))
            else:
                single.append((item.schedule_id, item.job_id, tick))
    if bulk:
        try:
            with transaction.atomic():
                processes = process_start_many(requests=bulk, trigger=Trigger.SCHEDULE)
            result.started += len(processes)
            result.process_ids.extend(process.pk for process in processes)
        except (IntegrityError, ProcessRefused):
            # A tick already started elsewhere (e.g. by `run_job` after a driver change) or a
            # job disabled since we looked: start one by one, each deduplicated or refused alone.
            single.extend((r.schedule.pk, r.job.pk, r.scheduled_for) for r in bulk)
    for schedule_id, job_id, tick in single:
        _start_one(schedule_id=schedule_id, job_id=job_id, tick=tick, result=result)


def _start_one(*, schedule_id: int, job_id: int, tick: datetime, result: TickResult) -> None:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        result.refused += 1
        return
    try:
        process = process_start(
            job=job, trigger=Trigger.SCHEDULE, schedule=Schedule(pk=schedule_id), scheduled_for=tick
        )
    except ProcessRefused as exc:
        logger.info("Schedule %s tick %s started no run: %s", schedule_id, tick.isoformat(), exc.message)
        result.refused += 1
        return
    result.started += 1
    result.process_ids.append(process.pk)

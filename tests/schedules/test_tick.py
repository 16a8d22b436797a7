"""The beat driver: the tick starts every due schedule once per tick, whoever runs it and how often."""

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection

from jobs.models import ConcurrencyPolicy, Schedule, ScheduleDriver
from jobs.scheduling.tick import schedules_tick
from jobs.services import job_save, schedule_save
from processes.models import Process, ProcessStatus, Trigger
from processes.services import process_start

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)  # a Monday
MINUTE = timedelta(minutes=1)


@pytest.fixture
def enqueued(monkeypatch):
    """Dispatch messages sent after commit, by process id."""
    sent: list[int] = []
    monkeypatch.setattr("processes.services.processes_submit_later", lambda *, process_ids: sent.extend(process_ids))
    return sent


@pytest.fixture
def at_t0():
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        yield


def ticks_of(schedule):
    return sorted(Process.objects.filter(schedule=schedule).values_list("scheduled_for", flat=True))


def test_saving_a_schedule_sets_its_next_fire_time_and_changes_move_it(make_schedule, at_t0):
    schedule = make_schedule("0 13 * * *")
    assert schedule.next_fire_at == datetime(2025, 6, 2, 13, tzinfo=UTC)
    schedule.description = "Only the words changed"
    schedule_save(schedule=schedule)
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at == datetime(2025, 6, 2, 13, tzinfo=UTC)
    schedule.timezone = "Europe/Paris"  # 13:00 in Paris is 11:00 UTC: today's has passed
    schedule_save(schedule=schedule)
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at == datetime(2025, 6, 3, 11, tzinfo=UTC)
    schedule.enabled = False
    schedule_save(schedule=schedule)
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at is None
    schedule.enabled, schedule.start_at = True, datetime(2025, 7, 1, tzinfo=UTC)
    schedule_save(schedule=schedule)
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at == datetime(2025, 7, 1, 11, tzinfo=UTC)


def test_saving_a_stale_copy_does_not_roll_back_what_the_tick_recorded(make_schedule, at_t0, enqueued):
    schedule = make_schedule("* * * * *")
    stale = Schedule.objects.get(pk=schedule.pk)
    schedules_tick(now=T0 + timedelta(seconds=1))
    stale.description = "edited in a form opened before the tick"
    schedule_save(schedule=stale)
    fresh = Schedule.objects.get(pk=schedule.pk)
    assert fresh.next_fire_at == T0 + MINUTE
    assert fresh.last_fired_at == T0


def test_a_due_schedule_starts_one_run_for_its_tick_and_moves_on(make_schedule, at_t0, enqueued,
                                                                 django_capture_on_commit_callbacks):
    schedule = make_schedule("* * * * *")
    with django_capture_on_commit_callbacks(execute=True):
        result = schedules_tick(now=T0 + timedelta(seconds=1))
    process = Process.objects.get(schedule=schedule)
    assert (process.trigger, process.scheduled_for, process.status) == (Trigger.SCHEDULE, T0, ProcessStatus.QUEUED)
    assert result.started == 1
    assert enqueued == [process.pk]
    schedule.refresh_from_db()
    assert (schedule.next_fire_at, schedule.last_fired_at) == (T0 + MINUTE, T0)
    assert list(schedule.runs_started) == [process]
    assert Schedule.objects.with_run_counts().get(pk=schedule.pk).runs_started_count == 1


def test_running_the_tick_again_for_the_same_moment_starts_nothing(make_schedule, at_t0, enqueued,
                                                                    django_capture_on_commit_callbacks):
    schedule = make_schedule("* * * * *")
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            schedules_tick(now=T0 + timedelta(seconds=1))
    assert ticks_of(schedule) == [T0]
    assert len(enqueued) == 1


def test_a_tick_started_elsewhere_is_not_started_again_and_the_rest_of_the_batch_still_starts(
    make_schedule, at_t0, enqueued
):
    first, second = make_schedule("* * * * *"), make_schedule("* * * * *")
    earlier = process_start(job=first.job, trigger=Trigger.SCHEDULE, schedule=first, scheduled_for=T0)
    schedules_tick(now=T0 + timedelta(seconds=1))
    assert list(Process.objects.filter(schedule=first)) == [earlier]
    assert ticks_of(second) == [T0]


@pytest.mark.parametrize(("missed_runs", "expected_missed"), [(1, 1), (0, 0), (3, 3)])
def test_after_an_hour_down_missed_ticks_follow_the_setting(make_schedule, at_t0, enqueued, settings,
                                                             missed_runs, expected_missed):
    settings.JTB_SCHEDULE_MISSED_RUNS = missed_runs
    schedule = make_schedule("* * * * *")
    back = T0 + timedelta(hours=1, seconds=5)
    schedules_tick(now=back)
    on_time = [T0 + timedelta(hours=1)]  # within the grace period
    missed = [T0 + timedelta(minutes=59 - i) for i in range(expected_missed)][::-1]
    assert ticks_of(schedule) == missed + on_time
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at == T0 + timedelta(hours=1, minutes=1)


def test_a_daily_schedule_missed_for_three_days_runs_once_for_its_latest_tick(make_schedule, at_t0, enqueued):
    schedule = make_schedule("0 6 * * *")
    schedules_tick(now=datetime(2025, 6, 5, 9, tzinfo=UTC))
    assert ticks_of(schedule) == [datetime(2025, 6, 5, 6, tzinfo=UTC)]


def test_a_disabled_jobs_schedule_moves_on_without_runs_and_is_not_made_up_later(make_job, make_schedule,
                                                                                  at_t0, enqueued):
    job = make_job()
    schedule = make_schedule("* * * * *", job=job)
    job.enabled = False
    job_save(job=job)
    for minute in range(5):
        schedules_tick(now=T0 + minute * MINUTE + timedelta(seconds=1))
    job.enabled = True
    job_save(job=job)
    schedules_tick(now=T0 + 5 * MINUTE + timedelta(seconds=1))
    assert ticks_of(schedule) == [T0 + 5 * MINUTE]


def test_a_skip_policy_refusal_does_not_stop_the_other_schedules(make_job, make_schedule, at_t0, enqueued):
    skipper = make_job(concurrency_policy=ConcurrencyPolicy.SKIP)
    busy = make_schedule("* * * * *", job=skipper)
    other = make_schedule("* * * * *")
    process_start(job=skipper, trigger=Trigger.MANUAL)  # still active
    result = schedules_tick(now=T0 + timedelta(seconds=1))
    assert ticks_of(busy) == []
    assert ticks_of(other) == [T0]
    assert (result.started, result.refused) == (1, 1)
    assert Schedule.objects.get(pk=busy.pk).next_fire_at == T0 + MINUTE


def test_a_schedule_stops_after_its_end(make_schedule, at_t0, enqueued):
    schedule = make_schedule("* * * * *", end_at=T0 + MINUTE)
    for minute in range(4):
        schedules_tick(now=T0 + minute * MINUTE + timedelta(seconds=1))
    assert ticks_of(schedule) == [T0, T0 + MINUTE]
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at is None


def test_eventbridge_and_disabled_schedules_are_not_fired_by_beat(make_schedule, at_t0, enqueued, settings):
    settings.JTB_SCHEDULER_ROLE_ARN = "arn:aws:iam::123456789012:role/jtb-scheduler"
    remote = make_schedule("* * * * *", driver=ScheduleDriver.EVENTBRIDGE)
    off = make_schedule("* * * * *", enabled=False)
    schedules_tick(now=T0 + timedelta(minutes=3))
    assert ticks_of(remote) == ticks_of(off) == []


# --- daylight saving through the tick, with a beat ticking every few minutes ----------------
NEW_YORK = ZoneInfo("America/New_York")


def run_beat(start, end, every):
    now = start
    while now <= end:
        schedules_tick(now=now)
        now += every


def local_ticks(schedule):
    return [t.astimezone(NEW_YORK).strftime("%m-%d %H:%M %Z") for t in ticks_of(schedule)]


@pytest.mark.parametrize(
    ("cron", "days", "expected"),
    [
        ("30 1 * * *", (8, 9, 10), ["03-08 01:30 EST", "03-09 01:30 EST", "03-10 01:30 EDT"]),
        ("30 2 * * *", (8, 9, 10), ["03-08 02:30 EST", "03-09 03:00 EDT", "03-10 02:30 EDT"]),
    ],
)
def test_daily_schedules_fire_once_a_day_through_spring_forward(make_schedule, enqueued, cron, days, expected):
    with time_machine.travel(datetime(2025, 3, days[0], 4, tzinfo=UTC), tick=False):
        schedule = make_schedule(cron, timezone="America/New_York")
    run_beat(datetime(2025, 3, days[0], 4, tzinfo=UTC), datetime(2025, 3, days[-1] + 1, 4, tzinfo=UTC),
             timedelta(minutes=7))
    assert local_ticks(schedule) == expected


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("30 1 * * *", ["11-01 01:30 EDT", "11-02 01:30 EDT", "11-03 01:30 EST"]),
        ("30 2 * * *", ["11-01 02:30 EDT", "11-02 02:30 EST", "11-03 02:30 EST"]),
    ],
)
def test_daily_schedules_fire_once_a_day_through_fall_back(make_schedule, enqueued, cron, expected):
    with time_machine.travel(datetime(2025, 11, 1, 4, tzinfo=UTC), tick=False):
        schedule = make_schedule(cron, timezone="America/New_York")
    run_beat(datetime(2025, 11, 1, 4, tzinfo=UTC), datetime(2025, 11, 4, 4, tzinfo=UTC), timedelta(minutes=7))
    assert local_ticks(schedule) == expected


@pytest.mark.parametrize("day", [datetime(2025, 3, 9, 3, tzinfo=UTC), datetime(2025, 11, 2, 3, tzinfo=UTC)])
def test_hourly_schedule_fires_once_per_real_hour_through_both_changes(make_schedule, enqueued, day):
    with time_machine.travel(day, tick=False):
        schedule = make_schedule("0 * * * *", timezone="America/New_York")
    run_beat(day, day + timedelta(hours=6), timedelta(minutes=2))
    fired = ticks_of(schedule)
    assert fired == [day + timedelta(hours=h) for h in range(1, 7)]


# --- two beats at once ----------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_two_ticks_running_at_once_over_many_ticks_start_one_run_per_tick(make_job, make_schedule, enqueued):
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        every_minute = [make_schedule("* * * * *") for _ in range(12)]
        five = make_schedule("*/5 * * * *")
        queued_job = make_job(concurrency_policy=ConcurrencyPolicy.QUEUE)
        queued = make_schedule("* * * * *", job=queued_job)  # the one-by-one path
    minutes = 25
    errors: list[BaseException] = []

    def beat(now, barrier):
        try:
            barrier.wait()
            schedules_tick(now=now, batch_size=5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    for minute in range(minutes):
        now = T0 + minute * MINUTE + timedelta(seconds=1)
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=beat, args=(now, barrier)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    expected_every_minute = [T0 + m * MINUTE for m in range(minutes)]
    for schedule in [*every_minute, queued]:
        assert ticks_of(schedule) == expected_every_minute
    assert ticks_of(five) == [T0 + m * MINUTE for m in range(0, minutes, 5)]
    total = Process.objects.count()
    assert total == 13 * minutes + 5
    # Every run not held behind the queue job's active one was dispatched exactly once.
    assert len(enqueued) == len(set(enqueued)) == total - Process.objects.filter(held=True).count()


def test_a_busy_tick_asks_another_worker_to_tick_with_it(make_schedule, at_t0, enqueued, monkeypatch, settings):
    from celery import current_app

    from jobs.scheduling.tick import TICK_TASK

    settings.JTB_SCHEDULE_TICK_HELPERS = 1
    helpers = []
    monkeypatch.setattr(current_app.tasks[TICK_TASK], "apply_async", lambda **kwargs: helpers.append(kwargs["kwargs"]))
    for _ in range(3):
        make_schedule("* * * * *")
    schedules_tick(now=T0 + timedelta(seconds=1), batch_size=2, fan_out=True)
    assert helpers == [{"helper": True}]
    schedules_tick(now=T0 + MINUTE + timedelta(seconds=1), batch_size=5, fan_out=True)  # one batch: alone
    assert helpers == [{"helper": True}]
    assert Process.objects.count() == 6

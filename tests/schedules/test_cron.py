"""Validation of what users type as a schedule, and fire times across daylight-saving changes."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from jobs import cron
from jobs.models import Schedule, ScheduleDriver

NEW_YORK = ZoneInfo("America/New_York")


def local(instants):
    return [instant.astimezone(NEW_YORK).strftime("%m-%d %H:%M %Z") for instant in instants]


def fires_between(expression, start, end, tz="America/New_York"):
    result = []
    for instant in cron.fire_times(expression, tz, after=start):
        if instant >= end:
            return result
        result.append(instant)
    return result


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron": "61 * * * *"}, "minute field: 61 in '61' is out of range 0-59."),
        ({"cron": "every day"}, "must have five fields"),
        ({"cron": "*/30 * * * * *"}, "Schedules run at most once a minute"),
        ({"timezone": "Mars/Olympus"}, "'Mars/Olympus' is not a known time zone"),
        ({"cron": "0 0 1 * MON", "driver": ScheduleDriver.EVENTBRIDGE}, "EventBridge Scheduler cannot express"),
        (
            {"start_at": datetime(2025, 6, 1, tzinfo=UTC), "end_at": datetime(2025, 5, 1, tzinfo=UTC)},
            "The end must be after the start.",
        ),
    ],
)
def test_invalid_schedules_are_refused_with_a_clear_message(make_job, fields, message):
    schedule = Schedule(job=make_job(), **{"cron": "0 6 * * *", "timezone": "UTC", **fields})
    with pytest.raises(ValidationError) as caught:
        schedule.full_clean()
    assert message in str(caught.value)


def test_the_same_cron_is_fine_for_beat_which_runs_either_day_field(make_job):
    schedule = Schedule(job=make_job(), cron="0 0 1 * MON", timezone="UTC")
    schedule.full_clean()
    fired = fires_between("0 0 1 * MON", datetime(2025, 9, 1, tzinfo=UTC) - timedelta(seconds=1),
                          datetime(2025, 9, 16, tzinfo=UTC), tz="UTC")
    assert [f.day for f in fired] == [1, 8, 15]  # the 1st (a Monday) and the Mondays after


def test_cron_is_stored_normalized_and_described_in_words(make_schedule):
    schedule = make_schedule("30   1 * *  mon-fri")
    assert schedule.cron == "30 1 * * mon-fri"
    assert schedule.cron_description == "At 01:30 AM, Monday through Friday"


# --- 2025-03-09, America/New_York: 02:00 EST jumps to 03:00 EDT (07:00 UTC) ------------------
SPRING = (datetime(2025, 3, 8, 5, tzinfo=UTC), datetime(2025, 3, 11, 4, tzinfo=UTC))  # 03-08..03-10 local


def test_daily_0130_fires_once_a_day_at_0130_across_spring_forward():
    assert local(fires_between("30 1 * * *", *SPRING)) == ["03-08 01:30 EST", "03-09 01:30 EST", "03-10 01:30 EDT"]


def test_daily_0230_fires_at_the_jump_on_the_night_0230_does_not_exist():
    fired = fires_between("30 2 * * *", *SPRING)
    assert local(fired) == ["03-08 02:30 EST", "03-09 03:00 EDT", "03-10 02:30 EDT"]
    assert fired[1] == datetime(2025, 3, 9, 7, 0, tzinfo=UTC)


def test_hourly_fires_once_per_real_hour_across_spring_forward():
    fired = fires_between("0 * * * *", datetime(2025, 3, 9, 4, 30, tzinfo=UTC), datetime(2025, 3, 9, 10, tzinfo=UTC))
    assert [f.hour for f in fired] == [5, 6, 7, 8, 9]  # UTC: no hour twice, none missing
    assert local(fired) == ["03-09 00:00 EST", "03-09 01:00 EST", "03-09 03:00 EDT", "03-09 04:00 EDT", "03-09 05:00 EDT"]


# --- 2025-11-02, America/New_York: 02:00 EDT falls back to 01:00 EST (06:00 UTC) -------------
FALL = (datetime(2025, 11, 1, 4, tzinfo=UTC), datetime(2025, 11, 4, 5, tzinfo=UTC))  # 11-01..11-03 local


def test_daily_0130_fires_once_on_the_night_0130_happens_twice():
    fired = fires_between("30 1 * * *", *FALL)
    assert local(fired) == ["11-01 01:30 EDT", "11-02 01:30 EDT", "11-03 01:30 EST"]


def test_daily_0230_fires_once_a_day_at_0230_across_fall_back():
    assert local(fires_between("30 2 * * *", *FALL)) == ["11-01 02:30 EDT", "11-02 02:30 EST", "11-03 02:30 EST"]


def test_hourly_fires_once_per_real_hour_across_fall_back_including_the_repeated_hour():
    fired = fires_between("0 * * * *", datetime(2025, 11, 2, 3, 30, tzinfo=UTC), datetime(2025, 11, 2, 9, tzinfo=UTC))
    assert [f.hour for f in fired] == [4, 5, 6, 7, 8]
    assert local(fired) == ["11-02 00:00 EDT", "11-02 01:00 EDT", "11-02 01:00 EST", "11-02 02:00 EST", "11-02 03:00 EST"]


def test_next_fire_asked_inside_the_repeated_hour_still_finds_its_second_occurrence():
    # 01:10 EDT: the next hourly tick is 01:00 EST, fifty minutes later in real time.
    after = datetime(2025, 11, 2, 5, 10, tzinfo=UTC)
    assert cron.next_fire("0 * * * *", "America/New_York", after=after) == datetime(2025, 11, 2, 6, 0, tzinfo=UTC)


def test_next_five_fire_times_are_shown_in_the_schedules_zone(make_schedule):
    schedule = make_schedule("30 2 * * *", timezone="America/New_York")
    shown = schedule.next_fire_times(after=datetime(2025, 3, 7, 12, tzinfo=UTC))
    assert [t.strftime("%m-%d %H:%M %Z") for t in shown] == [
        "03-08 02:30 EST", "03-09 03:00 EDT", "03-10 02:30 EDT", "03-11 02:30 EDT", "03-12 02:30 EDT",
    ]

"""`/api/v1/schedules/`: the resource, its validation, and the cron in words and times."""

from __future__ import annotations

from datetime import datetime

import pytest
import time_machine

from jobs.models import Schedule

pytestmark = pytest.mark.django_db

URL = "/api/v1/schedules/"


@time_machine.travel(datetime.fromisoformat("2025-03-07T12:00:00+00:00"), tick=False)
def test_created_schedule_describes_its_cron_and_next_five_runs_in_its_zone(api, make_job):
    job = make_job()

    response = api.post(URL, {"job": job.pk, "cron": "30 1 * * MON-FRI", "timezone": "America/New_York",
                              "notes": "before the warehouse loads"})

    assert response.status_code == 201, response.json()
    body = response.json()
    schedule = Schedule.objects.get(pk=body["id"])
    assert (schedule.job, schedule.description) == (job, "before the warehouse loads")
    assert body["description"] == "At 01:30 AM, Monday through Friday"
    # Weekdays at 01:30 New York time; the clocks go forward on 9 March 2025 (-05:00 to -04:00).
    assert body["next_runs"] == [
        "2025-03-10T01:30:00-04:00", "2025-03-11T01:30:00-04:00", "2025-03-12T01:30:00-04:00",
        "2025-03-13T01:30:00-04:00", "2025-03-14T01:30:00-04:00",
    ]
    assert body["driver"] == "beat" and body["next_fire_at"] is not None


def test_disabled_schedule_has_no_next_runs(api, make_job):
    response = api.post(URL, {"job": make_job().pk, "cron": "0 6 * * *", "enabled": False})

    assert response.status_code == 201
    assert response.json()["next_runs"] == []


def test_schedule_validation_is_the_models_with_field_messages(api, make_job):
    response = api.post(URL, {"job": make_job().pk, "cron": "0 25 * * *", "timezone": "Nowhere/City"})

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"cron", "timezone"}
    assert not Schedule.objects.exists()


def test_end_before_start_is_refused(api, make_job):
    response = api.post(URL, {"job": make_job().pk, "cron": "0 6 * * *",
                              "start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-01T00:00:00Z"})

    assert response.status_code == 400 and "end_at" in response.json()["errors"]


def test_updating_the_cron_moves_the_next_fire_time(api, make_job):
    schedule = Schedule.objects.create(job=make_job(), cron="0 6 * * *")

    response = api.patch(f"{URL}{schedule.pk}/", {"cron": "0 7 * * *", "timezone": "Europe/Paris"})

    assert response.status_code == 200, response.json()
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.timezone) == ("0 7 * * *", "Europe/Paris")
    assert response.json()["next_runs"][0].endswith(("+01:00", "+02:00"))
    assert schedule.next_fire_at is not None


def test_system_fields_are_read_only(api, make_job):
    schedule = Schedule.objects.create(job=make_job(), cron="0 6 * * *")

    response = api.patch(f"{URL}{schedule.pk}/", {"last_fired_at": "2020-01-01T00:00:00Z"})

    assert response.status_code == 200
    schedule.refresh_from_db()
    assert schedule.last_fired_at is None


def test_deleting_a_schedule_removes_it(api, make_job):
    schedule = Schedule.objects.create(job=make_job(), cron="0 6 * * *")

    assert api.delete(f"{URL}{schedule.pk}/").status_code == 204
    assert not Schedule.objects.exists()

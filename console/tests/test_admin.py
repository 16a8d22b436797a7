"""The viewer's own time zone, and django-celery-beat's models kept away from non-superusers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Permission
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from console.models import UserPreferences
from processes.models import Process, ProcessStatus, Trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    user = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_process"))
    return user


def test_a_person_sets_their_time_zone_in_the_admin_and_times_follow_it(client, staff, make_job):
    process = Process.objects.create(
        job=make_job(), status=ProcessStatus.SUCCEEDED, trigger=Trigger.MANUAL, snapshot={},
    )
    Process.objects.filter(pk=process.pk).update(created_at=datetime(2026, 1, 15, 23, 30, 5, tzinfo=UTC))
    client.force_login(staff)

    assert client.get("/admin/console/userpreferences/mine/")["Location"] == "/admin/console/userpreferences/add/"
    # One set per person: no "Save and add another", which could only be refused.
    form = client.get("/admin/console/userpreferences/add/").content.decode()
    assert 'name="_save"' in form and 'name="_addanother"' not in form
    response = client.post("/admin/console/userpreferences/add/", {"time_zone": "Europe/Berlin"})
    assert response.status_code == 302
    assert UserPreferences.objects.get(user=staff).time_zone == "Europe/Berlin"

    page = client.get(f"/admin/processes/process/{process.pk}/change/").content.decode()
    assert "2026-01-16 00:30:05 CET" in page


def test_without_a_preference_times_are_in_the_settings_zone_with_seconds_and_zone(client, staff, make_job):
    process = Process.objects.create(job=make_job(), status=ProcessStatus.SUCCEEDED, trigger=Trigger.MANUAL, snapshot={})
    Process.objects.filter(pk=process.pk).update(created_at=datetime(2026, 1, 15, 23, 30, 5, tzinfo=UTC))
    client.force_login(staff)

    page = client.get(f"/admin/processes/process/{process.pk}/change/").content.decode()

    assert settings.TIME_ZONE == "UTC"
    assert "2026-01-15 23:30:05 UTC" in page


def test_an_unknown_time_zone_is_refused_with_a_clear_message(client, staff):
    client.force_login(staff)

    response = client.post("/admin/console/userpreferences/add/", {"time_zone": "Mars/Olympus"})

    assert response.status_code == 200
    assert "Mars/Olympus is not one of the available choices" in response.content.decode()
    assert not UserPreferences.objects.exists()


def test_a_person_sees_and_edits_only_their_own_preferences(client, staff, django_user_model):
    other = django_user_model.objects.create_user("otto", password="pw", is_staff=True)
    theirs = UserPreferences.objects.create(user=other, time_zone="Asia/Tokyo")
    client.force_login(staff)

    assert client.get(f"/admin/console/userpreferences/{theirs.pk}/change/").status_code == 302  # not found for them
    client.post(f"/admin/console/userpreferences/{theirs.pk}/change/", {"time_zone": "UTC"})
    theirs.refresh_from_db()
    assert theirs.time_zone == "Asia/Tokyo"


def test_date_filters_use_the_viewers_day(client, staff, make_job):
    """At 23:30 UTC it is already tomorrow in Berlin: "Today" there includes a run from 23:10 UTC."""
    UserPreferences.objects.create(user=staff, time_zone="Europe/Berlin")
    job = make_job()
    late = Process.objects.create(job=job, status=ProcessStatus.SUCCEEDED, trigger=Trigger.MANUAL, snapshot={})
    earlier = Process.objects.create(job=job, status=ProcessStatus.SUCCEEDED, trigger=Trigger.MANUAL, snapshot={})
    Process.objects.filter(pk=late.pk).update(created_at=datetime(2026, 1, 15, 23, 10, tzinfo=UTC))
    Process.objects.filter(pk=earlier.pk).update(created_at=datetime(2026, 1, 15, 22, 50, tzinfo=UTC))
    client.force_login(staff)

    with time_machine.travel(datetime(2026, 1, 15, 23, 30, tzinfo=UTC), tick=False):
        response = client.get("/admin/processes/process/", {
            "created_at__gte": "2026-01-16 00:00:00+01:00", "created_at__lt": "2026-01-17 00:00:00+01:00",
        })
        today_link = client.get("/admin/processes/process/").content.decode()

    ids = [process.pk for process in response.context["cl"].result_list]
    assert ids == [late.pk]
    assert "created_at__gte=2026-01-16+00%3A00%3A00%2B01%3A00" in today_link


def test_beat_models_are_hidden_from_staff_who_are_not_superusers(client, staff):
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_celery_beat"))
    client.force_login(staff)

    home = client.get("/admin/").content.decode()

    assert "Periodic tasks" not in home
    assert client.get("/admin/django_celery_beat/periodictask/").status_code == 403
    assert client.get("/admin/django_celery_beat/intervalschedule/").status_code == 403


def test_superusers_cannot_edit_or_disable_the_schedule_tick(client, django_user_model):
    admin_user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    every_2s = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.SECONDS)
    tick = PeriodicTask.objects.create(name="jtb-schedules-tick", task="jobs.tasks.schedules_tick", interval=every_2s)
    own = PeriodicTask.objects.create(name="my report", task="jobs.tasks.schedules_tick", interval=every_2s,
                                      enabled=True)
    client.force_login(admin_user)

    page = client.get(f"/admin/django_celery_beat/periodictask/{tick.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    client.post("/admin/django_celery_beat/periodictask/", {
        "action": "disable_tasks", "_selected_action": [tick.pk, own.pk],
    })
    tick.refresh_from_db()
    own.refresh_from_db()
    assert tick.enabled and not own.enabled
    assert 'name="_save"' not in client.get(
        f"/admin/django_celery_beat/intervalschedule/{every_2s.pk}/change/").content.decode()

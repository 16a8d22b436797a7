"""The dashboard page, its live JSON and its rerun button, as a signed-in person sees them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from processes.models import Process, ProcessStatus, Task, TaskStatus, Trigger

pytestmark = pytest.mark.django_db


def _process(job, status, **fields) -> Process:
    return Process.objects.create(job=job, status=status, trigger=Trigger.MANUAL, snapshot={}, **fields)


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_user("olga", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_process"), Permission.objects.get(codename="view_job"),
        Permission.objects.get(codename="run_job"),
    )
    return user


def test_dashboard_is_the_admin_home_and_shows_running_waiting_and_failed_runs(client, operator, make_job):
    job = make_job(name="Nightly sales export")
    now = timezone.now()
    running = _process(job, ProcessStatus.RUNNING, started_at=now - timedelta(minutes=3))
    Task.objects.create(process=running, sequence=1, name="extract", status=TaskStatus.SUCCEEDED, started_at=now)
    Task.objects.create(process=running, sequence=2, name="transform", status=TaskStatus.RUNNING, started_at=now)
    waiting = _process(job, ProcessStatus.SUBMITTED, executor="aws_batch", executor_state="RUNNABLE")
    failed = _process(job, ProcessStatus.FAILED, started_at=now - timedelta(hours=1), finished_at=now - timedelta(minutes=50),
                      failure_reason="Task 'load' failed: ValueError: no rows")
    client.force_login(operator)

    page = client.get("/admin/").content.decode()

    assert "Operations console" in page
    assert "Running step 2: transform" in page
    assert f'data-process="{running.pk}"' in page
    assert "Waiting for capacity (AWS Batch: RUNNABLE)" in page and f'data-process="{waiting.pk}"' in page
    assert "no rows" in page and f'action="/admin/console/rerun/{failed.pk}/"' in page
    assert 'data-active="1"' in page


def test_dashboard_live_json_says_when_nothing_is_active(client, operator, make_job):
    job = make_job()
    _process(job, ProcessStatus.SUCCEEDED, started_at=timezone.now(), finished_at=timezone.now())
    client.force_login(operator)

    data = client.get("/admin/console/live/").json()

    assert data["active"] is False
    assert "Nothing is running." in data["parts"]["running"]
    assert 'data-figure="succeeded-24h">1<' in data["parts"]["summary"]


def test_rerun_from_the_dashboard_starts_a_linked_run(client, operator, make_job, no_dispatch):
    job = make_job()
    failed = _process(job, ProcessStatus.FAILED, finished_at=timezone.now(), parameters={"day": "monday"})
    client.force_login(operator)

    response = client.post(f"/admin/console/rerun/{failed.pk}/", follow=True)

    rerun = Process.objects.get(rerun_of=failed)
    assert rerun.parameters == {"day": "monday"} and rerun.trigger == Trigger.RERUN
    page = response.content.decode()
    assert f'Started rerun <a href="/admin/processes/process/{rerun.pk}/change/">#{rerun.pk}</a> of process #{failed.pk}' in page


def test_rerun_needs_the_run_permission(client, django_user_model, make_job):
    viewer = django_user_model.objects.create_user("vic", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_process"))
    failed = _process(make_job(), ProcessStatus.FAILED, finished_at=timezone.now())
    client.force_login(viewer)

    assert 'class="rerun-form"' not in client.get("/admin/").content.decode()
    assert client.post(f"/admin/console/rerun/{failed.pk}/").status_code == 403
    assert not Process.objects.filter(rerun_of=failed).exists()


def test_rerun_refuses_a_get(client, operator, make_job):
    failed = _process(make_job(), ProcessStatus.FAILED, finished_at=timezone.now())
    client.force_login(operator)

    assert client.get(f"/admin/console/rerun/{failed.pk}/").status_code == 405
    assert not Process.objects.filter(rerun_of=failed).exists()


def test_rerun_is_refused_without_the_csrf_token(operator, make_job):
    from django.test import Client

    failed = _process(make_job(), ProcessStatus.FAILED, finished_at=timezone.now())
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)

    assert client.post(f"/admin/console/rerun/{failed.pk}/").status_code == 403
    assert not Process.objects.filter(rerun_of=failed).exists()


def test_people_who_cannot_see_runs_get_the_stock_index(client, django_user_model):
    clerk = django_user_model.objects.create_user("cleo", password="pw", is_staff=True)
    client.force_login(clerk)

    page = client.get("/admin/").content.decode()

    assert "Operations console" in page  # the site's index title
    assert 'id="console"' not in page
    assert client.get("/admin/console/live/").status_code == 403


def test_dashboard_query_count_does_not_grow_with_the_number_of_runs(client, operator, make_job, django_assert_max_num_queries):
    job = make_job()
    now = timezone.now()
    for index in range(30):
        _process(job, ProcessStatus.FAILED, started_at=now - timedelta(minutes=index + 1), finished_at=now)
        _process(job, ProcessStatus.RUNNING, started_at=now)
    client.force_login(operator)
    with django_assert_max_num_queries(30):
        assert client.get("/admin/?range=7d").status_code == 200


def test_trends_are_kept_for_a_while_but_live_figures_are_not(client, operator, make_job, settings):
    from django.core.cache import cache

    settings.JTB_CONSOLE_TRENDS_CACHE_SECONDS = 60
    cache.clear()
    job = make_job()
    client.force_login(operator)
    assert 'data-figure="runs-window">(0)<' in client.get("/admin/").content.decode()

    _process(job, ProcessStatus.RUNNING, started_at=timezone.now())
    page = client.get("/admin/").content.decode()

    assert 'data-figure="runs-window">(0)<' in page  # the chart is the cached one
    assert 'data-figure="running">1<' in page  # the live figures are read every time
    cache.clear()


def test_the_site_icon_is_served_so_browsers_asking_for_it_log_no_warning(client, caplog):
    with caplog.at_level("WARNING", logger="django.request"):
        response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert b"<svg" in response.content
    assert not [r for r in caplog.records if r.name == "django.request"]

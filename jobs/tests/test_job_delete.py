"""Deleting a job never loads its whole history: counts on the confirmation page, batches in a task."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import jobs.services
from jobs.models import Job, Schedule
from jobs.services import job_delete, job_history_delete
from processes.models import Process, ProcessStatus, Task
from processes.services import ProcessRefused
from processes.tests.history import make_history
from runner.log_retention import process_logs_delete

pytestmark = pytest.mark.django_db


@pytest.fixture
def send_task():
    with mock.patch("jobs.tasks.delete_job_history.delay") as send:
        yield send


@pytest.fixture
def busy(make_job, monkeypatch):
    """A job with more runs than are deleted inline (the limit made small for the test)."""
    monkeypatch.setattr(jobs.services, "JOB_DELETE_INLINE_RUNS", 4)
    job = make_job(name="Nightly sales export")
    Schedule.objects.create(job=job, cron="0 1 * * *", timezone="UTC")
    make_history(job, 9, tasks=3)
    return job


def test_confirmation_page_shows_counts_not_the_history(admin_client, busy, monkeypatch):
    import jobs.admin

    monkeypatch.setattr(jobs.admin, "HISTORY_COUNT_CAP", 20)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse("admin:jobs_job_delete", args=[busy.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Its runs (processes): 9, their tasks: more than 20, schedules: 1" in body
    assert "Process: #" not in body and "step 1" not in body
    history = [q["sql"] for q in queries if "processes_" in q["sql"]]
    assert history and all("LIMIT" in sql.upper() for sql in history)


def test_job_with_a_short_history_is_deleted_at_once_with_its_logs(make_job, run_dirs, settings, send_task):
    job = make_job()
    runs = make_history(job, 3)
    settings.JTB_LOG_DIR.mkdir(parents=True, exist_ok=True)
    for run in runs:
        (settings.JTB_LOG_DIR / f"process-{run.pk}.log").write_text("x")

    assert job_delete(job=job, remove_logs=process_logs_delete) is True

    assert not Job.objects.filter(pk=job.pk).exists()
    assert not Process.objects.exists() and not Task.objects.exists()
    assert not list(settings.JTB_LOG_DIR.glob("*.log"))
    send_task.assert_not_called()


def test_job_with_a_long_history_is_disabled_then_deleted_in_batches(busy, send_task, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert job_delete(job=busy) is False

    busy.refresh_from_db()
    assert busy.enabled is False
    assert Process.objects.filter(job=busy).count() == 9
    send_task.assert_called_once_with(busy.pk)

    removed = []
    assert job_history_delete(job_id=busy.pk, batch_size=2, remove_logs=lambda runs: removed.extend(runs) or 0)

    assert not Job.objects.filter(pk=busy.pk).exists()
    assert not Process.objects.exists() and not Task.objects.exists()
    assert sorted(run.id for run in removed) == sorted({run.id for run in removed})
    assert len(removed) == 9


def test_the_delete_task_runs_twice_harmlessly(busy, send_task):
    from jobs.tasks import delete_job_history

    job_delete(job=busy)
    assert delete_job_history(busy.pk) is True
    assert delete_job_history(busy.pk) is False
    assert not Job.objects.filter(pk=busy.pk).exists()


def test_job_with_an_active_run_is_not_deleted(busy, send_task):
    make_history(busy, 1, status=ProcessStatus.RUNNING)
    with pytest.raises(ProcessRefused, match="active run"):
        job_delete(job=busy)
    busy.refresh_from_db()
    assert busy.enabled and Process.objects.filter(job=busy).count() == 10


def test_a_run_started_during_the_batches_keeps_the_job(busy, send_task):
    job_delete(job=busy)
    make_history(busy, 1, status=ProcessStatus.RUNNING)

    assert job_history_delete(job_id=busy.pk, batch_size=3) is False

    assert Job.objects.filter(pk=busy.pk).exists()
    assert list(Process.objects.values_list("status", flat=True)) == [ProcessStatus.RUNNING]


def test_admin_delete_of_a_long_history_says_it_continues_in_the_background(admin_client, busy, send_task):
    response = admin_client.post(reverse("admin:jobs_job_delete", args=[busy.pk]), {"post": "yes"}, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert any("being deleted in the background" in m for m in messages)
    assert Job.objects.get(pk=busy.pk).enabled is False


def test_api_delete_answers_202_for_a_long_history_and_204_for_a_short_one(busy, make_job, send_task, admin_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(admin_user)
    assert client.delete(f"/api/v1/jobs/{busy.pk}/").status_code == 202
    short = make_job()
    make_history(short, 2)
    assert client.delete(f"/api/v1/jobs/{short.pk}/").status_code == 204
    assert not Job.objects.filter(pk=short.pk).exists()

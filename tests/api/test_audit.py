"""Audit: every change to a job or schedule, from the admin or the API, is kept with who, when, where
from and before/after; the job page and GET jobs/{id}/history/ show it; each run records the job
version it started from."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import Job, Schedule
from processes.models import Process
from tests.api.conftest import VIEW_PERMS, token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]


def admin_form(job: Job, **changes) -> dict:
    data = {
        "name": job.name, "description": job.description, "enabled": "on", "template": job.template,
        "python_modules": "", "vcpus": str(job.vcpus), "memory_mib": str(job.memory_mib), "gpus": "0",
        "timeout_seconds": str(job.timeout_seconds), "retry_attempts": "1", "queue": "", "parameters": "{}",
        "environment": '{"REGION": "eu", "API_TOKEN": "********"}', "concurrency_policy": "allow",
        "notify_emails": "", "tags": "{}", "schedules-TOTAL_FORMS": "0", "schedules-INITIAL_FORMS": "0",
    }
    data.update(changes)
    return data


def test_a_job_edited_through_the_api_and_the_admin_keeps_every_version_with_who_and_what(make_user):
    alice = make_user("alice", *VIEW_PERMS, "jobs.add_job", "jobs.change_job")
    bob = make_user("bob", *VIEW_PERMS, "jobs.change_job")
    api = token_client(alice)

    created = api.post("/api/v1/jobs/", {"name": "export", "template": "examples/hello.py", "memory_mib": 512,
                                         "environment": {"REGION": "eu", "API_TOKEN": "t0ps3cret"}})
    job_id = created.json()["id"]
    assert api.patch(f"/api/v1/jobs/{job_id}/", {"memory_mib": 1024}).status_code == 200
    admin = Client()
    admin.force_login(bob)
    job = Job.objects.get(pk=job_id)
    saved = admin.post(reverse("admin:jobs_job_change", args=[job_id]), admin_form(job, description="Nightly export"))
    assert saved.status_code == 302

    history = api.get(f"/api/v1/jobs/{job_id}/history/").json()

    assert [(v["kind"], v["changed_by"], v["reason"]) for v in history] == [
        ("changed", "bob", "admin"), ("changed", "alice", "api"), ("created", "alice", "api")]
    assert {"field": "description", "before": "", "after": "Nightly export"} in history[0]["changes"]
    assert {"field": "memory_mib", "before": 512, "after": 1024} in history[1]["changes"]
    assert [c["field"] for c in history[0]["changes"]] == ["description"]  # the masked secret was kept as is
    assert "t0ps3cret" not in str(history)
    job.refresh_from_db()
    assert job.environment["API_TOKEN"] == "t0ps3cret"

    page = admin.get(reverse("admin:jobs_job_change", args=[job_id])).content.decode()
    assert 'id="job-versions"' in page and "bob" in page and "memory_mib: 512 → 1024" in page


def test_environment_values_in_the_history_are_masked_for_viewers(make_user, make_job):
    job = make_job(environment={"REGION": "eu"})
    editor = token_client(make_user("editor", *VIEW_PERMS, "jobs.change_job"))
    editor.patch(f"/api/v1/jobs/{job.pk}/", {"environment": {"REGION": "us"}})
    viewer = token_client(make_user("viewer", *VIEW_PERMS))

    seen_by_viewer = viewer.get(f"/api/v1/jobs/{job.pk}/history/").json()[0]["changes"]
    seen_by_editor = editor.get(f"/api/v1/jobs/{job.pk}/history/").json()[0]["changes"]

    assert seen_by_viewer == [{"field": "environment", "before": {"REGION": "********"},
                               "after": {"REGION": "********"}}]
    assert seen_by_editor == [{"field": "environment", "before": {"REGION": "eu"}, "after": {"REGION": "us"}}]


def test_schedule_changes_and_deletes_are_kept_without_the_ticks_bookkeeping(api, make_job):
    job = make_job()
    schedule_id = api.post("/api/v1/schedules/", {"job": job.pk, "cron": "0 6 * * *"}).json()["id"]
    api.patch(f"/api/v1/schedules/{schedule_id}/", {"cron": "0 7 * * *"})
    Schedule.objects.filter(pk=schedule_id).update(last_fired_at="2026-01-01T06:00:00Z")  # what a tick does

    history = api.get(f"/api/v1/schedules/{schedule_id}/history/").json()
    api.delete(f"/api/v1/schedules/{schedule_id}/")

    assert [v["kind"] for v in history] == ["changed", "created"]
    assert {"field": "cron", "before": "0 6 * * *", "after": "0 7 * * *"} in history[0]["changes"]
    kept = Schedule.history.filter(id=schedule_id).order_by("-history_id")
    assert [v.history_type for v in kept] == ["-", "~", "+"] and kept[0].history_user.username == "admin"


def test_each_run_records_the_job_version_it_started_from(api, make_job):
    job = make_job()
    first = api.post(f"/api/v1/jobs/{job.pk}/run/", {}).json()
    api.patch(f"/api/v1/jobs/{job.pk}/", {"memory_mib": 4096})
    second = api.post("/api/v1/runs/", {"runs": [{"job": job.pk}]}).json()[0]

    versions = [v["history_id"] for v in api.get(f"/api/v1/jobs/{job.pk}/history/").json()]

    assert first["job_version"] == versions[1] and second["job_version"] == versions[0]
    assert Process.objects.get(pk=second["id"]).job_version == versions[0]
    version = Job.history.get(history_id=first["job_version"])
    assert version.memory_mib != 4096

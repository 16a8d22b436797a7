"""Jobs through the API: create, read, update, delete, run; validation is the admin's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from jobs.models import Job
from processes.models import Process, ProcessStatus, Trigger

pytestmark = pytest.mark.django_db

URL = "/api/v1/jobs/"


def test_created_job_is_saved_with_defaults_and_returned(api):
    response = api.post(URL, {"name": "Nightly export", "template": "examples/hello.py",
                              "python_modules": ["requests>=2.31"], "vcpus": 0.5, "tags": {"team": "finance"}})

    assert response.status_code == 201, response.json()
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert job.vcpus == Decimal("0.50") and job.python_modules == ["requests>=2.31"]
    assert body["vcpus"] == 0.5 and body["concurrency_policy"] == "allow" and body["memory_mib"] == 2048
    assert set(body) >= {"created_at", "updated_at", "notify_emails", "environment", "parameters", "queue"}


def test_job_validation_is_the_models_clean_with_field_messages(api):
    response = api.post(URL, {"name": "x", "template": "examples/hello.py",
                              "python_modules": ["--index-url http://evil"], "environment": {"PATH": "/tmp"}})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "pip options are not allowed" in body["errors"]["python_modules"][0]
    assert "cannot be overridden" in body["errors"]["environment"][0]
    assert "python_modules" in body["message"]
    assert not Job.objects.exists()


def test_partial_update_changes_only_the_given_fields(api, make_job):
    job = make_job(description="old")

    response = api.patch(f"{URL}{job.pk}/", {"enabled": False})

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.enabled is False and job.description == "old"


def test_full_update_replaces_the_job(api, make_job):
    job = make_job()

    response = api.put(f"{URL}{job.pk}/", {"name": "renamed", "template": "examples/etl_fails.py"})

    assert response.status_code == 200, response.json()
    job.refresh_from_db()
    assert (job.name, job.template) == ("renamed", "examples/etl_fails.py")


def test_round_tripping_a_read_job_with_put_is_accepted(api, make_job):
    job = make_job(parameters={"since": "yesterday"})
    body = api.get(f"{URL}{job.pk}/").json()

    response = api.put(f"{URL}{job.pk}/", body)

    assert response.status_code == 200, response.json()


def test_duplicate_name_is_a_field_error(api, make_job):
    make_job(name="taken")

    response = api.post(URL, {"name": "taken", "template": "examples/hello.py"})

    assert response.status_code == 400
    assert "name" in response.json()["errors"]


def test_deleting_a_job_removes_it(api, make_job):
    job = make_job()

    assert api.delete(f"{URL}{job.pk}/").status_code == 204
    assert not Job.objects.filter(pk=job.pk).exists()


def test_deleting_a_job_with_an_active_run_is_refused_with_a_reason(api, make_job):
    job = make_job(name="busy")
    Process.objects.create(job=job, trigger=Trigger.MANUAL, status=ProcessStatus.RUNNING)

    response = api.delete(f"{URL}{job.pk}/")

    assert response.status_code == 409
    assert "active run" in response.json()["message"] and response.json()["code"] == "job_active"
    assert Job.objects.filter(pk=job.pk).exists()


def test_unknown_job_is_404_in_the_error_shape(api):
    response = api.get(f"{URL}999999/")

    assert response.status_code == 404
    assert set(response.json()) == {"message", "code", "errors"}


def test_running_a_job_starts_an_api_process_and_sends_its_dispatch(api, make_job, admin_user, dispatches):
    job = make_job(parameters={"since": "yesterday", "limit": 1})

    with dispatches() as sent:
        response = api.post(f"{URL}{job.pk}/run/", {"parameters": {"limit": 5}})

    assert response.status_code == 202, response.json()
    body = response.json()
    process = Process.objects.get(pk=body["id"])
    assert process.trigger == Trigger.API and process.triggered_by == admin_user
    assert process.parameters == {"since": "yesterday", "limit": 5}
    assert body["status"] == "queued" and body["job_name"] == job.name and body["tasks"] == []
    assert sent == [[process.pk]]


def test_running_without_a_body_uses_the_default_parameters(api, make_job):
    job = make_job(parameters={"a": 1})

    response = api.post(f"{URL}{job.pk}/run/")

    assert response.status_code == 202
    assert response.json()["parameters"] == {"a": 1}


def test_running_a_disabled_job_is_a_conflict(api, make_job):
    job = make_job(enabled=False)

    response = api.post(f"{URL}{job.pk}/run/", {})

    assert response.status_code == 409
    assert "disabled" in response.json()["message"]
    assert not Process.objects.exists()


def test_running_a_skip_job_with_an_active_run_is_a_conflict(api, make_job):
    job = make_job(concurrency_policy="skip")
    Process.objects.create(job=job, trigger=Trigger.MANUAL, status=ProcessStatus.RUNNING)

    response = api.post(f"{URL}{job.pk}/run/", {})

    assert response.status_code == 409
    assert "skip" in response.json()["message"]
    assert Process.objects.count() == 1


def test_run_parameters_must_be_an_object(api, make_job):
    job = make_job()

    response = api.post(f"{URL}{job.pk}/run/", {"parameters": ["a"]})

    assert response.status_code == 400
    assert "parameters" in response.json()["errors"]
    assert not Process.objects.exists()

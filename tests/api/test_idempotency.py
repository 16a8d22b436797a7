"""`Idempotency-Key` on run, bulk run and rerun: a repeated key gets the first answer and starts nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from processes.models import IdempotencyRecord, Process, ProcessStatus, Trigger
from processes.services import idempotency_records_expire, process_finish, process_start

pytestmark = pytest.mark.django_db


def test_a_repeated_key_on_run_replays_the_first_answer_and_starts_one_run(api, make_job, no_dispatch):
    job = make_job()
    first = api.post(f"/api/v1/jobs/{job.pk}/run/", {"parameters": {"a": 1}}, HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post(f"/api/v1/jobs/{job.pk}/run/", {"parameters": {"a": 1}}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Process.objects.count() == 1


def test_a_repeated_key_on_bulk_runs_replays_all_of_them(api, make_job, no_dispatch):
    job = make_job()
    body = {"runs": [{"job": job.pk}] * 5}
    first = api.post("/api/v1/runs/", body, HTTP_IDEMPOTENCY_KEY="batch-7")
    again = api.post("/api/v1/runs/", body, HTTP_IDEMPOTENCY_KEY="batch-7")
    assert first.status_code == again.status_code == 202
    assert [item["id"] for item in again.json()] == [item["id"] for item in first.json()]
    assert Process.objects.count() == 5


def test_a_repeated_key_on_rerun_replays_and_a_new_key_is_refused_while_the_rerun_is_in_flight(
    api, make_job, no_dispatch
):
    failed = process_start(job=make_job(), trigger=Trigger.MANUAL)
    process_finish(process_id=failed.pk, status=ProcessStatus.FAILED, failure_reason="boom", finalize_later=False)
    first = api.post(f"/api/v1/processes/{failed.pk}/rerun/", HTTP_IDEMPOTENCY_KEY="r")
    again = api.post(f"/api/v1/processes/{failed.pk}/rerun/", HTTP_IDEMPOTENCY_KEY="r")
    other = api.post(f"/api/v1/processes/{failed.pk}/rerun/", HTTP_IDEMPOTENCY_KEY="r2")
    assert first.status_code == again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert other.status_code == 409 and other.json()["code"] == "rerun_in_flight"
    assert Process.objects.filter(rerun_of=failed).count() == 1


def test_a_key_reused_for_another_request_is_a_conflict(api, make_job, no_dispatch):
    job = make_job()
    api.post(f"/api/v1/jobs/{job.pk}/run/", {"parameters": {"a": 1}}, HTTP_IDEMPOTENCY_KEY="k")
    other = api.post(f"/api/v1/jobs/{job.pk}/run/", {"parameters": {"a": 2}}, HTTP_IDEMPOTENCY_KEY="k")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    assert Process.objects.count() == 1


def test_errors_are_not_remembered_and_bad_keys_are_refused(api, make_job, no_dispatch):
    job = make_job(enabled=False)
    refused = api.post(f"/api/v1/jobs/{job.pk}/run/", {}, HTTP_IDEMPOTENCY_KEY="k")
    assert refused.status_code == 409
    job.enabled = True
    job.save()
    assert api.post(f"/api/v1/jobs/{job.pk}/run/", {}, HTTP_IDEMPOTENCY_KEY="k").status_code == 202
    assert api.post(f"/api/v1/jobs/{job.pk}/run/", {}, HTTP_IDEMPOTENCY_KEY="x" * 201).status_code == 400
    assert Process.objects.count() == 1


def test_keys_are_per_user_and_forgotten_after_a_day(api, make_job, make_user, no_dispatch):
    from tests.api.conftest import token_client

    job = make_job()
    other = token_client(make_user("other", "jobs.run_job", "jobs.view_job", "processes.view_process"))
    assert api.post(f"/api/v1/jobs/{job.pk}/run/", {}, HTTP_IDEMPOTENCY_KEY="same").status_code == 202
    assert other.post(f"/api/v1/jobs/{job.pk}/run/", {}, HTTP_IDEMPOTENCY_KEY="same").status_code == 202
    assert Process.objects.count() == 2
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        assert idempotency_records_expire(older_than_seconds=24 * 3600) == 2
        assert api.post(f"/api/v1/jobs/{job.pk}/run/", {}, HTTP_IDEMPOTENCY_KEY="same").status_code == 202
    assert Process.objects.count() == 3
    assert IdempotencyRecord.objects.count() == 1

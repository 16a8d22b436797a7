"""`POST /api/v1/runs/`: many runs in one call, all or none."""

from __future__ import annotations

import pytest

from processes.models import Process, ProcessStatus, Trigger
from processes.services import SUBMIT_CHUNK
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db

URL = "/api/v1/runs/"


def test_bulk_run_starts_every_run_in_order_and_sends_chunked_dispatches(api, make_job, admin_user, dispatches):
    first, second = make_job(parameters={"a": 1}), make_job()
    runs = [{"job": first.pk, "parameters": {"a": 2}}, {"job": second.pk}] * 40

    with dispatches() as sent:
        response = api.post(URL, {"runs": runs})

    assert response.status_code == 202, response.json()
    body = response.json()
    assert [item["job"] for item in body] == [run["job"] for run in runs]
    assert body[0]["parameters"] == {"a": 2} and body[1]["parameters"] == {}
    processes = Process.objects.filter(pk__in=[item["id"] for item in body])
    assert processes.count() == 80
    assert {(p.trigger, p.triggered_by_id, p.status) for p in processes} == {(Trigger.API, admin_user.pk, "queued")}
    assert sorted(pk for message in sent for pk in message) == sorted(item["id"] for item in body)
    assert [len(message) for message in sent] == [SUBMIT_CHUNK, 80 - SUBMIT_CHUNK]


def test_bulk_run_names_every_bad_entry_by_index_and_creates_nothing(api, make_job):
    job = make_job()
    runs = [{"job": job.pk}, {"job": 987654}, {"job": job.pk, "parameters": "nope"}, {"job": "x"}]

    response = api.post(URL, {"runs": runs})

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"runs.3.job"}  # type errors first: the body is not even well-formed
    response = api.post(URL, {"runs": runs[:3]})
    errors = response.json()["errors"]
    assert response.status_code == 400
    assert set(errors) == {"runs.1.job", "runs.2.parameters"}
    assert "987654" in errors["runs.1.job"][0] and "JSON object" in errors["runs.2.parameters"][0]
    assert not Process.objects.exists()


def test_bulk_run_refused_by_a_policy_is_a_conflict_and_creates_nothing(api, make_job):
    good, disabled, skip = make_job(), make_job(enabled=False), make_job(concurrency_policy="skip")
    Process.objects.create(job=skip, trigger=Trigger.MANUAL, status=ProcessStatus.RUNNING)

    response = api.post(URL, {"runs": [{"job": good.pk}, {"job": disabled.pk}, {"job": skip.pk}]})

    assert response.status_code == 409
    message = response.json()["message"]
    assert "run 1:" in message and "disabled" in message and "run 2:" in message
    assert Process.objects.count() == 1


def test_bulk_run_of_a_queue_job_holds_all_but_the_first(api, make_job, dispatches):
    job = make_job(concurrency_policy="queue")

    with dispatches() as sent:
        response = api.post(URL, {"runs": [{"job": job.pk}] * 3})

    assert response.status_code == 202
    ids = [item["id"] for item in response.json()]
    assert list(Process.objects.filter(pk__in=ids).order_by("pk").values_list("held", flat=True)) == [
        False, True, True,
    ]
    assert sent == [[ids[0]]]


@pytest.mark.parametrize("body", [{"runs": []}, {}, {"runs": {"job": 1}}, {"runs": [1, 2]}, []])
def test_bulk_run_body_must_be_a_non_empty_list_of_runs(api, body):
    response = api.post(URL, body)

    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid input")


def test_bulk_run_needs_the_run_permission(make_user, make_job):
    job = make_job()
    client = token_client(make_user("editor", "jobs.view_job", "jobs.change_job", "processes.view_process"))

    response = client.post(URL, {"runs": [{"job": job.pk}]})

    assert response.status_code == 403
    assert not Process.objects.exists()


def test_user_with_run_permission_can_run(make_user, make_job):
    job = make_job()
    client = token_client(make_user("operator", "jobs.run_job", "jobs.view_job"))

    assert client.post(URL, {"runs": [{"job": job.pk}]}).status_code == 202
    assert client.post(f"/api/v1/jobs/{job.pk}/run/").status_code == 202
    assert Process.objects.count() == 2

"""`/api/v1/processes/`: newest first, filters, cursor pagination, rerun, cancel, logs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from processes.models import Process, ProcessStatus, Task, Trigger
from runner.executors.local.executor import local_log_path

pytestmark = pytest.mark.django_db

URL = "/api/v1/processes/"


@pytest.fixture
def make_process(make_job):
    default_job = []

    def make(job=None, **fields) -> Process:
        if job is None:
            default_job or default_job.append(make_job())
            job = default_job[0]
        fields.setdefault("trigger", Trigger.MANUAL)
        fields.setdefault("executor", "local")
        return Process.objects.create(job=job, **fields)

    return make


def test_list_is_newest_first_and_filters_by_job_status_trigger_and_creation(api, make_job, make_process):
    job = make_job()
    old = make_process(job=job, status=ProcessStatus.FAILED)
    Process.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    failed = make_process(job=job, status=ProcessStatus.FAILED, trigger=Trigger.SCHEDULE)
    other = make_process(status=ProcessStatus.SUCCEEDED)

    def ids(**params):
        response = api.get(URL, params)
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["results"]]

    assert ids() == [other.pk, failed.pk, old.pk]
    assert ids(job=job.pk) == [failed.pk, old.pk]
    assert ids(status="failed", trigger="schedule") == [failed.pk]
    cutoff = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(created_after=cutoff, job=job.pk) == [failed.pk]
    assert ids(created_before=cutoff) == [old.pk]


@pytest.mark.parametrize("params", [{"status": "exploded"}, {"job": "one"}, {"job": 10**30},
                                    {"created_after": "yesterday"}, {"cursor": "garbage"}])
def test_bad_list_filters_are_400_with_the_parameter_named(api, params):
    response = api.get(URL, params)

    assert response.status_code == 400
    assert set(response.json()["errors"]) == set(params)


def test_cursor_pagination_walks_every_process_once_newest_first(api, make_process):
    created = [make_process().pk for _ in range(5)]
    seen, url, pages = [], f"{URL}?page_size=2", 0

    while url:
        body = api.get(url).json()
        assert "count" not in body
        seen += [item["id"] for item in body["results"]]
        url, pages = body["next"], pages + 1

    assert seen == sorted(created, reverse=True) and pages == 3


def test_forged_cursor_position_is_400_not_a_database_error(api):
    import base64

    cursor = base64.b64encode(b"p=abc").decode()

    response = api.get(URL, {"cursor": cursor})

    assert response.status_code == 400 and "cursor" in response.json()["errors"]


def test_detail_has_the_tasks_in_order_and_who_started_it(api, make_process, admin_user):
    process = make_process(status=ProcessStatus.FAILED, triggered_by=admin_user, failure_reason="boom")
    now = timezone.now()
    Task.objects.create(process=process, name="load", sequence=2, started_at=now, status="failed", error="x")
    Task.objects.create(process=process, name="extract", sequence=1, started_at=now, status="succeeded")

    body = api.get(f"{URL}{process.pk}/").json()

    assert [task["name"] for task in body["tasks"]] == ["extract", "load"]
    assert body["triggered_by"] == "admin" and body["failure_reason"] == "boom"
    assert set(body["tasks"][0]) == {"id", "name", "sequence", "status", "started_at", "finished_at", "error",
                                     "traceback"}


def test_rerun_of_a_failed_process_starts_a_linked_run(api, make_process):
    process = make_process(status=ProcessStatus.FAILED, parameters={"day": "monday"})

    response = api.post(f"{URL}{process.pk}/rerun/")

    assert response.status_code == 202
    body = response.json()
    assert body["rerun_of"] == process.pk and body["parameters"] == {"day": "monday"}
    assert body["trigger"] == "rerun" and body["status"] == "queued"


@pytest.mark.parametrize("status", [ProcessStatus.SUCCEEDED, ProcessStatus.RUNNING])
def test_rerun_of_a_process_that_did_not_fail_is_a_conflict(api, make_process, status):
    process = make_process(status=status)

    response = api.post(f"{URL}{process.pk}/rerun/")

    assert response.status_code == 409
    assert "Only failed or cancelled" in response.json()["message"]
    assert Process.objects.count() == 1


def test_cancel_of_a_queued_process_cancels_it(api, make_process):
    process = make_process(status=ProcessStatus.QUEUED)

    response = api.post(f"{URL}{process.pk}/cancel/")

    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    process.refresh_from_db()
    assert process.status == ProcessStatus.CANCELLED


def test_cancel_of_a_running_process_asks_the_executor_and_keeps_it_running(api, make_process):
    process = make_process(status=ProcessStatus.RUNNING)

    response = api.post(f"{URL}{process.pk}/cancel/")

    assert response.status_code == 202
    process.refresh_from_db()
    assert process.status == ProcessStatus.RUNNING and process.cancel_requested_at is not None


def test_cancel_of_a_finished_process_is_a_conflict(api, make_process):
    process = make_process(status=ProcessStatus.SUCCEEDED)

    response = api.post(f"{URL}{process.pk}/cancel/")

    assert response.status_code == 409 and "nothing to cancel" in response.json()["message"]


def test_logs_are_text_with_an_offset_to_tail_them(api, make_process, run_dirs):
    process = make_process(status=ProcessStatus.RUNNING)
    path = local_log_path(process.pk)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("first line\n")

    response = api.get(f"{URL}{process.pk}/logs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"first line\n"
    offset = response["X-Next-Offset"]
    assert offset == "11"

    with path.open("a") as handle:
        handle.write("second line\n")
    tail = api.get(f"{URL}{process.pk}/logs/", {"offset": offset})
    assert tail.content == b"second line\n" and tail["X-Next-Offset"] == "23"


def test_logs_errors_are_json_even_when_text_is_asked_for(api):
    response = api.get(f"{URL}424242/logs/", HTTP_ACCEPT="text/plain")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_list_rows_are_what_the_summary_serializer_answers(api, make_job, make_process, admin_user, zone, settings):
    """The list builds its rows without the serializer (processes.serializers.process_summaries):
    every field, in order, in the active time zone, must be the serializer's answer."""
    from django.utils import timezone as tz

    from jobs.models import Schedule
    from processes.serializers import ProcessSummarySerializer

    settings.TIME_ZONE = zone
    job = make_job()
    schedule = Schedule.objects.create(job=job, cron="* * * * *", timezone="UTC")
    failed = make_process(job=job, status=ProcessStatus.FAILED, exit_code=3, failure_reason="boom",
                          parameters={"day": "2026-03-10", "n": [1, 2.5, None]}, triggered_by=admin_user,
                          executor_state="FAILED", executor_status_reason="Essential container exited")
    now = tz.now()
    Process.objects.filter(pk=failed.pk).update(started_at=now - timedelta(seconds=90, microseconds=1234),
                                                finished_at=now, submitted_at=now - timedelta(minutes=2))
    make_process(job=job, status=ProcessStatus.QUEUED, trigger=Trigger.RERUN, rerun_of=failed, held=True)
    make_process(job=job, status=ProcessStatus.RUNNING, trigger=Trigger.SCHEDULE, schedule=schedule,
                 scheduled_for=now.replace(second=0, microsecond=0), job_version=7, cancel_requested_at=now)

    with tz.override(zone):
        expected = ProcessSummarySerializer(Process.objects.order_by("-id"), many=True).data
    answered = api.get(URL, {"page_size": 10}, HTTP_ACCEPT="application/json").json()["results"]
    assert answered == [dict(row) for row in expected]
    assert [list(row) for row in answered] == [list(row) for row in expected]
    assert len(answered) == 3

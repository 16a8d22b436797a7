"""Bulk starts on backends that cannot return ids from a bulk insert (SQL Server), and one rerun in
flight per failed run."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import close_old_connections, connection

from jobs.models import Schedule
from jobs.scheduling.tick import schedules_tick
from jobs.services import schedule_save
from processes import services
from processes.models import Process, ProcessStatus, Trigger
from processes.services import ProcessRefused, RunRequest
from tests.api.conftest import token_client

T0 = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def no_bulk_ids(monkeypatch):
    """The backend answers a bulk insert without ids, as mssql-django does."""
    features = connection.features
    monkeypatch.setattr(type(features), "can_return_rows_from_bulk_insert", False)
    monkeypatch.delitem(features.__dict__, "can_return_rows_from_bulk_insert", raising=False)
    assert not features.can_return_rows_from_bulk_insert


@pytest.mark.django_db
def test_bulk_start_without_returned_ids_inserts_each_run_once_with_its_own_id(
    make_job, no_dispatch, no_bulk_ids, django_capture_on_commit_callbacks
):
    jobs = [make_job(parameters={"n": index}) for index in range(3)]
    requests = [RunRequest(job=jobs[index % 3], parameters={"i": index}) for index in range(30)]

    with django_capture_on_commit_callbacks(execute=True):
        processes = services.process_start_many(requests=requests, trigger=Trigger.API)

    assert Process.objects.count() == 30
    assert all(process.pk for process in processes)
    rows = {row.pk: row for row in Process.objects.all()}
    for index, process in enumerate(processes):
        assert rows[process.pk].parameters == {"n": index % 3, "i": index}
        assert rows[process.pk].bulk_key is None
    assert {row.status for row in rows.values()} == {ProcessStatus.QUEUED}
    sent = sorted(pk for call in no_dispatch.call_args_list for pk in call.args[0])
    assert sent == sorted(rows)


@pytest.mark.django_db
def test_api_bulk_run_without_returned_ids_answers_with_the_new_runs(make_job, no_bulk_ids, no_dispatch,
                                                                     django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "a-Long-passw0rd")
    job = make_job()
    response = token_client(admin).post("/api/v1/runs/", {"runs": [{"job": job.pk, "parameters": {"k": i}}
                                                                   for i in range(12)]}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert Process.objects.count() == 12
    assert [Process.objects.get(pk=item["id"]).parameters["k"] for item in body] == list(range(12))


@pytest.mark.django_db
def test_the_tick_starts_many_schedules_in_one_bulk_without_returned_ids(make_job, no_dispatch, no_bulk_ids):
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        for _ in range(8):
            schedule_save(schedule=Schedule(job=make_job(), cron="* * * * *", timezone="UTC"))
    result = schedules_tick(now=T0 + timedelta(seconds=1))
    assert result.started == 8
    assert Process.objects.count() == 8
    assert Process.objects.filter(scheduled_for=T0).count() == 8
    # A second tick for the same minute starts nothing more.
    assert schedules_tick(now=T0 + timedelta(seconds=2)).started == 0
    assert Process.objects.count() == 8


def failed_run(make_job) -> Process:
    process = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
    services.process_finish(process_id=process.pk, status=ProcessStatus.FAILED, failure_reason="boom",
                            finalize_later=False)
    return Process.objects.get(pk=process.pk)


@pytest.mark.django_db
def test_a_second_rerun_while_the_first_is_in_flight_is_refused_naming_it(make_job, no_dispatch):
    failed = failed_run(make_job)
    first = services.process_rerun(process=failed)
    with pytest.raises(ProcessRefused) as refused:
        services.process_rerun(process=failed)
    assert refused.value.code == "rerun_in_flight"
    assert f"process {first.pk}" in refused.value.message
    assert Process.objects.filter(rerun_of=failed).count() == 1
    # Once that rerun has ended, the failed run may be rerun again.
    services.process_finish(process_id=first.pk, status=ProcessStatus.FAILED, failure_reason="again",
                            finalize_later=False)
    assert services.process_rerun(process=failed).rerun_of_id == failed.pk


@pytest.mark.django_db
def test_api_answers_409_for_a_second_rerun(make_job, no_dispatch, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "a-Long-passw0rd")
    failed = failed_run(make_job)
    client = token_client(admin)
    first = client.post(f"/api/v1/processes/{failed.pk}/rerun/")
    second = client.post(f"/api/v1/processes/{failed.pk}/rerun/")
    assert first.status_code == 202
    assert second.status_code == 409
    assert second.json()["code"] == "rerun_in_flight"
    assert str(first.json()["id"]) in second.json()["message"]


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_reruns_make_one_new_run(make_job, no_dispatch):
    failed = failed_run(make_job)
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def rerun() -> None:
        try:
            barrier.wait(timeout=60)
            services.process_rerun(process=Process.objects.get(pk=failed.pk))
            outcomes.append("started")
        except ProcessRefused as exc:
            outcomes.append(exc.code)
        except Exception as exc:  # anything else is a bug the test must show
            outcomes.append(f"{type(exc).__name__}: {exc}")
        finally:
            close_old_connections()

    threads = [threading.Thread(target=rerun) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(set(outcomes)) == ["rerun_in_flight", "started"], outcomes
    assert outcomes.count("started") == 1
    assert Process.objects.filter(rerun_of=failed).count() == 1

"""Submitting runs to AWS Batch (moto): the request's fields, exactly one job per run, throttling."""

from __future__ import annotations

from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from jobs.models import Job
from processes.executors import executor_get
from processes.models import Process, ProcessStatus, Trigger
from processes.services import RunRequest, process_start, process_start_many, processes_submit
from runner.aws.batch_request import TIMEOUT_MARGIN_SECONDS
from runner.aws.client import aws_client
from runner.executors.aws_batch import submission as batch_submission
from runner.executors.aws_batch.tracking import batch_processes_track

pytestmark = pytest.mark.django_db


def jobs_named(name: str, queue: str) -> list[dict]:
    answer = aws_client("batch").list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}])
    return answer["jobSummaryList"]


def test_submit_sends_resources_timeout_retry_tags_and_queue_and_stores_the_job_id(batch_job, batch_calls):
    process = process_start(job=batch_job, trigger=Trigger.MANUAL)

    processes_submit(process_ids=[process.pk])

    process.refresh_from_db()
    [sent] = batch_calls.of("SubmitJob")
    assert sent == {
        "jobName": f"jtb-job{batch_job.pk}-process{process.pk}",
        "jobQueue": "spot-small",
        "jobDefinition": "jtb-runner",
        "parameters": {"process_id": str(process.pk)},
        "containerOverrides": {
            "resourceRequirements": [
                {"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}, {"type": "GPU", "value": "1"},
            ],
            "environment": [{"name": "JTB_PROCESS_ID", "value": str(process.pk)}],
        },
        "timeout": {"attemptDurationSeconds": 1800 + TIMEOUT_MARGIN_SECONDS},
        "retryStrategy": {
            "attempts": 3,
            "evaluateOnExit": [
                {"onStatusReason": "Host EC2*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"},
            ],
        },
        "tags": {"team": "finance", "jtb:job-id": str(batch_job.pk), "jtb:process-id": str(process.pk)},
        "propagateTags": True,
    }
    assert process.status == ProcessStatus.SUBMITTED
    assert process.executor == "aws_batch"
    [listed] = jobs_named(sent["jobName"], "spot-small")
    assert process.external_id == listed["jobId"]
    described = aws_client("batch").describe_jobs(jobs=[process.external_id])["jobs"][0]
    assert described["tags"]["jtb:process-id"] == str(process.pk)


def test_small_job_without_gpu_on_the_default_queue_gets_whole_vcpus_and_at_least_60_s(batch_calls):
    job = Job.objects.create(name="tiny", template="examples/hello.py", vcpus=Decimal("0.25"), memory_mib=512,
                             timeout_seconds=1)
    process = process_start(job=job, trigger=Trigger.MANUAL)

    executor_get().submit([process])

    [sent] = batch_calls.of("SubmitJob")
    assert sent["jobQueue"] == "jtb-default"
    assert sent["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"},
    ]
    assert sent["timeout"]["attemptDurationSeconds"] >= 60
    assert sent["retryStrategy"]["attempts"] == 1


def test_fargate_queue_uses_the_fargate_definition_and_fractional_vcpus(batch_calls):
    job = Job.objects.create(name="fargate", template="examples/hello.py", vcpus=Decimal("0.25"), memory_mib=512,
                             queue="fargate-small")
    process = process_start(job=job, trigger=Trigger.MANUAL)

    executor_get().submit([process])

    [sent] = batch_calls.of("SubmitJob")
    assert sent["jobDefinition"] == "jtb-runner-fargate"
    assert sent["containerOverrides"]["resourceRequirements"][0] == {"type": "VCPU", "value": "0.25"}


def test_dispatch_delivered_twice_submits_one_batch_job(batch_job, batch_calls):
    process = process_start(job=batch_job, trigger=Trigger.MANUAL)

    processes_submit(process_ids=[process.pk])
    processes_submit(process_ids=[process.pk])
    executor_get().submit([Process.objects.get(pk=process.pk)])

    assert len(batch_calls.of("SubmitJob")) == 1
    assert len(jobs_named(f"jtb-job{batch_job.pk}-process{process.pk}", "spot-small")) == 1


class WorkerKilled(BaseException):
    """Stands for SIGKILL of the worker: nothing after it runs, not even `except Exception`."""


def test_worker_killed_between_submit_and_saving_the_id_leaves_one_job_that_the_tracker_records(
    batch_job, batch_calls, monkeypatch, settings
):
    process = process_start(job=batch_job, trigger=Trigger.MANUAL)

    def killed(**kwargs):
        raise WorkerKilled

    monkeypatch.setattr(batch_submission, "batch_job_ids_record", killed)
    with pytest.raises(WorkerKilled):
        processes_submit(process_ids=[process.pk])
    monkeypatch.undo()
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUBMITTED and process.external_id == ""

    # Within the grace period the tracker leaves it alone: the worker might still save the id.
    batch_processes_track()
    process.refresh_from_db()
    assert process.external_id == ""
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=settings.JTB_BATCH_SUBMIT_GRACE_SECONDS + 5)):
        counts = batch_processes_track()
        again = batch_processes_track()

    process.refresh_from_db()
    listed = jobs_named(f"jtb-job{batch_job.pk}-process{process.pk}", "spot-small")
    assert len(listed) == 1
    assert len(batch_calls.of("SubmitJob")) == 1
    assert counts["recovered"] == 1 and again["recovered"] == 0
    assert process.external_id == listed[0]["jobId"]


def test_worker_killed_before_submit_job_gets_the_run_submitted_by_the_tracker(batch_job, batch_calls, monkeypatch, settings):
    process = process_start(job=batch_job, trigger=Trigger.MANUAL)

    def killed(**kwargs):
        raise WorkerKilled

    monkeypatch.setattr(batch_submission, "batch_submissions_send", killed)
    with pytest.raises(WorkerKilled):
        processes_submit(process_ids=[process.pk])
    monkeypatch.undo()
    assert batch_calls.of("SubmitJob") == []

    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=settings.JTB_BATCH_SUBMIT_GRACE_SECONDS + 5)):
        batch_processes_track()

    process.refresh_from_db()
    listed = jobs_named(f"jtb-job{batch_job.pk}-process{process.pk}", "spot-small")
    assert [job["jobId"] for job in listed] == [process.external_id]


def test_a_second_submission_racing_the_first_terminates_its_own_job(batch_job, batch_calls):
    process = process_start(job=batch_job, trigger=Trigger.MANUAL)
    processes_submit(process_ids=[process.pk])
    process.refresh_from_db()
    first = process.external_id

    # A recovery that did not see the saved id submits again: its job must not survive.
    assert batch_submission.batch_submission_send(process=process) is None

    process.refresh_from_db()
    assert process.external_id == first
    [terminate] = batch_calls.of("TerminateJob")
    assert terminate["jobId"] != first


def test_burst_of_too_many_requests_still_submits_every_run_once(batch_setup, batch_calls, throttle_submits, settings):
    job = Job.objects.create(name="bulk", template="examples/hello.py")
    processes = process_start_many(requests=[RunRequest(job=job) for _ in range(25)], trigger=Trigger.API)
    # Longer than one call's retries: the first runs give up and wait for the tracker.
    throttle = throttle_submits(60)

    for process in processes:
        processes_submit(process_ids=[process.pk])
    waiting = Process.objects.filter(job=job, external_id="").count()
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=settings.JTB_BATCH_SUBMIT_GRACE_SECONDS + 5)):
        batch_processes_track()

    assert throttle.sent == 60 and 0 < waiting < 25
    ids = set(Process.objects.filter(job=job).values_list("external_id", flat=True))
    listed = aws_client("batch").list_jobs(jobQueue="jtb-default", filters=[{"name": "JOB_NAME", "values": ["jtb-job*"]}])
    assert len(ids) == 25 and "" not in ids
    assert sorted(job["jobId"] for job in listed["jobSummaryList"]) == sorted(ids)


def test_throttled_through_every_retry_leaves_the_run_for_the_tracker_not_lost(
    batch_job, batch_calls, throttle_submits, settings
):
    process = process_start(job=batch_job, trigger=Trigger.MANUAL)
    throttle_submits(1000)

    processes_submit(process_ids=[process.pk])

    process.refresh_from_db()
    assert process.status == ProcessStatus.SUBMITTED and process.external_id == ""
    assert "tracker" in process.executor_status_reason


def test_batch_refusing_the_run_fails_it_with_batchs_reason(batch_calls):
    job = Job.objects.create(name="nowhere", template="examples/hello.py", queue="no-such-queue")
    process = process_start(job=job, trigger=Trigger.MANUAL)

    processes_submit(process_ids=[process.pk])

    process.refresh_from_db()
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason.startswith("AWS Batch refused the run:")
    assert "no-such-queue" in process.failure_reason

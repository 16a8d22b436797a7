"""One SubmitJob request for both ways a run reaches AWS Batch: direct submission of a Process and
the EventBridge Scheduler input of an `eventbridge` schedule must carry the same settings."""

from __future__ import annotations

import re

import botocore.session
import pytest
from botocore.validate import ParamValidator

from jobs.models import Job, Schedule, ScheduleDriver
from jobs.scheduling.eventbridge import batch_submit_input
from processes.models import Trigger
from processes.services import process_start
from runner.aws.batch_request import MAX_JOB_NAME, batch_job_name, pascal_case
from runner.executors.aws_batch.submission import submit_job_params

pytestmark = pytest.mark.django_db

VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def submit_job_shape():
    model = botocore.session.get_session().get_service_model("batch")
    return model.operation_model("SubmitJob").input_shape


def assert_valid_submit_job(request: dict) -> None:
    report = ParamValidator().validate(request, submit_job_shape())
    assert not report.has_errors(), report.generate_report()


@pytest.fixture
def job(make_job, settings):
    settings.JTB_BATCH_FARGATE_QUEUES = ["fq"]
    job = make_job(
        vcpus="2", memory_mib=4096, gpus=1, timeout_seconds=900, retry_attempts=3, queue="spot-large",
        tags={"team": "finance"},
    )
    # Reserved keys are refused on save now; a row stored before that still must not spoof ours.
    job.tags = {"team": "finance", "jtb:job-id": "spoofed", "aws:cost": "x"}
    Job.objects.filter(pk=job.pk).update(tags=job.tags)
    return job


def test_direct_request_and_eventbridge_input_carry_the_same_settings(job, no_dispatch):
    process = process_start(job=job, trigger=Trigger.MANUAL)
    direct = submit_job_params(process)
    schedule = Schedule.objects.create(job=job, cron="0 7 * * *", timezone="UTC", driver=ScheduleDriver.EVENTBRIDGE)
    scheduled = batch_submit_input(schedule)

    assert_valid_submit_job(direct)
    as_pascal = pascal_case(direct)
    for member in ("JobQueue", "JobDefinition", "Timeout", "RetryStrategy", "PropagateTags"):
        assert scheduled[member] == as_pascal[member], member
    assert scheduled["ContainerOverrides"]["ResourceRequirements"] == [
        {"Type": "VCPU", "Value": "2"}, {"Type": "MEMORY", "Value": "4096"}, {"Type": "GPU", "Value": "1"},
    ]
    assert scheduled["ContainerOverrides"]["ResourceRequirements"] == as_pascal["ContainerOverrides"]["ResourceRequirements"]
    assert scheduled["RetryStrategy"] == {"Attempts": 3, "EvaluateOnExit": [
        {"OnStatusReason": "Host EC2*", "Action": "RETRY"}, {"OnReason": "*", "Action": "EXIT"},
    ]}
    assert scheduled["Timeout"] == {"AttemptDurationSeconds": 900 + 300}
    # The job's own tags on both, reserved keys dropped, each with its own system ids.
    assert direct["tags"] == {"team": "finance", "jtb:job-id": str(job.pk), "jtb:process-id": str(process.pk)}
    assert scheduled["Tags"] == {"team": "finance", "jtb:job-id": str(job.pk), "jtb:schedule-id": str(schedule.pk)}
    # The EventBridge input is the same request in PascalCase: the universal target's spelling.
    assert set(scheduled) - {"Parameters"} == set(as_pascal) - {"Parameters"}


def test_fargate_queue_sends_fractional_vcpus_and_the_fargate_definition_on_both_paths(make_job, settings, no_dispatch):
    settings.JTB_BATCH_FARGATE_QUEUES = ["fq"]
    job = make_job(vcpus="0.25", memory_mib=512, queue="fq")
    direct = submit_job_params(process_start(job=job, trigger=Trigger.MANUAL))
    scheduled = batch_submit_input(Schedule.objects.create(job=job, cron="0 7 * * *", driver=ScheduleDriver.EVENTBRIDGE))
    assert direct["jobDefinition"] == scheduled["JobDefinition"] == "jtb-runner-fargate"
    assert direct["containerOverrides"]["resourceRequirements"][0] == {"type": "VCPU", "value": "0.25"}
    assert scheduled["ContainerOverrides"]["ResourceRequirements"][0] == {"Type": "VCPU", "Value": "0.25"}


@pytest.mark.parametrize("prefix", [
    "jtb", "", "---", "__x", "prod.eu/west", "🚀 rocket", "a" * 200, "-" * 150 + "b", "x_" * 80,
])
def test_job_names_are_valid_and_end_with_the_ids_whatever_the_prefix(prefix, settings):
    settings.JTB_BATCH_NAME_PREFIX = prefix
    for suffix in ("process9223372036854775807", "schedule42"):
        name = batch_job_name(job_id=9223372036854775807, suffix=suffix)
        assert VALID_NAME.match(name), name
        assert len(name) <= MAX_JOB_NAME
        assert name.endswith(f"-job9223372036854775807-{suffix}")


def test_direct_request_with_a_long_prefix_passes_botocores_validator(job, settings, no_dispatch):
    settings.JTB_BATCH_NAME_PREFIX = "p" * 300
    request = submit_job_params(process_start(job=job, trigger=Trigger.MANUAL))
    assert_valid_submit_job(request)
    assert VALID_NAME.match(request["jobName"])

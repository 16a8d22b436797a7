"""What AWS refuses is refused when a job or schedule is saved, and what is accepted AWS accepts.

Every refused combination is a 400 naming the field; every accepted one becomes a SubmitJob
request (direct, `submit_job_params`, and EventBridge Scheduler's input, `batch_submit_input`)
that botocore's own ParamValidator passes against the AWS Batch service model.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import botocore.session
import pytest
from botocore.validate import ParamValidator

from jobs.models import Job, Schedule
from jobs.scheduling.eventbridge import batch_submit_input, remote_spec
from processes.models import Trigger
from processes.services import process_start
from runner.executors.aws_batch.submission import submit_job_params

pytestmark = pytest.mark.django_db

JOBS, SCHEDULES = "/api/v1/jobs/", "/api/v1/schedules/"
FARGATE_ARN = "arn:aws:batch:us-east-1:123456789012:job-queue/fq-by-arn"
BATCH = botocore.session.get_session().get_service_model("batch")
SUBMIT_JOB = BATCH.operation_model("SubmitJob").input_shape
SCHEDULER = botocore.session.get_session().get_service_model("scheduler")
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


@pytest.fixture(autouse=True)
def on_aws(settings):
    settings.JTB_EXECUTOR = "aws_batch"
    settings.JTB_BATCH_JOB_QUEUE = "jtb-default"
    settings.JTB_BATCH_FARGATE_QUEUES = ["fq", FARGATE_ARN]
    settings.JTB_SCHEDULER_ROLE_ARN = "arn:aws:iam::123456789012:role/jtb-scheduler"


def _id(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=sorted)[:50]


def many_tags(count: int) -> dict[str, str]:
    return {f"cost-center-{n}": f"value {n}" for n in range(count)}


REFUSED = [
    # Fargate: vCPUs, memory for those vCPUs, GPUs; a Fargate queue named by its ARN too.
    ({"queue": "fq", "vcpus": 0.3, "gpus": 2}, {"vcpus", "gpus"}),
    ({"queue": "fq", "vcpus": 0.75, "memory_mib": 2048}, {"vcpus"}),
    ({"queue": "fq", "vcpus": 3, "memory_mib": 8192}, {"vcpus"}),
    ({"queue": "fq", "vcpus": 64, "memory_mib": 131072}, {"vcpus"}),
    ({"queue": "fq", "vcpus": 1, "memory_mib": 512}, {"memory_mib"}),
    ({"queue": "fq", "vcpus": 4, "memory_mib": 10000}, {"memory_mib"}),
    ({"queue": "fq", "vcpus": 1, "memory_mib": 2048, "gpus": 1}, {"gpus"}),
    ({"queue": FARGATE_ARN, "vcpus": 0.3, "memory_mib": 1024}, {"vcpus"}),
    ({"queue": "fq-by-arn", "vcpus": 2, "memory_mib": 2048}, {"memory_mib"}),
    # EC2 takes whole vCPUs (0.25 would silently become 1).
    ({"queue": "", "vcpus": 0.25, "memory_mib": 512}, {"vcpus"}),
    ({"queue": "spot-large", "vcpus": 1.5}, {"vcpus"}),
    # Tags: characters, lengths, reserved prefixes, 50 in all with our 3.
    ({"tags": {"🚀": "launch"}}, {"tags"}),
    ({"tags": {"team!#": "finance"}}, {"tags"}),
    ({"tags": {"team": "finance 🚀"}}, {"tags"}),
    ({"tags": {"aws:cost": "x"}}, {"tags"}),
    ({"tags": {"AWS:cost": "x"}}, {"tags"}),
    ({"tags": {"jtb:job-id": "7"}}, {"tags"}),
    ({"tags": {"k" * 129: "v"}}, {"tags"}),
    ({"tags": {"team": "v" * 257}}, {"tags"}),
    ({"tags": many_tags(48)}, {"tags"}),
]

ACCEPTED = [
    {"queue": "fq", "vcpus": 0.25, "memory_mib": 512},
    {"queue": "fq", "vcpus": 0.5, "memory_mib": 4096},
    {"queue": "fq", "vcpus": 1, "memory_mib": 8192},
    {"queue": "fq", "vcpus": 4, "memory_mib": 30720},
    {"queue": "fq", "vcpus": 8, "memory_mib": 61440},
    {"queue": "fq", "vcpus": 16, "memory_mib": 122880},
    {"queue": "fq", "vcpus": 32, "memory_mib": 249856},
    {"queue": FARGATE_ARN, "vcpus": 2, "memory_mib": 16384},
    {"queue": "fq-by-arn", "vcpus": 0.25, "memory_mib": 2048},
    {"queue": "", "vcpus": 1, "memory_mib": 2048},
    {"queue": "gpu", "vcpus": 8, "memory_mib": 60000, "gpus": 2},
    {"queue": "spot-large", "vcpus": 64, "memory_mib": 500000, "gpus": 8},
    {"tags": {"équipe": "Données clients", "a b:c/d=e+f-g@h_i.j": "x/y=z", "empty": ""}},
    {"tags": many_tags(47)},
]


@pytest.mark.parametrize(("changes", "fields"), REFUSED, ids=_id)
def test_job_aws_would_refuse_is_a_400_naming_the_field(api, changes, fields):
    response = api.post(JOBS, {"name": "Export", "template": "examples/hello.py", **changes}, format="json")

    assert response.status_code == 400, response.content[:300]
    errors = response.json()["errors"]
    assert set(errors) == fields
    for field in fields:
        [message] = errors[field][:1]
        assert message and len(errors[field]) == 1, errors
    assert not Job.objects.exists()


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules", "posix/Europe/Paris"])
def test_schedule_in_a_zone_that_is_not_iana_is_a_400_naming_the_timezone(api, zone):
    job = Job.objects.create(name="Export", template="examples/hello.py")

    response = api.post(SCHEDULES, {"job": job.pk, "cron": "0 6 * * *", "timezone": zone}, format="json")

    assert response.status_code == 400, response.content[:300]
    assert set(response.json()["errors"]) == {"timezone"}
    assert not Schedule.objects.exists()


def test_eventbridge_schedule_for_a_job_aws_would_round_is_a_400_naming_the_driver(api, settings):
    settings.JTB_EXECUTOR = "local"
    job = Job.objects.create(name="Export", template="examples/hello.py", vcpus=Decimal("0.5"))

    response = api.post(SCHEDULES, {"job": job.pk, "cron": "0 6 * * *", "driver": "eventbridge"}, format="json")

    assert response.status_code == 400, response.content[:300]
    [message] = response.json()["errors"]["driver"]
    assert "0.5 would be sent as 1" in message
    assert not Schedule.objects.exists()


def api_params(value, shape):
    """EventBridge Scheduler's universal target takes the API's members in PascalCase: map them
    back onto the Batch model's names (map keys, such as tag names, stay as they are)."""
    if shape.type_name == "structure" and isinstance(value, dict):
        by_lower = {name.lower(): name for name in shape.members}
        out = {}
        for key, item in value.items():
            name = by_lower.get(key.lower(), key)
            out[name] = api_params(item, shape.members[name]) if name in shape.members else item
        return out
    if shape.type_name == "list" and isinstance(value, list):
        return [api_params(item, shape.member) for item in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {key: api_params(item, shape.value) for key, item in value.items()}
    return value


def assert_valid_submit_job(params: dict) -> None:
    report = ParamValidator().validate(params, SUBMIT_JOB)
    assert not report.has_errors(), report.generate_report()
    assert JOB_NAME.match(params["jobName"]), params["jobName"]
    assert len(params.get("tags", {})) <= 50


@pytest.mark.parametrize("changes", ACCEPTED, ids=_id)
def test_accepted_job_builds_submit_job_requests_botocore_validates(api, changes, settings):
    response = api.post(JOBS, {"name": "Export", "template": "examples/hello.py", **changes}, format="json")
    assert response.status_code == 201, response.content[:300]
    job = Job.objects.get(pk=response.json()["id"])
    schedule_response = api.post(
        SCHEDULES, {"job": job.pk, "cron": "30 1 * * MON-FRI", "timezone": "America/New_York", "driver": "eventbridge"},
        format="json",
    )
    assert schedule_response.status_code == 201, schedule_response.content[:300]
    schedule = Schedule.objects.get(pk=schedule_response.json()["id"])

    direct = submit_job_params(process_start(job=job, trigger=Trigger.MANUAL))
    scheduled = api_params(batch_submit_input(schedule), SUBMIT_JOB)

    for params in (direct, scheduled):
        assert_valid_submit_job(params)
        fargate = params["jobDefinition"].endswith("-fargate")
        vcpus = next(item["value"] for item in params["containerOverrides"]["resourceRequirements"]
                     if item["type"] == "VCPU")
        assert Decimal(vcpus) == Decimal(str(changes.get("vcpus", settings.JTB_DEFAULT_VCPUS)))
        assert fargate == (changes.get("queue") in ("fq", FARGATE_ARN, "fq-by-arn"))
    assert set(job.tags) <= set(direct["tags"])
    spec = remote_spec(schedule)
    scheduler_report = ParamValidator().validate(spec, SCHEDULER.operation_model("CreateSchedule").input_shape)
    assert not scheduler_report.has_errors(), scheduler_report.generate_report()


@pytest.mark.parametrize("prefix", ["x" * 200, "team one/export!", "--"])
def test_batch_job_names_stay_valid_and_end_with_the_ids_whatever_the_prefix(api, settings, prefix):
    settings.JTB_BATCH_NAME_PREFIX = prefix
    job = Job.objects.create(name="Export", template="examples/hello.py")
    schedule = Schedule.objects.create(job=job, cron="0 6 * * *", timezone="UTC", driver="eventbridge")
    process = process_start(job=job, trigger=Trigger.MANUAL)

    direct = submit_job_params(process)["jobName"]
    scheduled = batch_submit_input(schedule)["JobName"]

    assert JOB_NAME.match(direct) and direct.endswith(f"-job{job.pk}-process{process.pk}")
    assert JOB_NAME.match(scheduled) and scheduled.endswith(f"-job{job.pk}-schedule{schedule.pk}")

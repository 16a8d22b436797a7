"""Fixtures for the AWS Batch tests: a moto Batch queue and job definition, and the seam helpers.

moto marks jobs SUCCEEDED at once and does not echo resourceRequirements or retryStrategy, so the
tests capture the requests the code sends (a botocore `before-parameter-build` hook on the cached
client) and inject throttling with a `before-call` hook that answers 429 before moto is reached.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from botocore.awsrequest import AWSResponse

from jobs.models import Job

DB_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jtb/database-url-AbCdEf"
JOB_ROLE = "arn:aws:iam::123456789012:role/jtb-runner"
EXECUTION_ROLE = "arn:aws:iam::123456789012:role/jtb-runner-execution"


class Calls:
    """Batch requests as the code sent them, by operation name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[str, dict]] = []

    def __call__(self, params, model, **kwargs):
        import copy

        with self.lock:
            self.items.append((model.name, copy.deepcopy(params)))

    def of(self, operation: str) -> list[dict]:
        with self.lock:
            return [params for name, params in self.items if name == operation]


class Throttle:
    """Answers the next `count` calls of an operation with TooManyRequestsException."""

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.sent = 0
        self.lock = threading.Lock()

    def __call__(self, **kwargs):
        with self.lock:
            if self.remaining <= 0:
                return None
            self.remaining -= 1
            self.sent += 1
        response = AWSResponse("http://moto", 429, {}, None)
        return response, {
            "Error": {"Code": "TooManyRequestsException", "Message": "Too Many Requests"},
            "ResponseMetadata": {"HTTPStatusCode": 429},
        }


@pytest.fixture
def batch_setup(moto_server, settings):
    """A queue `jtb-default` (and `spot-small`) in moto, the runner's definition registered."""
    from runner.aws.batch import batch_job_definition_sync
    from runner.aws.client import aws_client

    settings.JTB_EXECUTOR = "aws_batch"
    settings.JTB_BATCH_JOB_QUEUE = "jtb-default"
    settings.JTB_BATCH_JOB_DEFINITION = "jtb-runner"
    settings.JTB_BATCH_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobtarget-batch:1.0"
    settings.JTB_BATCH_JOB_ROLE_ARN = JOB_ROLE
    settings.JTB_BATCH_EXECUTION_ROLE_ARN = EXECUTION_ROLE
    settings.JTB_BATCH_DATABASE_URL_SECRET_ARN = DB_SECRET
    settings.JTB_BATCH_SECRETS = []
    settings.JTB_BATCH_SUBMITS_PER_SECOND = Decimal("1000")
    settings.JTB_BATCH_FARGATE_QUEUES = ["fargate-small"]
    client = aws_client("batch")
    iam = aws_client("iam")
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    environment = client.create_compute_environment(
        computeEnvironmentName="jtb-spot", type="UNMANAGED", state="ENABLED", serviceRole=role,
    )["computeEnvironmentArn"]
    for queue in ("jtb-default", "spot-small", "fargate-small"):
        client.create_job_queue(
            jobQueueName=queue, state="ENABLED", priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )
    for platform in ("EC2", "FARGATE"):
        batch_job_definition_sync(platform=platform)
    return client


@pytest.fixture
def batch_calls(batch_setup):
    calls = Calls()
    batch_setup.meta.events.register("before-parameter-build.batch.*", calls)
    yield calls
    batch_setup.meta.events.unregister("before-parameter-build.batch.*", calls)


@pytest.fixture
def throttle_submits(batch_setup, monkeypatch):
    """Call with a count: that many SubmitJob calls are throttled before moto sees them."""
    import runner.aws.batch as batch

    # Backoff stays real in shape but short, so a burst of retries fits in a fast test.
    monkeypatch.setattr(batch, "RETRY_DELAYS", (0.01, 0.02, 0.04, 0.08, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1))
    handlers = []

    def install(count: int) -> Throttle:
        throttle = Throttle(count)
        batch_setup.meta.events.register("before-call.batch.SubmitJob", throttle)
        handlers.append(throttle)
        return throttle

    yield install
    for handler in handlers:
        batch_setup.meta.events.unregister("before-call.batch.SubmitJob", handler)


@pytest.fixture
def batch_job(db):
    return Job.objects.create(
        name="Nightly export", template="examples/hello.py", vcpus=Decimal("2"), memory_mib=4096, gpus=1,
        timeout_seconds=1800, retry_attempts=3, queue="spot-small", tags={"team": "finance"},
    )


@pytest.fixture
def batch_states(monkeypatch):
    """Drive what DescribeJobs says (moto finishes every job at once): `batch_states[job_id] = {...}`
    overrides fields of moto's real answer for that job, at the seam the tracker calls."""
    import runner.aws.batch as batch

    overrides: dict[str, dict] = {}
    real = batch.batch_jobs_describe

    def describe(job_ids):
        jobs = real(job_ids)
        return [{**job, **overrides.get(job["jobId"], {})} for job in jobs]

    monkeypatch.setattr(batch, "batch_jobs_describe", describe)
    return overrides


@pytest.fixture
def submitted(batch_job, batch_calls):
    """A run of `batch_job` submitted to moto."""
    from processes.models import Process, Trigger
    from processes.services import process_start, processes_submit

    process = process_start(job=batch_job, trigger=Trigger.MANUAL)
    processes_submit(process_ids=[process.pk])
    return Process.objects.get(pk=process.pk)

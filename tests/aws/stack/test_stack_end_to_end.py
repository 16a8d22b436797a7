"""End to end on the deployed stack: the app configured only from the stack's outputs runs a job.

API → Celery worker (Redis) → SubmitJob into the stack's queue with the definition batch_sync
registered → the container built from that job definition alone, run here (moto runs no
containers; see tests/aws/test_end_to_end.py) → the runner reads its template from the stack's bucket → status.
"""

from __future__ import annotations

import os

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conftest import require_service
from jobs.models import Job
from processes.models import Process, ProcessStatus, TaskStatus
from runner.aws.client import aws_client
from runner.template_upload import template_store
from tests.aws.control_worker import control_worker
from tests.aws.test_end_to_end import TEMPLATE, run_container, wait_for
from tests.moto import FAKE_CREDENTIALS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.slow]

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def stack_worker(deployed_stack, subprocess_env, moto_server, tmp_path):
    """A Celery worker whose AWS settings are exactly the stack's outputs."""
    require_service("Redis", "127.0.0.1", 6379)
    queue = f"jtb-control-stack-{os.getpid()}"
    env = {
        **subprocess_env, **FAKE_CREDENTIALS, **deployed_stack, "AWS_ENDPOINT_URL": moto_server.url,
        "CELERY_BROKER_URL": REDIS_URL, "JTB_BATCH_SUBMITS_PER_SECOND": "50", "JTB_CONTROL_QUEUE": queue,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": str(tmp_path / "mail"),
    }
    log = tmp_path / "worker.log"
    with control_worker(env, broker_url=REDIS_URL, queue=queue, name=f"stack-{os.getpid()}", log=log):
        yield env, log


def test_run_through_the_api_goes_through_the_stacks_queue_bucket_and_definition(
    stack_worker, deployed_stack, batch_states, django_user_model, tmp_path
):
    _, worker_log = stack_worker
    uri = template_store(filename="greet.py", content=TEMPLATE)
    assert uri.startswith(f"s3://{deployed_stack['JTB_TEMPLATE_BUCKETS']}/templates/")
    job = Job.objects.create(name="greeter", template=uri, memory_mib=512)
    small = Job.objects.create(name="small greeter", template=uri, vcpus="0.5", memory_mib=1024,
                               queue=deployed_stack["JTB_BATCH_FARGATE_QUEUES"])
    user = django_user_model.objects.create_superuser("ann", "ann@example.com", "pw-Long-enough-1")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    answer = api.post("/api/v1/runs/", {"runs": [{"job": job.pk, "parameters": {"name": "Ann"}}, {"job": small.pk}]},
                      format="json")
    assert answer.status_code == 202, answer.content
    process_id, fargate_process_id = (run["id"] for run in answer.json())

    def both_submitted():
        found = dict(Process.objects.exclude(external_id="").values_list("pk", "external_id"))
        return found if len(found) == 2 else None

    job_ids = wait_for(both_submitted, "both SubmitJobs from the worker", worker_log)

    described = {job["jobId"]: job for job in aws_client("batch").describe_jobs(jobs=list(job_ids.values()))["jobs"]}
    ec2_job, fargate_job = described[job_ids[process_id]], described[job_ids[fargate_process_id]]
    assert ec2_job["jobQueue"].endswith(f":job-queue/{deployed_stack['JTB_BATCH_JOB_QUEUE']}")
    assert ":job-definition/jtbtest-runner:" in ec2_job["jobDefinition"]
    assert fargate_job["jobQueue"].endswith(":job-queue/jtbtest-fargate")
    assert ":job-definition/jtbtest-runner-fargate:" in fargate_job["jobDefinition"]
    assert ec2_job["jobName"] == f"jtbtest-job{job.pk}-process{process_id}"

    ran = run_container(process_id, worker_log, tmp_path, batch_states)

    process = Process.objects.get(pk=process_id)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Hello from Batch, Ann" in ran.stdout
    assert process.status == ProcessStatus.SUCCEEDED and process.executor == "aws_batch"
    assert list(process.tasks.values_list("name", "status")) == [("greet", TaskStatus.SUCCEEDED)]

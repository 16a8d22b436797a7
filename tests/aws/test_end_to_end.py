"""End to end: API → Celery worker (Redis) → SubmitJob to moto → the container's command run here.

moto cannot run containers without Docker, so the test plays Batch: it takes the command and
environment of the job from DescribeJobs (substituting `Ref::` parameters as Batch does), runs
them as a subprocess with the database URL the job's secret would give, and reports the exit code
back as Batch would. The runner fetches its template from moto's S3 and writes to the test database.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conftest import require_service
from jobs.models import Job
from jobtarget_batch.celery import app as celery_app
from processes.models import Process, ProcessStatus, TaskStatus
from runner.aws.client import aws_client
from runner.executors.aws_batch.tracking import batch_processes_track
from runner.template_upload import template_store
from runner.tests.test_runner_support import wait_for as shared_wait_for
from tests.moto import FAKE_CREDENTIALS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.slow]

REDIS_URL = "redis://127.0.0.1:6379/12"
TEMPLATE = b'''
def main(ctx):
    with ctx.task("greet"):
        print("Hello from Batch,", ctx.params.get("name"))
'''


@pytest.fixture
def batch_worker(batch_setup, subprocess_env, moto_server, tmp_path):
    require_service("Redis", "127.0.0.1", 6379)
    queue = f"jtb-control-aws-{os.getpid()}"
    saved = (celery_app.conf.broker_url, celery_app.conf.task_default_queue)
    celery_app.conf.broker_url, celery_app.conf.task_default_queue = REDIS_URL, queue
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    env = {
        **subprocess_env, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": moto_server.url, "CELERY_BROKER_URL": REDIS_URL,
        "JTB_EXECUTOR": "aws_batch", "JTB_BATCH_JOB_QUEUE": "jtb-default", "JTB_BATCH_SUBMITS_PER_SECOND": "1000",
        "JTB_TEMPLATE_BUCKETS": "jtb-templates",
    }
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "jobtarget_batch", "worker", "--pool", "threads", "-c", "4",
         "-Q", queue, "-n", f"aws-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    yield env, tmp_path / "worker.log"
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
    celery_app.conf.broker_url, celery_app.conf.task_default_queue = saved
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def container_of(job: dict, base_env: dict) -> tuple[list[str], dict]:
    """What Batch would start: the command with `Ref::` parameters filled in, and its environment."""
    container = job["container"]
    command = list(container["command"])
    for name, value in job["parameters"].items():
        command = [part.replace(f"Ref::{name}", value) for part in command]
    assert command[:2] == ["python", "manage.py"]
    environment = {**base_env, **{item["name"]: item["value"] for item in container["environment"]}}
    return [sys.executable, *command[1:]], environment


def wait_for(predicate, what: str, log, timeout: float = 60):
    """The shared wait, failing with the worker's log tail, which says why."""
    try:
        return shared_wait_for(predicate, timeout=timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(f"{what} did not happen in {timeout} s\n{log.read_text(errors='replace')[-3000:]}") from None


def test_run_started_through_the_api_is_submitted_run_from_its_batch_container_and_tracked(
    batch_worker, batch_states, django_user_model
):
    env, worker_log = batch_worker
    aws_client("s3").create_bucket(Bucket="jtb-templates")
    settings.JTB_TEMPLATE_BUCKETS = ["jtb-templates"]
    uri = template_store(filename="greet.py", content=TEMPLATE)
    job = Job.objects.create(name="greeter", template=uri, memory_mib=512)
    user = django_user_model.objects.create_superuser("ann", "ann@example.com", "pw-Long-enough-1")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    answer = api.post("/api/v1/runs/", {"runs": [{"job": job.pk, "parameters": {"name": "Ann"}}]}, format="json")
    assert answer.status_code == 202, answer.content
    process_id = answer.json()[0]["id"]
    job_id = wait_for(
        lambda: Process.objects.filter(pk=process_id).values_list("external_id", flat=True).first(),
        "SubmitJob from the worker", worker_log,
    )

    [described] = aws_client("batch").describe_jobs(jobs=[job_id])["jobs"]
    command, container_env = container_of(described, env)
    assert container_env["JTB_PROCESS_ID"] == str(process_id)
    ran = subprocess.run(command, env=container_env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=180)
    # Batch reports the container's exit the way it ended.
    batch_states[job_id] = {"status": "SUCCEEDED" if ran.returncode == 0 else "FAILED",
                            "container": {"exitCode": ran.returncode}, "attempts": []}
    batch_processes_track()

    process = Process.objects.get(pk=process_id)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Hello from Batch, Ann" in ran.stdout
    assert process.status == ProcessStatus.SUCCEEDED and process.executor == "aws_batch"
    assert list(process.tasks.values_list("name", "status")) == [("greet", TaskStatus.SUCCEEDED)]
    assert process.exit_code == 0 and process.failure_reason == ""

"""End to end: API → Celery worker (Redis) → SubmitJob to moto → the container's command run here.

moto cannot run containers without Docker, so the test plays Batch: it builds the container from
the registered job definition alone — its command with `Ref::` parameters filled in, its
environment, its secrets read from Secrets Manager, the submission's overrides — plus only what
the image and AWS give every container (the image's ENV, the job role's credentials, the Batch
job id). Nothing of the test's own environment reaches it: a runner that needs a setting the job
definition does not carry fails here as it would on AWS. It reports the exit code back as Batch
would. The runner fetches its template from moto's S3 and writes to the test database; the control
plane (the worker) then finalizes the run: the failure e-mail, the next queued run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from alerts.tasks import send_due_deliveries
from conftest import database_url_for_subprocesses, require_service
from jobs.models import ConcurrencyPolicy, Job
from processes.models import Process, ProcessStatus, TaskStatus
from processes.tasks import finalize_pending_processes
from runner.aws.batch import batch_job_definition_sync
from runner.aws.client import aws_client
from runner.executors.aws_batch.tracking import batch_processes_track
from runner.template_upload import template_store
from tests.aws.control_worker import control_worker
from tests.hostile import HOSTILE_TEMPLATE, assert_nothing_reached, hostile_results
from tests.moto import FAKE_CREDENTIALS
from tests.support import wait_for as shared_wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.slow]

REDIS_URL = "redis://127.0.0.1:6379/12"
TEMPLATE = b'''
def main(ctx):
    with ctx.task("greet"):
        print("Hello from Batch,", ctx.params.get("name"))
'''
FAILING = b'''
def main(ctx):
    with ctx.task("load"):
        raise RuntimeError("warehouse refused the rows")
'''


@pytest.fixture
def batch_worker(batch_setup, subprocess_env, moto_server, tmp_path):
    require_service("Redis", "127.0.0.1", 6379)
    queue = f"jtb-control-aws-{os.getpid()}"
    env = {
        **subprocess_env, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": moto_server.url, "CELERY_BROKER_URL": REDIS_URL,
        "JTB_EXECUTOR": "aws_batch", "JTB_BATCH_JOB_QUEUE": "jtb-default", "JTB_BATCH_SUBMITS_PER_SECOND": "1000",
        "JTB_TEMPLATE_BUCKETS": "jtb-templates", "JTB_CONTROL_QUEUE": queue,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"), "JTB_ALERT_GROUP_SECONDS": "0",
    }
    log = tmp_path / "worker.log"
    with control_worker(env, broker_url=REDIS_URL, queue=queue, name=f"aws-{os.getpid()}", log=log):
        yield env, log


@pytest.fixture
def runner_secret(batch_setup, settings):
    """The runner's DATABASE_URL in Secrets Manager, and the job definition registered with its ARN."""
    arn = aws_client("secretsmanager").create_secret(
        Name="jtb/database-url", SecretString=database_url_for_subprocesses()
    )["ARN"]
    settings.JTB_BATCH_DATABASE_URL_SECRET_ARN = arn
    settings.JTB_TEMPLATE_BUCKETS = ["jtb-templates"]
    batch_job_definition_sync(platform="EC2")
    return arn


def container_of(job: dict, *, image_env: dict) -> tuple[list[str], dict]:
    """What Batch would start for a described job: the definition's command with `Ref::` parameters
    filled in, and an environment made of the image's, the job definition's (variables and secrets),
    the submission's overrides and what AWS gives every Batch container."""
    [definition] = aws_client("batch").describe_job_definitions(jobDefinitions=[job["jobDefinition"]])["jobDefinitions"]
    properties = definition["containerProperties"]
    command = list(properties["command"])
    for name, value in {**definition.get("parameters", {}), **job.get("parameters", {})}.items():
        command = [part.replace(f"Ref::{name}", value) for part in command]
    assert command[:2] == ["python", "manage.py"]
    secrets = aws_client("secretsmanager")
    environment = {
        **image_env,
        **{item["name"]: item["value"] for item in properties.get("environment", [])},
        **{item["name"]: secrets.get_secret_value(SecretId=item["valueFrom"])["SecretString"]
           for item in properties.get("secrets", [])},
        **{item["name"]: item["value"] for item in (job.get("container") or {}).get("environment", [])},
        # The job role's credentials and AWS's own variables (the endpoint stands in for AWS).
        **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_BATCH_JOB_ID": job["jobId"], "AWS_BATCH_JOB_ATTEMPT": "1",
    }
    return [sys.executable, *command[1:]], environment


def image_environment(root: Path) -> dict:
    """The image's ENV (Dockerfile), with its data folders under `root`; job environments come from
    the tests' shared cache, as from a warm host or JTB_ENV_S3_PREFIX."""
    return {
        "PATH": os.environ["PATH"], "HOME": str(root), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
        "JTB_DATA_DIR": str(root / "data"), "JTB_ENV_ROOT": str(settings.JTB_ENV_ROOT),
        "JTB_WORK_DIR": str(root / "work"), "JTB_LOG_DIR": str(root / "data" / "logs"),
    }


def run_container(
    process_id: int, log, tmp_path: Path, batch_states, *, root: Path | None = None
) -> subprocess.CompletedProcess:
    """Wait for the worker's SubmitJob, run the job's container (its folders under `root`), report
    its exit as Batch would."""
    job_id = wait_for(
        lambda: Process.objects.filter(pk=process_id).values_list("external_id", flat=True).first(),
        f"SubmitJob of process {process_id} from the worker", log,
    )
    [described] = aws_client("batch").describe_jobs(jobs=[job_id])["jobs"]
    root = root or tmp_path / f"container-{process_id}"
    command, container_env = container_of(described, image_env=image_environment(root))
    assert container_env["JTB_PROCESS_ID"] == str(process_id)
    assert "DJANGO_SETTINGS_MODULE" not in container_env  # the image's default settings, not the tests'
    ran = subprocess.run(command, env=container_env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=180)
    batch_states[job_id] = {"status": "SUCCEEDED" if ran.returncode == 0 else "FAILED",
                            "container": {"exitCode": ran.returncode}, "attempts": []}
    batch_processes_track()
    return ran


def wait_for(predicate, what: str, log, timeout: float = 60):
    """The shared wait, failing with the worker's log tail, which says why."""
    try:
        return shared_wait_for(predicate, timeout=timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(f"{what} did not happen in {timeout} s\n{log.read_text(errors='replace')[-3000:]}") from None


def api_client(django_user_model) -> APIClient:
    user = django_user_model.objects.create_superuser("ann", "ann@example.com", "pw-Long-enough-1")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def test_run_started_through_the_api_is_submitted_run_from_its_batch_container_and_tracked(
    batch_worker, batch_states, runner_secret, django_user_model, tmp_path
):
    env, worker_log = batch_worker
    aws_client("s3").create_bucket(Bucket="jtb-templates")
    uri = template_store(filename="greet.py", content=TEMPLATE)
    job = Job.objects.create(name="greeter", template=uri, memory_mib=512)
    api = api_client(django_user_model)

    answer = api.post("/api/v1/runs/", {"runs": [{"job": job.pk, "parameters": {"name": "Ann"}}]}, format="json")
    assert answer.status_code == 202, answer.content
    process_id = answer.json()[0]["id"]
    ran = run_container(process_id, worker_log, tmp_path, batch_states)

    process = Process.objects.get(pk=process_id)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Hello from Batch, Ann" in ran.stdout
    assert process.status == ProcessStatus.SUCCEEDED and process.executor == "aws_batch"
    assert list(process.tasks.values_list("name", "status")) == [("greet", TaskStatus.SUCCEEDED)]
    assert process.exit_code == 0 and process.failure_reason == ""


def test_a_run_failed_in_its_container_is_finalized_by_the_control_plane(
    batch_worker, batch_states, runner_secret, django_user_model, tmp_path
):
    """The container records the failure only; the control plane sends the e-mail and starts the
    run queued behind it (the container has no broker and no mail settings)."""
    env, worker_log = batch_worker
    aws_client("s3").create_bucket(Bucket="jtb-templates")
    uri = template_store(filename="fails.py", content=FAILING)
    job = Job.objects.create(name="loader", template=uri, memory_mib=512, notify_emails=["data@example.com"],
                             concurrency_policy=ConcurrencyPolicy.QUEUE)
    api = api_client(django_user_model)
    first, second = (api.post(f"/api/v1/jobs/{job.pk}/run/", {}, format="json").json()["id"] for _ in range(2))
    assert Process.objects.get(pk=second).held

    ran = run_container(first, worker_log, tmp_path, batch_states)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    failed = Process.objects.get(pk=first)
    assert failed.status == ProcessStatus.FAILED and "warehouse refused the rows" in failed.failure_reason
    container_log = ran.stdout + ran.stderr
    assert "Subject:" not in container_log  # no e-mail printed by the container

    finalize_pending_processes.delay()  # what beat sends every JTB_FINALIZE_SECONDS
    wait_for(lambda: Process.objects.filter(pk=first, finalized_at__isnull=False).exists(), "finalizing", worker_log)
    send_due_deliveries.delay()  # what beat sends every JTB_ALERT_SEND_SECONDS
    mail = Path(env["EMAIL_FILE_PATH"])
    # The file appears before the message is written into it: wait for a whole message.
    messages = wait_for(lambda: [text for path in mail.glob("*.log") if "Subject:" in (text := path.read_text())],
                        "the failure e-mail", worker_log)
    assert len(messages) == 1 and "data@example.com" in messages[0] and "loader failed" in messages[0]
    released = wait_for(lambda: Process.objects.filter(pk=second, held=False).exclude(external_id="").first(),
                        "the queued run released and submitted", worker_log)
    assert released.status == ProcessStatus.SUBMITTED
    assert Process.objects.get(pk=first).finalized_at is not None


def test_a_hostile_template_in_its_container_reaches_none_of_the_runners_secrets(
    batch_worker, batch_states, runner_secret, django_user_model, tmp_path
):
    """`manage.py run_process` with the job definition's environment: DATABASE_URL comes from the
    secret into the runner's environment, and the template (tests/hostile.py) must not read it,
    nor the runner's folders or the SQLite file."""
    env, worker_log = batch_worker
    aws_client("s3").create_bucket(Bucket="jtb-templates")
    job = Job.objects.create(
        name="hostile", memory_mib=512, template=template_store(filename="hostile.py", content=HOSTILE_TEMPLATE.encode())
    )
    root = tmp_path / "container"
    url = database_url_for_subprocesses()
    parameters = {"data_dir": str(root / "data"), "log_dir": str(root / "data" / "logs"), "work_root": str(root / "work")}
    if url.startswith("sqlite:"):
        parameters["sqlite_file"] = url.removeprefix("sqlite://")
    process_id = api_client(django_user_model).post(
        f"/api/v1/jobs/{job.pk}/run/", {"parameters": parameters}, format="json"
    ).json()["id"]
    ran = run_container(process_id, worker_log, tmp_path, batch_states, root=root)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert Process.objects.get(pk=process_id).status == ProcessStatus.SUCCEEDED
    expected = ("data dir listing", "log dir listing", "other runs' work folders")
    assert_nothing_reached(
        hostile_results(ran.stdout),
        expected=(*expected, "SQLite file") if "sqlite_file" in parameters else expected,
    )
    assert url not in ran.stdout + ran.stderr

"""Batch "Job State Change" events from SQS (moto): applied like the tracker's answers, deleted once handled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from django.db import OperationalError, connection

from processes.models import Process, ProcessStatus, Task, TaskStatus
from processes.services import process_finish, process_mark_running, task_start
from runner.aws.client import aws_client
from runner.executors.aws_batch import events as batch_events
from runner.executors.aws_batch.events import batch_events_consume
from runner.tasks import consume_batch_events

pytestmark = pytest.mark.django_db

OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
OOM = {
    "status": "FAILED",
    "statusReason": "Essential container in task exited",
    "container": {"exitCode": 137, "reason": OOM_REASON},
    "attempts": [{
        "container": {"exitCode": 137, "reason": OOM_REASON, "logStreamName": "jtb/default/abc"},
        "startedAt": 1_700_000_000_000, "stoppedAt": 1_700_000_060_000,
        "statusReason": "Essential container in task exited",
    }],
}


@pytest.fixture
def events_queue(moto_server, settings):
    """The events queue in moto; a received message comes back after 1 s unless deleted."""
    url = aws_client("sqs").create_queue(
        QueueName="jtb-batch-events", Attributes={"VisibilityTimeout": "1"},
    )["QueueUrl"]
    settings.JTB_BATCH_EVENTS_QUEUE_URL = url
    settings.JTB_BATCH_EVENTS_WAIT_SECONDS = 0
    return url


def event(process: Process, **detail) -> dict:
    """An EventBridge event as the rule delivers it: `detail` is moto's job description, overridden."""
    job = aws_client("batch").describe_jobs(jobs=[process.external_id])["jobs"][0]
    return {
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": "Batch Job State Change",
        "source": "aws.batch", "account": "123456789012", "time": "2024-01-01T00:00:00Z", "region": "us-east-1",
        "resources": [job["jobArn"]], "detail": {**job, "attempts": [], **detail},
    }


def send(queue_url: str, body: dict | str) -> None:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    aws_client("sqs").send_message(QueueUrl=queue_url, MessageBody=text)


def messages_left(queue_url: str) -> int:
    attributes = aws_client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_running_event_shows_running_and_leaves_the_claim_to_the_runner(submitted, events_queue):
    send(events_queue, event(submitted, status="RUNNING"))

    counts = consume_batch_events()

    submitted.refresh_from_db()
    assert counts["applied"] == 1 and counts["deleted"] == 1
    assert submitted.executor_state == "RUNNING"
    # The runner's claim (submitted -> running) is what stops a second runner: it must still succeed.
    assert submitted.status == ProcessStatus.SUBMITTED
    assert process_mark_running(process_id=submitted.pk)
    assert messages_left(events_queue) == 0


def test_runnable_event_shows_that_the_run_waits_for_capacity(submitted, events_queue):
    send(events_queue, event(submitted, status="RUNNABLE", statusReason="Waiting for capacity in jtb-spot"))

    batch_events_consume()

    submitted.refresh_from_db()
    assert submitted.status == ProcessStatus.SUBMITTED
    assert (submitted.executor_state, submitted.executor_status_reason) == ("RUNNABLE", "Waiting for capacity in jtb-spot")


def test_failed_event_with_out_of_memory_fails_the_run_the_runner_could_not_finish(submitted, events_queue):
    process_mark_running(process_id=submitted.pk)
    task_start(process_id=submitted.pk, sequence=1, name="load")
    send(events_queue, event(submitted, **OOM))

    counts = batch_events_consume()

    submitted.refresh_from_db()
    assert counts["changed"] == 1 and messages_left(events_queue) == 0
    assert submitted.status == ProcessStatus.FAILED
    assert submitted.failure_reason.startswith("Out of memory: the container went over its 4096 MiB limit.")
    assert OOM_REASON in submitted.failure_reason
    assert submitted.exit_code == 137
    assert submitted.executor_details["log_streams"] == ["jtb/default/abc"]
    assert Task.objects.get(process=submitted).status == TaskStatus.FAILED


def test_succeeded_event_without_a_result_from_the_runner_fails_the_run(submitted, events_queue):
    process_mark_running(process_id=submitted.pk)
    send(events_queue, event(submitted, status="SUCCEEDED", container={"exitCode": 0}))

    batch_events_consume()

    submitted.refresh_from_db()
    assert submitted.status == ProcessStatus.FAILED
    assert submitted.failure_reason.startswith("The container exited but the runner recorded no result")


def test_result_the_runner_recorded_is_kept_when_the_final_event_comes(submitted, events_queue):
    process_mark_running(process_id=submitted.pk)
    process_finish(process_id=submitted.pk, status=ProcessStatus.SUCCEEDED, exit_code=0)
    send(events_queue, event(submitted, **OOM))

    batch_events_consume()

    submitted.refresh_from_db()
    assert (submitted.status, submitted.failure_reason, submitted.exit_code) == (ProcessStatus.SUCCEEDED, "", 0)
    assert messages_left(events_queue) == 0


def test_duplicate_final_event_changes_nothing(submitted, events_queue):
    process_mark_running(process_id=submitted.pk)
    send(events_queue, event(submitted, **OOM))
    batch_events_consume()
    first = Process.objects.values("status", "failure_reason", "finished_at", "executor_details").get(pk=submitted.pk)

    send(events_queue, event(submitted, **OOM))
    counts = batch_events_consume()

    assert counts == {**counts, "received": 1, "applied": 1, "changed": 0, "deleted": 1}
    assert Process.objects.values("status", "failure_reason", "finished_at", "executor_details").get(pk=submitted.pk) == first


def test_older_event_after_a_newer_one_changes_nothing(submitted, events_queue):
    send(events_queue, event(submitted, status="RUNNING"))
    batch_events_consume()

    send(events_queue, event(submitted, status="RUNNABLE", statusReason="Waiting for capacity"))
    counts = batch_events_consume()

    submitted.refresh_from_db()
    assert counts["deleted"] == 1
    assert (submitted.executor_state, submitted.executor_status_reason) == ("RUNNING", "")
    assert "runnable_since" not in submitted.executor_details


def test_events_delivered_out_of_order_in_one_batch_end_at_the_newest_state(submitted, events_queue):
    for status in ("RUNNING", "SUBMITTED", "RUNNABLE", "STARTING"):
        send(events_queue, event(submitted, status=status))

    counts = batch_events_consume()

    submitted.refresh_from_db()
    assert counts["received"] == 4 and counts["deleted"] == 4
    assert submitted.executor_state == "RUNNING"


@pytest.mark.parametrize("body", [
    "not json at all",
    "[1, 2, 3]",
    json.dumps({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}),
    json.dumps({"source": "aws.batch", "detail-type": "Batch Job State Change", "detail": {"status": "RUNNING"}}),
    "EXPLODED",
    "ATTEMPTS",
], ids=["not-json", "not-an-object", "other-event", "no-job-id", "unknown-status", "bad-attempts"])
def test_malformed_message_is_deleted_and_changes_nothing(submitted, events_queue, body):
    if body == "EXPLODED":
        body = json.dumps(event(submitted, status="EXPLODED"), default=str)
    elif body == "ATTEMPTS":
        body = json.dumps(event(submitted, status="FAILED", attempts="three"), default=str)
    before = Process.objects.values().get(pk=submitted.pk)
    send(events_queue, body)

    counts = batch_events_consume()

    assert counts["malformed"] == 1 and counts["deleted"] == 1
    assert messages_left(events_queue) == 0
    assert Process.objects.values().get(pk=submitted.pk) == before


@pytest.mark.parametrize("name", ["nightly-report", "acme-job{job}-process{pk}", "jtb-job{other}-process{pk}"],
                         ids=["other-app", "other-deployment-prefix", "other-job-same-process-id"])
def test_event_of_a_job_that_is_not_ours_is_deleted_and_changes_nothing(submitted, events_queue, name):
    before = Process.objects.values().get(pk=submitted.pk)
    foreign = event(submitted, **OOM)
    foreign["detail"].update(
        jobId="0f1e2d3c-foreign", jobName=name.format(job=submitted.job_id, other=submitted.job_id + 1, pk=submitted.pk),
    )
    send(events_queue, foreign)

    counts = batch_events_consume()

    assert counts["not_ours"] == 1 and counts["deleted"] == 1
    assert Process.objects.values().get(pk=submitted.pk) == before


def test_event_of_a_duplicate_submission_does_not_touch_the_run(submitted, events_queue):
    duplicate = event(submitted, **OOM)
    duplicate["detail"]["jobId"] = "0f1e2d3c-duplicate"  # same name as the run's job, not its saved id
    send(events_queue, duplicate)

    counts = batch_events_consume()

    submitted.refresh_from_db()
    assert counts["not_ours"] == 1
    assert submitted.status == ProcessStatus.SUBMITTED and submitted.executor_state == "SUBMITTED"


def test_message_stays_on_the_queue_until_its_event_was_applied(submitted, events_queue, monkeypatch):
    real_apply = batch_events.batch_job_apply

    def broken(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(batch_events, "batch_job_apply", broken)
    send(events_queue, event(submitted, **OOM))

    counts = batch_events_consume()

    assert counts["failed"] == 1 and counts["deleted"] == 0
    assert messages_left(events_queue) == 1
    assert Process.objects.get(pk=submitted.pk).status == ProcessStatus.SUBMITTED

    monkeypatch.setattr(batch_events, "batch_job_apply", real_apply)
    time.sleep(1.2)  # the queue's visibility timeout
    counts = batch_events_consume()

    assert counts["changed"] == 1 and messages_left(events_queue) == 0
    assert Process.objects.get(pk=submitted.pk).status == ProcessStatus.FAILED


def test_event_saves_the_job_id_a_killed_worker_did_not(submitted, events_queue):
    job_id = submitted.external_id
    message = event(submitted, status="RUNNABLE", statusReason="Waiting for capacity")
    Process.objects.filter(pk=submitted.pk).update(external_id="")
    send(events_queue, message)

    batch_events_consume()

    submitted.refresh_from_db()
    assert submitted.external_id == job_id
    assert (submitted.executor_state, submitted.executor_status_reason) == ("RUNNABLE", "Waiting for capacity")


def test_event_wrapped_by_sns_is_applied(submitted, events_queue):
    envelope = {"Type": "Notification", "MessageId": "m-1", "Message": json.dumps(event(submitted, status="RUNNING"), default=str)}
    send(events_queue, envelope)

    batch_events_consume()

    assert Process.objects.get(pk=submitted.pk).executor_state == "RUNNING"


def test_no_database_transaction_is_open_during_sqs_calls(submitted, events_queue, monkeypatch):
    from runner.aws import sqs

    outer = len(connection.atomic_blocks)  # the test's own transaction
    depths = []
    for name in ("sqs_messages_receive", "sqs_messages_delete"):
        real = getattr(sqs, name)

        def wrapped(*, _real=real, **kwargs):
            depths.append(len(connection.atomic_blocks))
            return _real(**kwargs)

        monkeypatch.setattr(sqs, name, wrapped)
    send(events_queue, event(submitted, **OOM))

    batch_events_consume()

    assert Process.objects.get(pk=submitted.pk).status == ProcessStatus.FAILED
    assert len(depths) == 3 and set(depths) == {outer}  # receive, delete, the empty receive that ends it


def test_one_run_reads_at_most_max_messages(submitted, events_queue):
    for status in ("SUBMITTED", "PENDING", "RUNNABLE"):
        send(events_queue, event(submitted, status=status))

    counts = batch_events_consume(max_messages=2)

    assert counts["received"] == 2 and messages_left(events_queue) == 1


def test_without_a_queue_url_nothing_is_read(submitted, events_queue, settings):
    send(events_queue, event(submitted, status="RUNNING"))
    settings.JTB_BATCH_EVENTS_QUEUE_URL = ""

    assert batch_events_consume()["received"] == 0
    assert messages_left(events_queue) == 1
    assert Process.objects.get(pk=submitted.pk).executor_state == "SUBMITTED"


def test_beat_reads_the_queue_only_when_one_is_set(settings):
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CELERY_BEAT_SCHEDULE.get('jtb-consume-batch-events', {}).get('task', '-'))"
    )

    def beat_task(**env) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "jobtarget_batch.settings", **env},
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert beat_task(JTB_BATCH_EVENTS_QUEUE_URL="") == "-"
    assert beat_task(JTB_BATCH_EVENTS_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/jtb-events") == (
        "runner.tasks.consume_batch_events"
    )

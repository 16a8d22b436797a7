"""The tracker: Batch states onto runs, failures the runner could not record, stuck jobs, cancel."""

from __future__ import annotations

import pytest
import time_machine
from django.utils import timezone

from processes.executors import executor_get
from processes.models import Process, ProcessStatus, Task, TaskStatus
from processes.services import process_cancel, process_mark_running, task_start
from runner.executors.aws_batch.tracking import batch_attempt_restart, batch_job_observe, batch_processes_track

pytestmark = pytest.mark.django_db

OOM = {
    "status": "FAILED",
    "statusReason": "Essential container in task exited",
    "container": {"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"},
    "attempts": [{
        "container": {"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage",
                      "logStreamName": "jtb/default/abc"},
        "startedAt": 1_700_000_000_000, "stoppedAt": 1_700_000_060_000,
        "statusReason": "Essential container in task exited",
    }],
}


def test_waiting_for_capacity_shows_the_batch_state_and_reason(submitted, batch_states):
    batch_states[submitted.external_id] = {
        "status": "RUNNABLE", "statusReason": "Waiting for capacity in compute environment jtb-spot", "attempts": [],
    }

    batch_processes_track()

    submitted.refresh_from_db()
    assert submitted.status == ProcessStatus.SUBMITTED
    assert submitted.executor_state == "RUNNABLE"
    assert submitted.executor_status_reason == "Waiting for capacity in compute environment jtb-spot"


def test_running_job_is_shown_and_the_run_left_for_its_runner_to_claim(submitted, batch_states):
    batch_states[submitted.external_id] = {"status": "RUNNING", "attempts": []}

    batch_processes_track()

    submitted.refresh_from_db()
    assert submitted.executor_state == "RUNNING"
    assert process_mark_running(process_id=submitted.pk)  # the runner can still claim it


def test_out_of_memory_while_the_runner_wrote_nothing_fails_the_run_with_that_reason(submitted, batch_states):
    process_mark_running(process_id=submitted.pk)
    task_start(process_id=submitted.pk, sequence=1, name="load")
    batch_states[submitted.external_id] = OOM

    counts = batch_processes_track()

    submitted.refresh_from_db()
    assert counts["changed"] == 1
    assert submitted.status == ProcessStatus.FAILED
    assert submitted.failure_reason.startswith("Out of memory: the container went over its 4096 MiB limit.")
    assert "OutOfMemoryError: Container killed due to memory usage" in submitted.failure_reason
    assert submitted.exit_code == 137
    assert submitted.executor_details["log_streams"] == ["jtb/default/abc"]
    assert Task.objects.get(process=submitted).status == TaskStatus.FAILED


@pytest.mark.parametrize(("overrides", "headline"), [
    ({"statusReason": "Job attempt duration exceeded timeout"}, "Timed out"),
    ({"statusReason": "Host EC2 (instance i-0abc) terminated."}, "Spot capacity reclaimed"),
    ({"statusReason": "Task failed to start", "container": {"reason": "CannotPullContainerError: pull access denied"}},
     "The container image could not be pulled."),
])
def test_batch_failure_reasons_are_named(submitted, batch_states, overrides, headline):
    batch_states[submitted.external_id] = {"status": "FAILED", "attempts": [], "container": {}, **overrides}

    batch_processes_track()

    submitted.refresh_from_db()
    assert submitted.status == ProcessStatus.FAILED
    assert submitted.failure_reason.startswith(headline)


def test_result_recorded_by_the_runner_is_kept_when_batch_reports_later(submitted, batch_states):
    from processes.services import process_finish

    process_mark_running(process_id=submitted.pk)
    process_finish(process_id=submitted.pk, status=ProcessStatus.SUCCEEDED, exit_code=0)
    batch_states[submitted.external_id] = OOM

    batch_processes_track()

    submitted.refresh_from_db()
    assert submitted.status == ProcessStatus.SUCCEEDED and submitted.failure_reason == ""


def test_an_older_answer_arriving_late_changes_nothing(submitted):
    running = {"jobId": submitted.external_id, "status": "RUNNING", "attempts": []}
    retrying = {"jobId": submitted.external_id, "status": "RUNNABLE", "statusReason": "retry",
                "attempts": [{"container": {"reason": ""}, "statusReason": "Host EC2 (instance i-1) terminated."}]}
    batch_job_observe(process_id=submitted.pk, job=retrying)
    batch_job_observe(process_id=submitted.pk, job=running)
    batch_job_observe(process_id=submitted.pk, job=retrying)

    submitted.refresh_from_db()
    assert submitted.executor_state == "RUNNABLE" and submitted.executor_status_reason == "retry"


def test_spot_reclaim_retry_lets_the_next_attempts_runner_claim_the_run(submitted):
    process_mark_running(process_id=submitted.pk)
    task_start(process_id=submitted.pk, sequence=1, name="load")
    retrying = {"jobId": submitted.external_id, "status": "RUNNABLE", "statusReason": "",
                "attempts": [{"container": {}, "statusReason": "Host EC2 (instance i-1) terminated."}]}

    assert batch_job_observe(process_id=submitted.pk, job=retrying) == "restarted"
    assert batch_attempt_restart(process_id=submitted.pk, attempt=2) is False  # once per attempt

    submitted.refresh_from_db()
    assert (submitted.status, submitted.attempt) == (ProcessStatus.SUBMITTED, 2)
    assert not Task.objects.filter(process=submitted).exists()
    assert process_mark_running(process_id=submitted.pk)


def test_job_stuck_runnable_past_the_queue_limit_is_cancelled_and_the_run_failed(submitted, batch_states, batch_calls, settings):
    settings.JTB_BATCH_RUNNABLE_MAX_SECONDS = 6 * 3600
    settings.JTB_BATCH_RUNNABLE_MAX_SECONDS_BY_QUEUE = {"spot-small": 600}
    batch_states[submitted.external_id] = {
        "status": "RUNNABLE", "statusReason": "Waiting for capacity", "attempts": [],
    }
    batch_processes_track()
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=300)):
        batch_processes_track()
    submitted.refresh_from_db()
    assert submitted.status == ProcessStatus.SUBMITTED

    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=601)):
        batch_processes_track()

    submitted.refresh_from_db()
    assert submitted.status == ProcessStatus.FAILED
    assert "Waited in RUNNABLE on job queue spot-small for more than 600 s" in submitted.failure_reason
    assert "Waiting for capacity" in submitted.failure_reason
    [cancel] = batch_calls.of("CancelJob")
    assert cancel["jobId"] == submitted.external_id


def test_cancel_before_start_cancels_the_batch_job_and_ends_the_run(submitted, batch_calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        process_cancel(process=submitted)

    submitted.refresh_from_db()
    assert submitted.status == ProcessStatus.CANCELLED
    assert [call["jobId"] for call in batch_calls.of("CancelJob")] == [submitted.external_id]
    assert batch_calls.of("TerminateJob") == []


def test_cancel_while_running_terminates_and_a_silent_runner_ends_cancelled(
    submitted, batch_states, batch_calls, django_capture_on_commit_callbacks
):
    process_mark_running(process_id=submitted.pk)
    with django_capture_on_commit_callbacks(execute=True):
        process_cancel(process=Process.objects.get(pk=submitted.pk))
    assert [call["jobId"] for call in batch_calls.of("TerminateJob")] == [submitted.external_id]
    submitted.refresh_from_db()
    assert submitted.status == ProcessStatus.RUNNING

    # The runner could not record it (killed before it could): Batch says FAILED.
    batch_states[submitted.external_id] = {
        "status": "FAILED", "statusReason": "Terminated", "container": {"exitCode": 143}, "attempts": [],
    }
    batch_processes_track()

    submitted.refresh_from_db()
    assert submitted.status == ProcessStatus.CANCELLED
    assert submitted.failure_reason.startswith("Cancelled")


def test_cancel_requested_on_a_starting_job_is_terminated_once_by_the_tracker(submitted, batch_states, batch_calls):
    Process.objects.filter(pk=submitted.pk).update(cancel_requested_at=timezone.now(), failure_reason="Cancelled by ann.")
    batch_states[submitted.external_id] = {"status": "STARTING", "attempts": []}

    batch_processes_track()
    batch_processes_track()

    assert [call["reason"] for call in batch_calls.of("TerminateJob")] == ["Cancelled by ann."]


def test_reconcile_follows_batch_and_records_batchs_reason_for_the_reaper(submitted, batch_states):
    process_mark_running(process_id=submitted.pk)
    executor = executor_get("aws_batch")
    batch_states[submitted.external_id] = {"status": "RUNNING", "attempts": []}
    assert executor.reconcile(Process.objects.get(pk=submitted.pk)) is True

    batch_states[submitted.external_id] = OOM
    assert executor.reconcile(Process.objects.get(pk=submitted.pk)) is False
    submitted.refresh_from_db()
    assert submitted.failure_reason.startswith("Out of memory")


def test_job_batch_no_longer_knows_fails_the_run_after_the_grace_period(submitted, settings):
    Process.objects.filter(pk=submitted.pk).update(external_id="00000000-dead-beef-0000-000000000000")

    batch_processes_track()
    assert Process.objects.get(pk=submitted.pk).status == ProcessStatus.SUBMITTED
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=settings.JTB_BATCH_SUBMIT_GRACE_SECONDS + 5)):
        batch_processes_track()

    submitted.refresh_from_db()
    assert submitted.status == ProcessStatus.FAILED
    assert "AWS Batch has no job" in submitted.failure_reason

"""Dispatching a chunk of runs to AWS Batch at once (moto): one load, one claim, one job per run."""

from __future__ import annotations

from unittest import mock

import pytest
import time_machine
from django.utils import timezone

from jobs.models import ConcurrencyPolicy, Job
from processes.models import Process, ProcessStatus, Trigger
from processes.services import RunRequest, process_cancel, process_start, process_start_many, processes_submit
from processes.tasks import submit_processes
from runner import batch_submission
from runner.aws import batch
from runner.aws.client import aws_client
from runner.executors.aws_batch.tracking import batch_processes_track

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    """Stands for SIGKILL of the worker: nothing after it runs, not even `except Exception`."""


def start(job: Job, count: int) -> list[int]:
    return [process.pk for process in process_start_many(requests=[RunRequest(job=job)] * count, trigger=Trigger.API)]


def batch_jobs_by_name(queue: str) -> dict[str, list[str]]:
    listed = aws_client("batch").list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["jtb-job*"]}])
    names: dict[str, list[str]] = {}
    for job in listed["jobSummaryList"]:
        names.setdefault(job["jobName"], []).append(job["jobId"])
    return names


def test_a_chunk_is_loaded_claimed_and_saved_in_three_queries_with_one_job_per_run(
    batch_setup, batch_calls, django_assert_num_queries
):
    job = Job.objects.create(name="bulk", template="examples/hello.py")
    ids = start(job, 20)

    with django_assert_num_queries(3):  # SELECT the chunk, claim it, save its job ids
        submit_processes(ids)

    runs = Process.objects.filter(pk__in=ids)
    assert {run.status for run in runs} == {ProcessStatus.SUBMITTED}
    assert {run.executor_state for run in runs} == {"SUBMITTED"}
    listed = batch_jobs_by_name("jtb-default")
    assert {f"jtb-job{job.pk}-process{run.pk}": [run.external_id] for run in runs} == listed
    assert len(batch_calls.of("SubmitJob")) == 20


def test_each_run_of_a_chunk_records_its_own_job_name_and_queue(batch_job, batch_calls, settings):
    other = Job.objects.create(name="default queue", template="examples/hello.py")
    ids = start(batch_job, 2) + start(other, 2)

    submit_processes(ids)

    for run in Process.objects.filter(pk__in=ids):
        assert run.executor_details == {
            "job_name": f"jtb-job{run.job_id}-process{run.pk}",
            "queue": "spot-small" if run.job_id == batch_job.pk else "jtb-default",
            "log_group": settings.JTB_BATCH_LOG_GROUP,
        }
    sent = {request["jobName"]: request["jobQueue"] for request in batch_calls.of("SubmitJob")}
    assert sent == {f"jtb-job{run.job_id}-process{run.pk}": run.executor_details["queue"]
                    for run in Process.objects.filter(pk__in=ids)}


def test_chunk_skips_cancelled_held_and_already_submitted_runs(batch_setup, batch_calls):
    job = Job.objects.create(name="bulk", template="examples/hello.py")
    cancelled, submitted, *queued = start(job, 5)
    process_cancel(process=Process.objects.get(pk=cancelled))
    processes_submit(process_ids=[submitted])
    already = Process.objects.get(pk=submitted).external_id
    serial = Job.objects.create(name="one at a time", template="examples/hello.py",
                                concurrency_policy=ConcurrencyPolicy.QUEUE)
    first, held = start(serial, 2)

    submit_processes([cancelled, submitted, *queued, first, held])

    runs = {run.pk: run for run in Process.objects.all()}
    assert runs[cancelled].status == ProcessStatus.CANCELLED and runs[cancelled].external_id == ""
    assert runs[submitted].external_id == already
    assert runs[held].status == ProcessStatus.QUEUED and runs[held].held and runs[held].external_id == ""
    assert all(runs[pk].external_id for pk in [*queued, first])
    assert len(batch_calls.of("SubmitJob")) == 1 + len(queued) + 1


def test_a_chunk_partly_claimed_by_another_worker_submits_only_the_rest(batch_setup, batch_calls):
    job = Job.objects.create(name="bulk", template="examples/hello.py")
    ids = start(job, 4)
    # This worker loaded the chunk; another one (a message delivered twice) claims two of its runs first.
    loaded = list(Process.objects.select_related("job").filter(pk__in=ids).order_by("pk"))
    theirs = batch_submission.batch_processes_claim(processes=loaded[:2])
    their_claim = {run.pk: run.submitted_at for run in Process.objects.filter(pk__in=ids[:2])}

    ours = batch_submission.batch_processes_submit(processes=loaded)

    assert [run.pk for run in theirs] == ids[:2] and ours == ids[2:]
    assert sorted(request["jobName"] for request in batch_calls.of("SubmitJob")) == sorted(
        f"jtb-job{job.pk}-process{pk}" for pk in ids[2:]
    )
    runs = {run.pk: run for run in Process.objects.filter(pk__in=ids)}
    assert all(runs[pk].external_id == "" and runs[pk].submitted_at == their_claim[pk] for pk in ids[:2])
    assert all(runs[pk].external_id for pk in ids[2:])


def test_runs_handed_over_without_their_job_loaded_are_submitted_each_with_its_job_tags(batch_job, batch_calls):
    ids = start(batch_job, 3)
    # No select_related: the job is read while the requests are built, by the thread that has the
    # transaction, not by a SubmitJob thread with a connection of its own.
    loaded = list(Process.objects.filter(pk__in=ids).order_by("pk"))

    assert batch_submission.batch_processes_submit(processes=loaded) == ids

    assert all(run.external_id for run in Process.objects.filter(pk__in=ids))
    assert sorted(request["tags"]["jtb:process-id"] for request in batch_calls.of("SubmitJob")) == sorted(map(str, ids))
    assert {request["tags"]["team"] for request in batch_calls.of("SubmitJob")} == {"finance"}


def test_a_chunk_delivered_twice_submits_each_run_once(batch_setup, batch_calls):
    job = Job.objects.create(name="bulk", template="examples/hello.py")
    ids = start(job, 10)

    submit_processes(ids)
    submit_processes(ids)

    assert len(batch_calls.of("SubmitJob")) == 10
    assert all(len(jobs) == 1 for jobs in batch_jobs_by_name("jtb-default").values())


def test_refused_run_fails_and_the_rest_of_its_chunk_is_submitted(batch_setup, batch_calls):
    good = Job.objects.create(name="good", template="examples/hello.py")
    nowhere = Job.objects.create(name="nowhere", template="examples/hello.py", queue="no-such-queue")
    ids = start(good, 3) + start(nowhere, 1)

    submit_processes(ids)

    runs = {run.pk: run for run in Process.objects.filter(pk__in=ids)}
    refused = runs[ids[-1]]
    assert refused.status == ProcessStatus.FAILED
    assert refused.failure_reason.startswith("AWS Batch refused the run:") and "no-such-queue" in refused.failure_reason
    assert all(runs[pk].status == ProcessStatus.SUBMITTED and runs[pk].external_id for pk in ids[:3])


def test_chunk_throttled_through_every_retry_waits_for_the_tracker_then_each_run_is_submitted_once(
    batch_setup, batch_calls, throttle_submits, settings
):
    job = Job.objects.create(name="bulk", template="examples/hello.py")
    ids = start(job, 3)
    tries = len(batch.RETRY_DELAYS) + 1
    throttle = throttle_submits(3 * tries)  # every try of every call

    submit_processes(ids)

    waiting = list(Process.objects.filter(pk__in=ids))
    assert throttle.sent == 3 * tries
    assert all(run.status == ProcessStatus.SUBMITTED and run.external_id == "" for run in waiting)
    assert all("tracker" in run.executor_status_reason for run in waiting)
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=settings.JTB_BATCH_SUBMIT_GRACE_SECONDS + 5)):
        counts = batch_processes_track()

    assert counts["recovered"] == 3
    listed = batch_jobs_by_name("jtb-default")
    assert {f"jtb-job{job.pk}-process{run.pk}": [run.external_id] for run in Process.objects.filter(pk__in=ids)} == listed


def test_worker_killed_before_saving_a_chunks_ids_leaves_one_job_per_run_that_the_tracker_records(
    batch_setup, batch_calls, monkeypatch, settings
):
    job = Job.objects.create(name="bulk", template="examples/hello.py")
    ids = start(job, 5)

    def killed(**kwargs):
        raise WorkerKilled

    monkeypatch.setattr(batch_submission, "batch_job_ids_record", killed)
    with pytest.raises(WorkerKilled):
        submit_processes(ids)
    monkeypatch.undo()
    assert set(Process.objects.filter(pk__in=ids).values_list("external_id", flat=True)) == {""}

    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=settings.JTB_BATCH_SUBMIT_GRACE_SECONDS + 5)):
        counts = batch_processes_track()

    assert counts["recovered"] == 5
    assert len(batch_calls.of("SubmitJob")) == 5
    listed = batch_jobs_by_name("jtb-default")
    assert {f"jtb-job{job.pk}-process{run.pk}": [run.external_id] for run in Process.objects.filter(pk__in=ids)} == listed


def test_a_run_whose_id_was_saved_meanwhile_keeps_it_and_the_duplicate_job_is_terminated(batch_setup, batch_calls):
    job = Job.objects.create(name="bulk", template="examples/hello.py")
    raced, other = start(job, 2)
    loaded = list(Process.objects.select_related("job").filter(pk__in=[raced, other]).order_by("pk"))
    claimed = batch_submission.batch_processes_claim(processes=loaded)
    # A recovery that thought this worker dead submitted and saved a job for `raced` meanwhile.
    recovered = batch_submission.batch_submission_send(process=claimed[0])

    saved = batch_submission.batch_submissions_send(processes=claimed)

    assert list(saved) == [other]
    runs = {run.pk: run for run in Process.objects.filter(pk__in=[raced, other])}
    assert runs[raced].external_id == recovered and runs[other].external_id == saved[other]
    [terminated] = batch_calls.of("TerminateJob")
    assert terminated["jobId"] not in (recovered, saved[other])


def test_a_bug_in_one_submission_still_saves_the_job_ids_of_the_others(batch_setup, batch_calls, monkeypatch):
    job = Job.objects.create(name="bulk", template="examples/hello.py")
    ids = start(job, 4)
    real = batch_submission.submit_job_params

    def broken_for_one(process):
        if process.pk == ids[1]:
            raise ValueError("a bug")
        return real(process)

    monkeypatch.setattr(batch_submission, "submit_job_params", broken_for_one)
    with pytest.raises(ValueError, match="a bug"):
        submit_processes(ids)

    runs = {run.pk: run for run in Process.objects.filter(pk__in=ids)}
    assert runs[ids[1]].external_id == ""  # left to the tracker after the grace period
    assert all(runs[pk].external_id for pk in ids if pk != ids[1])
    assert len(batch_calls.of("SubmitJob")) == 3


def test_local_executor_still_sends_one_message_per_queued_run(settings):
    settings.JTB_EXECUTOR = "local"
    job = Job.objects.create(name="local", template="examples/hello.py")
    with mock.patch("processes.tasks.submit_processes.delay"):
        ids = start(job, 3)
        cancelled = process_start(job=job, trigger=Trigger.MANUAL)
        process_cancel(process=cancelled)

    with mock.patch("runner.tasks.run_local_process.apply_async") as send:
        submit_processes([*ids, cancelled.pk])

    assert [call.kwargs for call in send.call_args_list] == [
        {"args": [pk], "queue": settings.JTB_LOCAL_QUEUE} for pk in ids
    ]
    assert set(Process.objects.filter(pk__in=ids).values_list("status", flat=True)) == {ProcessStatus.QUEUED}

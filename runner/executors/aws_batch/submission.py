"""Handing runs to AWS Batch exactly once.

SubmitJob has no idempotency token, so exactly-once comes from the database:

1. `batch_processes_submit` claims a dispatch message's runs queued→submitted with one conditional
   UPDATE. A message delivered twice finds them already claimed and does nothing.
2. SubmitJob goes out with a deterministic job name (`<prefix>-job<job id>-process<id>`) and tags,
   from a small thread pool shared by the worker process, paced by the token bucket in
   runner.aws.batch.
3. The job ids are saved only where none is saved yet (`external_id = ''`). A submission that finds
   an id already there is a duplicate and cancels its own Batch job.
4. A worker killed between 1 and 3 leaves the run `submitted` without an id. After
   JTB_BATCH_SUBMIT_GRACE_SECONDS the tracker (`batch_submissions_recover`) looks the job up by
   name in its queue: found, its id is saved; not found, it is submitted again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db.models import Case, CharField, JSONField, Value, When
from django.utils import timezone

from processes import services
from processes.executors import ExecutorName
from processes.models import Process, ProcessStatus
from runner.aws import batch
from runner.aws.batch_request import batch_job_name, batch_queue, submit_job_request

logger = logging.getLogger(__name__)

RECOVER_BATCH = 200
# SubmitJob calls in flight per worker process, shared by all its dispatch tasks. Botocore keeps 10
# connections per client; AWS allows 50 calls a second, which 8 threads reach at ~160 ms a call.
SUBMIT_THREADS = 8
# Errors that mean Batch will never take this request: the run fails with Batch's reason.
REFUSED_CODES = frozenset({"ClientException", "ValidationException", "InvalidParameterValueException"})


def process_batch_job_name(*, job_id: int, process_id: int) -> str:
    """`<prefix>-job<job id>-process<process id>`: what the tracker and the recovery look runs up by."""
    return batch_job_name(job_id=job_id, suffix=f"process{process_id}")


def batch_queue_for(process: Process) -> str:
    return batch_queue(process.snapshot or {})


def submit_job_params(process: Process) -> dict:
    """The SubmitJob request for a run, from the job settings frozen into it."""
    return submit_job_request(
        snapshot=process.snapshot or {}, job_id=process.job_id, tags=process.job.tags,
        name_suffix=f"process{process.pk}",
        system_tags={"jtb:job-id": str(process.job_id), "jtb:process-id": str(process.pk)},
        parameters={batch.PROCESS_ID_PARAMETER: str(process.pk)},
        environment={"JTB_PROCESS_ID": str(process.pk)},
    )


def batch_processes_submit(*, processes: Sequence[Process]) -> list[int]:
    """Claim queued runs with one UPDATE and submit them to AWS Batch (the executor's `submit_many`).

    Returns the ids of the runs this call claimed. A run another worker claimed first (a dispatch
    message delivered twice) is left to that worker.
    """
    claimed = batch_processes_claim(processes=processes)
    if claimed:
        batch_submissions_send(processes=claimed)
    return [process.pk for process in claimed]


def batch_processes_claim(*, processes: Sequence[Process]) -> list[Process]:
    """queued→submitted for the runs of `processes` nobody claimed yet; the ones this call claimed.

    One conditional UPDATE for the chunk. Its `submitted_at` tells our rows from rows a concurrent
    worker claimed (the recovery claims a run the same way), so only when the UPDATE touched fewer
    rows than asked does a SELECT find out which ones are ours.
    """
    by_id = {process.pk: process for process in processes}
    if not by_id:
        return []
    now = timezone.now()
    details = [
        When(pk=process.pk, then=Value(_claim_details(process), output_field=JSONField()))
        for process in by_id.values()
    ]
    updated = Process.objects.filter(pk__in=list(by_id), status=ProcessStatus.QUEUED, held=False).update(
        status=ProcessStatus.SUBMITTED, executor=ExecutorName.AWS_BATCH, external_id="", submitted_at=now, executor_state="",
        executor_status_reason="Submitting to AWS Batch.",
        executor_details=Case(*details, output_field=JSONField()),
    )
    if updated == 0:
        return []
    if updated == len(by_id):
        ours = list(by_id)
    else:
        ours = list(Process.objects.filter(
            pk__in=list(by_id), status=ProcessStatus.SUBMITTED, executor=ExecutorName.AWS_BATCH, external_id="", submitted_at=now,
        ).values_list("pk", flat=True))
    claimed = []
    for pk in sorted(ours):
        process = by_id[pk]
        process.status, process.executor, process.external_id, process.submitted_at = (
            ProcessStatus.SUBMITTED, ExecutorName.AWS_BATCH, "", now
        )
        claimed.append(process)
    return claimed


def _claim_details(process: Process) -> dict:
    return {
        "job_name": process_batch_job_name(job_id=process.job_id, process_id=process.pk),
        "queue": batch_queue_for(process), "log_group": settings.JTB_BATCH_LOG_GROUP,
    }


def batch_submission_send(*, process: Process) -> str | None:
    """SubmitJob for a claimed run and save the job id; returns it (None when it must wait)."""
    return batch_submissions_send(processes=[process]).get(process.pk)


def batch_submissions_send(*, processes: Sequence[Process]) -> dict[int, str]:
    """SubmitJob for claimed runs, concurrently, then save their job ids; {process id: job id} saved.

    Only the SubmitJob calls run on the submit pool (paced by the shared token bucket and retried
    while throttled); the database is read and written from the calling thread, so the pool's
    long-lived threads never open a database connection. A run whose call failed waits for the
    tracker or is failed with Batch's reason, as for a single submission.
    """
    outcomes: dict[int, str | Exception] = {}
    unexpected: BaseException | None = None
    # The requests are built here: `process.job` may still have to be read from the database.
    requests: list[tuple[int, dict]] = []
    for process in processes:
        try:
            requests.append((process.pk, submit_job_params(process)))
        except Exception as exc:  # a bug, not AWS: submit the others, save their ids, then raise it
            unexpected = unexpected or exc
    if len(requests) == 1:
        outcomes[requests[0][0]] = _send(requests[0][1])
    else:
        futures = [(pk, _submit_pool().submit(_send, params)) for pk, params in requests]
        for pk, future in futures:
            try:
                outcomes[pk] = future.result()
            except Exception as exc:
                unexpected = unexpected or exc
    job_ids = {pk: outcome for pk, outcome in outcomes.items() if isinstance(outcome, str)}
    saved = batch_job_ids_record(job_ids=job_ids)
    for pk, job_id in job_ids.items():
        if pk not in saved:
            # Someone else recorded a job for this run first (a recovery racing a slow worker): ours goes.
            logger.warning("process %s already has a Batch job; cancelling duplicate %s", pk, job_id)
            batch.batch_job_terminate(job_id=job_id, reason=f"Duplicate submission of process {pk}.")
    notes: dict[str, list[int]] = {}
    for pk, outcome in outcomes.items():
        if isinstance(outcome, batch.BatchThrottled):
            notes.setdefault(f"{outcome} The tracker submits it again shortly.", []).append(pk)
        elif isinstance(outcome, batch.BatchError):
            if outcome.code in REFUSED_CODES:
                services.process_finish(
                    process_id=pk, status=ProcessStatus.FAILED, failure_reason=f"AWS Batch refused the run: {outcome}",
                )
                continue
            # A network error or a 5xx: Batch may or may not have the job; the tracker finds out.
            logger.warning("SubmitJob for process %s failed: %s", pk, outcome)
            notes.setdefault(f"{outcome} The tracker looks for the job and submits it again if needed.", []).append(pk)
    for reason, pks in notes.items():
        Process.objects.filter(pk__in=pks, external_id="").update(executor_status_reason=reason[:2000])
    if unexpected is not None:
        raise unexpected
    return {pk: job_ids[pk] for pk in saved}


def _send(params: dict) -> str | batch.BatchError | batch.BatchThrottled:
    """One SubmitJob: the job id, or what AWS answered instead. Runs on the submit pool: no database."""
    try:
        return batch.batch_job_submit(params)
    except (batch.BatchThrottled, batch.BatchError) as exc:
        return exc


_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _submit_pool() -> ThreadPoolExecutor:
    """The worker process's SubmitJob threads, shared by all its dispatch tasks (made after a fork)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(SUBMIT_THREADS, thread_name_prefix="batch-submit"))
        return _pool[1]


def batch_job_id_record(*, process_id: int, job_id: str) -> bool:
    """Save the Batch job id of a run that has none yet; False when another id got there first."""
    return process_id in batch_job_ids_record(job_ids={process_id: job_id})


def batch_job_ids_record(*, job_ids: dict[int, str]) -> set[int]:
    """Save Batch job ids of runs that have none yet, in one UPDATE; the runs whose id was saved.

    A run that already has an id keeps it (`external_id = ''` in the WHERE): its new job is a
    duplicate for the caller to cancel.
    """
    if not job_ids:
        return set()
    ids = list(job_ids)
    if len(ids) == 1:
        external_id = Value(job_ids[ids[0]])
    else:
        external_id = Case(*[When(pk=pk, then=Value(job_id)) for pk, job_id in job_ids.items()],
                           output_field=CharField())
    updated = Process.objects.filter(pk__in=ids, external_id="").update(
        external_id=external_id, executor_state="SUBMITTED", executor_status_reason="",
    )
    if updated == len(ids):
        return set(ids)
    saved = Process.objects.filter(pk__in=ids).values_list("pk", "external_id")
    return {pk for pk, external_id in saved if external_id == job_ids[pk]}


def batch_submissions_recover() -> list[int]:
    """Runs `submitted` without a Batch job id past the grace period: find their job or resubmit."""
    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=settings.JTB_BATCH_SUBMIT_GRACE_SECONDS)
    lost = list(
        Process.objects.select_related("job").filter(
            executor=ExecutorName.AWS_BATCH, status=ProcessStatus.SUBMITTED, external_id="", submitted_at__lt=cutoff
        ).order_by("pk")[:RECOVER_BATCH]
    )
    recovered = []
    for process in lost:
        # Claim this recovery (a second tracker skips the run for another grace period).
        if not Process.objects.filter(
            pk=process.pk, status=ProcessStatus.SUBMITTED, external_id="", submitted_at=process.submitted_at
        ).update(submitted_at=now):
            continue
        try:
            if _recover_one(process):
                recovered.append(process.pk)
        except (batch.BatchError, batch.BatchThrottled) as exc:
            logger.warning("recovering process %s failed: %s", process.pk, exc)
    return recovered


def _recover_one(process: Process) -> bool:
    name = process_batch_job_name(job_id=process.job_id, process_id=process.pk)
    found = batch.batch_jobs_find(queue=batch_queue_for(process), name=name)
    if found:
        keep, *extra = found
        recorded = batch_job_id_record(process_id=process.pk, job_id=keep["jobId"])
        for job in extra:
            if job.get("status") not in batch.FINAL_STATES:
                batch.batch_job_terminate(job_id=job["jobId"], reason=f"Duplicate submission of process {process.pk}.")
        return recorded
    if process.cancel_requested_at:
        return services.process_finish(
            process_id=process.pk, status=ProcessStatus.CANCELLED,
            failure_reason=process.failure_reason or "Cancelled before it started.",
        )
    return batch_submission_send(process=process) is not None

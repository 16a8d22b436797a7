"""Handing runs to AWS Batch exactly once.

SubmitJob has no idempotency token, so exactly-once comes from the database:

1. `batch_process_submit` claims the run queued→submitted with a conditional UPDATE. A dispatch
   message delivered twice finds it already claimed and does nothing.
2. SubmitJob goes out with a deterministic job name (`<prefix>-job<job id>-process<id>`) and tags.
3. The job id is saved only where none is saved yet (`external_id = ''`). A submission that finds an
   id already there is a duplicate and cancels its own Batch job.
4. A worker killed between 1 and 3 leaves the run `submitted` without an id. After
   JTB_BATCH_SUBMIT_GRACE_SECONDS the tracker (`batch_submissions_recover`) looks the job up by
   name in its queue: found, its id is saved; not found, it is submitted again.
"""

from __future__ import annotations

import logging
import math
import re
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from processes import services
from processes.models import Process, ProcessStatus
from runner.aws import batch

logger = logging.getLogger(__name__)

EXECUTOR = "aws_batch"
# Batch stops an attempt this long after the job's own timeout: the runner enforces the timeout
# (and says so); Batch is the backstop for a runner that hangs, module installs included.
TIMEOUT_MARGIN_SECONDS = 300
MIN_ATTEMPT_SECONDS = 60
# A Spot reclaim shows as "Host EC2 (instance i-...) terminated.": retry it, exit on anything else.
EVALUATE_ON_EXIT = [
    {"onStatusReason": "Host EC2*", "action": "RETRY"},
    {"onReason": "*", "action": "EXIT"},
]
RECOVER_BATCH = 200


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text).strip("-_") or "jtb"


def batch_job_name(*, job_id: int, process_id: int) -> str:
    return f"{_clean(settings.JTB_BATCH_NAME_PREFIX)}-job{job_id}-process{process_id}"[:128]


def batch_queue_for(process: Process) -> str:
    return (process.snapshot or {}).get("queue") or settings.JTB_BATCH_JOB_QUEUE


def _is_fargate(queue: str) -> bool:
    return queue in settings.JTB_BATCH_FARGATE_QUEUES


def resource_requirements(snapshot: dict, *, fargate: bool) -> list[dict]:
    vcpus = Decimal(str(snapshot.get("vcpus") or settings.JTB_DEFAULT_VCPUS))
    # EC2 compute environments take whole vCPUs; Fargate takes 0.25, 0.5, 1, 2 ...
    vcpu_text = format(vcpus.normalize(), "f") if fargate else str(max(1, math.ceil(vcpus)))
    memory = int(snapshot.get("memory_mib") or settings.JTB_DEFAULT_MEMORY_MIB)
    requirements = [{"type": "VCPU", "value": vcpu_text}, {"type": "MEMORY", "value": str(memory)}]
    gpus = int(snapshot.get("gpus") or 0)
    if gpus > 0:
        requirements.append({"type": "GPU", "value": str(gpus)})
    return requirements


def submit_job_params(process: Process) -> dict:
    """The SubmitJob request for a run, from the job settings frozen into it."""
    snapshot = process.snapshot or {}
    queue = batch_queue_for(process)
    fargate = _is_fargate(queue)
    timeout = int(snapshot.get("timeout_seconds") or settings.JTB_DEFAULT_TIMEOUT_SECONDS)
    tags = {
        key: value for key, value in (process.job.tags or {}).items()
        if not key.lower().startswith(("aws:", "jtb:"))
    }
    tags.update({"jtb:job-id": str(process.job_id), "jtb:process-id": str(process.pk)})
    return {
        "jobName": batch_job_name(job_id=process.job_id, process_id=process.pk),
        "jobQueue": queue,
        "jobDefinition": batch.job_definition_name("FARGATE" if fargate else "EC2"),
        "parameters": {batch.PROCESS_ID_PARAMETER: str(process.pk)},
        "containerOverrides": {
            "resourceRequirements": resource_requirements(snapshot, fargate=fargate),
            "environment": [{"name": "JTB_PROCESS_ID", "value": str(process.pk)}],
        },
        "timeout": {"attemptDurationSeconds": max(MIN_ATTEMPT_SECONDS, timeout + TIMEOUT_MARGIN_SECONDS)},
        "retryStrategy": {
            "attempts": max(1, min(10, int(snapshot.get("retry_attempts") or 1))),
            "evaluateOnExit": EVALUATE_ON_EXIT,
        },
        "tags": tags,
        "propagateTags": True,
    }


def batch_process_submit(*, process: Process) -> None:
    """Claim a queued run and submit it to AWS Batch (the executor's `submit`)."""
    queue = batch_queue_for(process)
    claimed = services.process_claim(
        process_id=process.pk, to_status=ProcessStatus.SUBMITTED, from_statuses=[ProcessStatus.QUEUED],
        executor=EXECUTOR, external_id="", submitted_at=timezone.now(), executor_state="",
        executor_status_reason="Submitting to AWS Batch.",
        executor_details={
            "job_name": batch_job_name(job_id=process.job_id, process_id=process.pk),
            "queue": queue, "log_group": settings.JTB_BATCH_LOG_GROUP,
        },
    )
    if claimed:
        batch_submission_send(process=process)


def batch_submission_send(*, process: Process) -> str | None:
    """SubmitJob for a claimed run and save the job id; returns it (None when it must wait)."""
    try:
        job_id = batch.batch_job_submit(submit_job_params(process))
    except batch.BatchThrottled as exc:
        _note(process.pk, f"{exc} The tracker submits it again shortly.")
        return None
    except batch.BatchError as exc:
        if exc.code in ("ClientException", "ValidationException", "InvalidParameterValueException"):
            services.process_finish(
                process_id=process.pk, status=ProcessStatus.FAILED,
                failure_reason=f"AWS Batch refused the run: {exc}",
            )
            return None
        # A network error or a 5xx: Batch may or may not have the job; the tracker finds out.
        logger.warning("SubmitJob for process %s failed: %s", process.pk, exc)
        _note(process.pk, f"{exc} The tracker looks for the job and submits it again if needed.")
        return None
    if batch_job_id_record(process_id=process.pk, job_id=job_id):
        return job_id
    # Someone else recorded a job for this run first (a recovery racing a slow worker): ours goes.
    logger.warning("process %s already has a Batch job; cancelling duplicate %s", process.pk, job_id)
    batch.batch_job_terminate(job_id=job_id, reason=f"Duplicate submission of process {process.pk}.")
    return None


def batch_job_id_record(*, process_id: int, job_id: str) -> bool:
    """Save the Batch job id of a run that has none yet; False when another id got there first."""
    return Process.objects.filter(pk=process_id, external_id="").update(
        external_id=job_id, executor_state="SUBMITTED", executor_status_reason="",
    ) == 1


def _note(process_id: int, reason: str) -> None:
    Process.objects.filter(pk=process_id, external_id="").update(executor_status_reason=reason[:2000])


def batch_submissions_recover() -> list[int]:
    """Runs `submitted` without a Batch job id past the grace period: find their job or resubmit."""
    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=settings.JTB_BATCH_SUBMIT_GRACE_SECONDS)
    lost = list(
        Process.objects.select_related("job").filter(
            executor=EXECUTOR, status=ProcessStatus.SUBMITTED, external_id="", submitted_at__lt=cutoff
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
    name = batch_job_name(job_id=process.job_id, process_id=process.pk)
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

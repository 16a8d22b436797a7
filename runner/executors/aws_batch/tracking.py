"""Knowing what became of every run on AWS Batch.

`batch_processes_track` (a periodic task) describes the Batch jobs of active runs, 100 ids a call,
and `batch_job_observe` maps each answer onto its run. State-change events (runner.batch_events)
carry the same job description and go through the same function, via `batch_job_apply`, which
first finds the run a job belongs to:

- SUBMITTED/PENDING/RUNNABLE/STARTING: the run stays `submitted`; the Batch state and status
  reason are shown (executor_state / executor_status_reason), so "waiting for capacity" is visible.
- RUNNING: the state is shown; the run becomes `running` when its runner claims it (that claim is
  what stops a second runner, so the tracker never makes it in the runner's place).
- SUCCEEDED/FAILED: the runner has normally recorded the result already. When it did not (killed
  for memory, timed out, image not pulled, host reclaimed ...) the run is finished here with Batch's
  reasons and the container's exit code. After a cancel request a FAILED job means `cancelled`.

Every answer carries an order key (attempt number, state rank); an answer older than the one
recorded changes nothing, and final statuses go through `process_finish`, which counts only once.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from processes import services
from processes.executors import ExecutorName
from processes.models import ACTIVE_STATUSES, Process, ProcessStatus, Task
from runner.aws import batch
from runner.executors.aws_batch.submission import (
    batch_job_id_record,
    batch_queue_for,
    batch_submissions_recover,
    process_batch_job_name,
)

logger = logging.getLogger(__name__)


def _ms(value) -> str | None:
    if not value:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC).isoformat()


def job_order(job: dict) -> list[int]:
    """Later answers about a job sort higher: a retry (more attempts) beats any earlier state."""
    # Batch lists an attempt once it has ended, so RUNNABLE again after a reclaim ([1, 2]) sorts
    # above RUNNING in the first attempt ([0, 4]).
    return [len(job.get("attempts") or []), batch.STATE_ORDER.get(job.get("status", ""), -1)]


def job_attempt_number(job: dict) -> int:
    """The attempt the job is on: finished attempts are listed, the current one is not (yet)."""
    attempts = job.get("attempts") or []
    if job.get("status") in batch.FINAL_STATES:
        return max(1, len(attempts))
    return len(attempts) + 1


def _attempts_details(job: dict) -> list[dict]:
    result = []
    for attempt in job.get("attempts") or []:
        container = attempt.get("container") or {}
        result.append({
            "started_at": _ms(attempt.get("startedAt")), "stopped_at": _ms(attempt.get("stoppedAt")),
            "status_reason": attempt.get("statusReason", ""), "exit_code": container.get("exitCode"),
            "reason": container.get("reason", ""), "log_stream": container.get("logStreamName") or "",
        })
    return result


def log_streams(job: dict) -> list[str]:
    """CloudWatch log streams of every attempt, oldest first."""
    streams = [attempt["log_stream"] for attempt in _attempts_details(job) if attempt["log_stream"]]
    current = (job.get("container") or {}).get("logStreamName")
    if current and current not in streams:
        streams.append(current)
    return streams


def batch_failure_reason(job: dict, process: Process) -> tuple[str, int | None]:
    """A failure reason people can act on, with Batch's own words, and the container's exit code."""
    status_reason = job.get("statusReason", "") or ""
    container = dict(job.get("container") or {})
    attempts = job.get("attempts") or []
    if attempts:
        container = {**(attempts[-1].get("container") or {}), **{k: v for k, v in container.items() if v is not None}}
    reason = container.get("reason", "") or ""
    exit_code = container.get("exitCode")
    text = f"{status_reason} {reason}".lower()
    memory = (process.snapshot or {}).get("memory_mib")
    if "outofmemory" in text or "out of memory" in text or "memory usage" in text:
        headline = f"Out of memory: the container went over its {memory} MiB limit."
    elif "exceeded timeout" in text or "timed out" in text:
        headline = "Timed out: AWS Batch stopped the attempt at its time limit."
    elif "cannotpullcontainer" in text or ("pull" in text and "image" in text):
        headline = "The container image could not be pulled."
    elif status_reason.startswith("Host EC2"):
        headline = f"Spot capacity reclaimed: the host was terminated on the last of {max(1, len(attempts))} attempt(s)."
    elif "cannotstartcontainer" in text or "resourceinitializationerror" in text or "secret" in text:
        headline = "The container could not start."
    elif job.get("status") == "SUCCEEDED":
        headline = "The container exited but the runner recorded no result (see the log)."
    else:
        headline = "AWS Batch reports the job failed."
    said = "; ".join(part for part in (status_reason, reason) if part)
    detail = f" (AWS Batch: {said}" if said else " (AWS Batch"
    detail += f"; exit code {exit_code})" if exit_code is not None else ")"
    return headline + detail, exit_code


def runnable_limit_seconds(queue: str) -> int:
    return settings.JTB_BATCH_RUNNABLE_MAX_SECONDS_BY_QUEUE.get(queue, settings.JTB_BATCH_RUNNABLE_MAX_SECONDS)


def _record(process_id: int, job: dict) -> Process | None:
    """Store the job's state on the run when it is not older than what is there; the fresh row."""
    order = job_order(job)
    now = timezone.now()
    with transaction.atomic():
        process = Process.objects.select_for_update().filter(pk=process_id).first()
        if process is None or process.external_id != job.get("jobId"):
            return None
        details = dict(process.executor_details or {})
        if list(details.get("order") or [-1, -1]) > order:
            return None  # an older answer arriving late changes nothing
        state = job.get("status", "")
        attempt = job_attempt_number(job)
        runnable = details.get("runnable_since")
        if state == "RUNNABLE":
            if not runnable or runnable.get("attempt") != attempt:
                details["runnable_since"] = {"attempt": attempt, "at": now.isoformat()}
        elif runnable:
            details.pop("runnable_since")
        details.update({
            "order": order, "attempt": attempt, "attempts": _attempts_details(job), "log_streams": log_streams(job),
            "job_definition": job.get("jobDefinition", details.get("job_definition", "")),
        })
        reason = job.get("statusReason", "") or ""
        if details != process.executor_details or state != process.executor_state or reason != process.executor_status_reason:
            Process.objects.filter(pk=process_id).update(
                executor_state=state, executor_status_reason=reason[:2000], executor_details=details,
            )
            process.executor_state, process.executor_status_reason, process.executor_details = state, reason, details
    return process


# What batch_job_apply answers for a job that is none of our runs (another app, another deployment).
NOT_OURS = "not_ours"
_NAME_IDS = re.compile(r"-job(\d+)-process(\d+)$")


def batch_job_process_find(*, job: dict) -> int | None:
    """The id of our run a Batch job description belongs to, or None.

    By job name first (`<prefix>-job<id>-process<id>`: a primary-key read, and the prefix tells
    deployments sharing an account apart, which the `jtb:` tags alone cannot), then by job id among
    active runs (a run submitted under an earlier prefix). A run submitted whose worker died
    before saving the job id gets this id here, as the tracker's recovery would give it.
    """
    job_id, name = job.get("jobId") or "", job.get("jobName") or ""
    if not job_id:
        return None
    match = _NAME_IDS.search(name)
    if match:
        row = (
            Process.objects.filter(pk=int(match.group(2)), executor=ExecutorName.AWS_BATCH)
            .values("pk", "job_id", "external_id", "status").first()
        )
        if row and process_batch_job_name(job_id=row["job_id"], process_id=row["pk"]) == name:
            if row["external_id"] == job_id:
                return row["pk"]
            if row["external_id"] == "" and row["status"] == ProcessStatus.SUBMITTED:
                return row["pk"] if batch_job_id_record(process_id=row["pk"], job_id=job_id) else None
            return None  # a duplicate submission of that run: the one whose id is saved counts
    return (
        Process.objects.filter(executor=ExecutorName.AWS_BATCH, status__in=ACTIVE_STATUSES, external_id=job_id)
        .values_list("pk", flat=True).first()
    )


def batch_job_apply(*, job: dict) -> str | None:
    """Apply one Batch job description (e.g. a state-change event's `detail`) to the run it is of.

    Returns NOT_OURS when no run of ours matches, else what `batch_job_observe` did.
    """
    process_id = batch_job_process_find(job=job)
    if process_id is None:
        return NOT_OURS
    return batch_job_observe(process_id=process_id, job=job)


def batch_job_observe(*, process_id: int, job: dict) -> str | None:
    """Apply one Batch answer (DescribeJobs entry or a state-change event) to its run.

    Returns what was done: "finished", "cancelled", "restarted", "runnable_timeout", "terminated" or None.
    """
    process = _record(process_id, job)
    if process is None or process.status not in ACTIVE_STATUSES:
        return None
    state = job.get("status", "")
    if state in batch.FINAL_STATES:
        return _finish(process, job)
    if process.cancel_requested_at:
        return _enforce_cancel(process, state)
    attempt = job_attempt_number(job)
    if attempt > process.attempt and state in batch.WAITING_STATES:
        # Batch retries after a Spot reclaim: the next attempt's runner must be able to claim it.
        return "restarted" if batch_attempt_restart(process_id=process.pk, attempt=attempt) else None
    if state == "RUNNABLE":
        return _check_runnable(process)
    return None


def _finish(process: Process, job: dict) -> str | None:
    if process.cancel_requested_at:
        done = services.process_finish(
            process_id=process.pk, status=ProcessStatus.CANCELLED, failure_reason=process.failure_reason or "Cancelled.",
            exit_code=(job.get("container") or {}).get("exitCode"),
        )
        return "cancelled" if done else None
    reason, exit_code = batch_failure_reason(job, process)
    done = services.process_finish(
        process_id=process.pk, status=ProcessStatus.FAILED, failure_reason=reason, exit_code=exit_code,
    )
    return "finished" if done else None


def _enforce_cancel(process: Process, state: str) -> str | None:
    reason = process.failure_reason or "Cancelled."
    if state in ("SUBMITTED", "PENDING", "RUNNABLE") and process.status == ProcessStatus.SUBMITTED:
        batch.batch_job_cancel(job_id=process.external_id, reason=reason)
        done = services.process_finish(process_id=process.pk, status=ProcessStatus.CANCELLED, failure_reason=reason)
        return "cancelled" if done else None
    if (process.executor_details or {}).get("terminate_sent"):
        return None
    # Started (or starting): the runner gets SIGTERM and records `cancelled`; if it cannot, the
    # FAILED job that follows is finished as cancelled above.
    batch.batch_job_terminate(job_id=process.external_id, reason=reason)
    details = {**process.executor_details, "terminate_sent": timezone.now().isoformat()}
    Process.objects.filter(pk=process.pk).update(executor_details=details)
    return "terminated"


def _check_runnable(process: Process) -> str | None:
    since = (process.executor_details or {}).get("runnable_since") or {}
    if not since.get("at"):
        return None
    queue = batch_queue_for(process)
    limit = runnable_limit_seconds(queue)
    waited = (timezone.now() - datetime.fromisoformat(since["at"])).total_seconds()
    if waited <= limit:
        return None
    reason = (
        f"Waited in RUNNABLE on job queue {queue} for more than {limit} s (no capacity to start it); "
        "the AWS Batch job was cancelled."
    )
    if process.executor_status_reason:
        reason += f" Last AWS Batch status: {process.executor_status_reason}"
    try:
        batch.batch_job_cancel(job_id=process.external_id, reason=reason[:1000])
    except (batch.BatchError, batch.BatchThrottled) as exc:
        logger.warning("cancelling stuck job %s failed: %s", process.external_id, exc)
        return None  # try again next time: the run must not fail while its job may still start
    done = services.process_finish(process_id=process.pk, status=ProcessStatus.FAILED, failure_reason=reason)
    return "runnable_timeout" if done else None


def batch_attempt_restart(*, process_id: int, attempt: int) -> bool:
    """Batch started attempt `attempt` of a run (after a Spot reclaim): let its runner claim the run.

    Moves the run back to `submitted` once per attempt and clears the steps of the lost attempt
    (its log stays in CloudWatch).
    """
    with transaction.atomic():
        updated = Process.objects.filter(
            pk=process_id, status__in=[ProcessStatus.SUBMITTED, ProcessStatus.RUNNING], attempt__lt=attempt,
        ).update(status=ProcessStatus.SUBMITTED, attempt=attempt, heartbeat_at=None)
        if updated:
            Task.objects.filter(process_id=process_id).delete()
    return updated == 1


def batch_processes_track() -> dict[str, int]:
    """The tracker: describe the Batch jobs of active runs and apply the answers; recover lost submits."""
    counts = {"described": 0, "missing": 0, "changed": 0, "recovered": 0}
    active = list(
        Process.objects.filter(executor=ExecutorName.AWS_BATCH, status__in=[ProcessStatus.SUBMITTED, ProcessStatus.RUNNING])
        .exclude(external_id="").values_list("pk", "external_id", "submitted_at").order_by("pk")
    )
    grace = timezone.now() - timezone.timedelta(seconds=settings.JTB_BATCH_SUBMIT_GRACE_SECONDS)
    for start in range(0, len(active), batch.DESCRIBE_BATCH):
        chunk = active[start : start + batch.DESCRIBE_BATCH]
        try:
            jobs = {job["jobId"]: job for job in batch.batch_jobs_describe([job_id for _, job_id, _ in chunk])}
        except (batch.BatchError, batch.BatchThrottled) as exc:
            logger.warning("describing Batch jobs failed: %s", exc)
            continue
        counts["described"] += len(jobs)
        for process_id, job_id, submitted_at in chunk:
            job = jobs.get(job_id)
            try:
                if job is not None:
                    counts["changed"] += batch_job_observe(process_id=process_id, job=job) is not None
                elif submitted_at and submitted_at < grace:
                    counts["missing"] += services.process_finish(
                        process_id=process_id, status=ProcessStatus.FAILED,
                        failure_reason=f"AWS Batch has no job {job_id} any more; the run's result is unknown.",
                    )
            except (batch.BatchError, batch.BatchThrottled) as exc:
                logger.warning("tracking process %s failed: %s", process_id, exc)
    counts["recovered"] = len(batch_submissions_recover())
    return counts

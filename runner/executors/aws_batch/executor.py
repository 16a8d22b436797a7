"""The AWS Batch executor: the seam the services call; each run is one Batch job whose container
runs the runner (`manage.py run_process`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings

from processes import services
from processes.executors import Executor, ExecutorName, LogChunk
from processes.models import Process, ProcessStatus
from runner.aws import batch
from runner.aws.logs import LogReadError, cloudwatch_log_read
from runner.executors.aws_batch.submission import batch_processes_submit, batch_queue_for, process_batch_job_name
from runner.executors.aws_batch.tracking import batch_job_observe, log_streams

logger = logging.getLogger(__name__)


class AwsBatchExecutor(Executor):
    name = ExecutorName.AWS_BATCH

    def submit(self, processes: Sequence[Process]) -> None:
        """One claim UPDATE for the chunk, SubmitJob calls in parallel, the ids saved together."""
        batch_processes_submit(processes=processes)

    def cancel(self, process: Process) -> None:
        """CancelJob before the run started, TerminateJob once it runs; the tracker finishes the rest."""
        process = Process.objects.filter(pk=process.pk).first()
        if process is None or process.is_finished or not process.external_id:
            # No job id yet: the tracker finds the job (or none) and cancels it.
            return
        reason = process.failure_reason or "Cancelled."
        try:
            if process.status == ProcessStatus.RUNNING:
                batch.batch_job_terminate(job_id=process.external_id, reason=reason)
                return
            batch.batch_job_cancel(job_id=process.external_id, reason=reason)
        except (batch.BatchError, batch.BatchThrottled) as exc:
            logger.warning("cancelling Batch job %s failed (the tracker retries): %s", process.external_id, exc)
            return
        # Not started: the run ends now. Should its container start anyway, the runner finds the run
        # finished and exits without running the template.
        if Process.objects.filter(pk=process.pk, status=ProcessStatus.SUBMITTED).exists():
            services.process_finish(process_id=process.pk, status=ProcessStatus.CANCELLED, failure_reason=reason)

    def read_log(self, process: Process, offset: int = 0, limit: int = 1_000_000) -> LogChunk:
        """Byte offsets into the attempts' CloudWatch streams, one after the other (runner.aws.logs)."""
        details = process.executor_details or {}
        streams = list(details.get("log_streams") or [])
        if not streams and process.external_id:
            try:
                jobs = batch.batch_jobs_describe([process.external_id])
            except (batch.BatchError, batch.BatchThrottled) as exc:
                return LogChunk(text=f"[batch] the log cannot be found now: {exc}\n" if offset == 0 else "", next_offset=offset)
            streams = log_streams(jobs[0]) if jobs else []
        if not streams:
            return LogChunk(text="", next_offset=max(offset, 0))
        group = details.get("log_group") or settings.JTB_BATCH_LOG_GROUP
        try:
            text, next_offset = cloudwatch_log_read(group=group, streams=streams, offset=offset, limit=limit)
        except LogReadError as exc:
            return LogChunk(text=f"[batch] {exc}\n" if offset == 0 else "", next_offset=offset)
        return LogChunk(text=text, next_offset=next_offset)

    def reconcile(self, process: Process) -> bool:
        """Whether Batch still runs the job. A finished job is recorded on the run with Batch's reason
        (out of memory, Spot reclaim ...) before answering, so the reaper's generic reason loses."""
        job_id = process.external_id
        try:
            if not job_id:
                found = batch.batch_jobs_find(
                    queue=batch_queue_for(process), name=process_batch_job_name(job_id=process.job_id, process_id=process.pk)
                )
                return any(job.get("status") not in batch.FINAL_STATES for job in found)
            jobs = batch.batch_jobs_describe([job_id])
        except (batch.BatchError, batch.BatchThrottled) as exc:
            logger.warning("cannot tell whether Batch job %s is alive: %s", job_id, exc)
            return True  # never fail a run because AWS could not be asked
        if not jobs:
            return False
        job = jobs[0]
        batch_job_observe(process_id=process.pk, job=job)
        return job.get("status") not in batch.FINAL_STATES

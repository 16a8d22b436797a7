"""Every state change of a run: start, submit, run, finish, finalize, cancel, rerun.

The admin, the API, Celery tasks, schedules and the runner all call these functions, so each rule
(concurrency policy, forward-only status, one notification per failure) lives in one place.
Status moves are claimed with a conditional UPDATE that must touch exactly one row, so two
workers, a redelivered message or a late runner can never move a run backwards or twice.

A run's end has two halves. `process_finish` records it, wherever the run ended (a runner in a
container, the local worker, the reaper, the Batch tracker). `process_finalize` then does what the
control plane must do once — the run's cost and its count in the rollups (processes.rollup), its alerts (alerts.services), releasing the next queued run — in a
control-plane process: a task enqueued after commit, the local worker that watched the runner, or
the periodic sweep that finds finished runs nobody finalized (a container has no broker).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from jobs.history import job_versions_latest
from jobs.models import ConcurrencyPolicy, Job, Schedule
from jobs.validation import validate_json_object
from processes.costs import process_cost_record
from processes.executors import ExecutorName, executor_get
from processes.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    IdempotencyRecord,
    Process,
    ProcessStatus,
    Task,
    TaskStatus,
    Trigger,
)
from processes.rollup import rollup_record_run

logger = logging.getLogger(__name__)

MAX_PARAMETERS_BYTES = 64 * 1024
# Submit messages carry this many process ids each, so a bulk run of 1,000 sends 20 messages.
SUBMIT_CHUNK = 50
# Finished runs the periodic sweep finalizes per call.
FINALIZE_SWEEP_LIMIT = 500


class ProcessRefused(Exception):
    """A run cannot be started or changed in the state things are in (HTTP 409 in the API)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class RunRequest:
    job: Job
    parameters: dict | None = None
    # One schedule tick per request (the beat tick's bulk start); unique per (schedule, scheduled_for).
    schedule: Schedule | None = None
    scheduled_for: datetime | None = None


def job_snapshot(job: Job) -> dict:
    """The job settings a run uses, frozen into the Process."""
    return {
        "template": job.template,
        "python_modules": list(job.python_modules),
        "vcpus": str(job.vcpus),
        "memory_mib": job.memory_mib,
        "gpus": job.gpus,
        "timeout_seconds": job.timeout_seconds,
        "retry_attempts": job.retry_attempts,
        "environment": dict(job.environment),
        "queue": job.queue,
    }


def validate_run_parameters(parameters) -> dict:
    if parameters is None:
        return {}
    validate_json_object(parameters, what="Parameters")
    try:
        size = len(json.dumps(parameters))
    except (TypeError, ValueError):
        raise ValidationError("Parameters must be plain JSON values.") from None
    if size > MAX_PARAMETERS_BYTES:
        raise ValidationError(f"Parameters may be at most {MAX_PARAMETERS_BYTES // 1024} KiB of JSON.")
    return parameters


def process_start(
    *,
    job: Job,
    trigger: str,
    user=None,
    parameters: dict | None = None,
    rerun_of: Process | None = None,
    schedule: Schedule | None = None,
    scheduled_for: datetime | None = None,
    enqueue: bool = True,
) -> Process:
    """Create a run of `job` and queue it for its executor once the transaction commits.

    Raises ProcessRefused when the job is disabled or its `skip` policy finds an active run, and
    ValidationError for bad parameters. With `schedule` and `scheduled_for`, a second call for
    the same tick returns the run the first one created instead of starting another.
    """
    parameters = validate_run_parameters(parameters)
    return process_start_many(
        requests=[RunRequest(job=job, parameters=parameters)], trigger=trigger, user=user,
        rerun_of=rerun_of, schedule=schedule, scheduled_for=scheduled_for, enqueue=enqueue,
    )[0]


def process_start_many(
    *,
    requests: Sequence[RunRequest],
    trigger: str,
    user=None,
    rerun_of: Process | None = None,
    schedule: Schedule | None = None,
    scheduled_for: datetime | None = None,
    enqueue: bool = True,
) -> list[Process]:
    """Start several runs at once, all or none: the bulk path of the API.

    Validation errors name the index of each bad request. Rows are written with one INSERT and
    submit messages go out in chunks after commit.
    """
    if trigger not in Trigger.values:
        raise ValidationError(f"Unknown trigger {trigger!r}.")
    errors: dict[int, list[str]] = {}
    cleaned: list[dict] = []
    for index, request in enumerate(requests):
        try:
            cleaned.append(validate_run_parameters(request.parameters))
        except ValidationError as exc:
            errors[index] = exc.messages
    if errors:
        raise ValidationError({str(index): messages for index, messages in errors.items()})

    try:
        with transaction.atomic():
            processes = _create_processes(
                requests, cleaned, trigger=trigger, user=user, rerun_of=rerun_of,
                schedule=schedule, scheduled_for=scheduled_for,
            )
    except IntegrityError:
        if rerun_of is not None:
            _refuse_second_rerun(rerun_of)
        if schedule is None or scheduled_for is None:
            raise
        # Another beat, a redelivered message or the repeated DST hour got there first.
        return [Process.objects.get(schedule=schedule, scheduled_for=scheduled_for)]
    to_submit = [process.pk for process in processes if not process.held]
    if enqueue:  # False: the caller runs it itself (`manage.py run_job` inside AWS Batch)
        transaction.on_commit(lambda: processes_submit_later(process_ids=to_submit))
    return processes


def _create_processes(requests, cleaned, *, trigger, user, rerun_of, schedule, scheduled_for) -> list[Process]:
    # Lock the jobs (in id order, so two bulk calls cannot deadlock) so that two starts of a
    # `skip` or `queue` job cannot both see "nothing active".
    job_ids = sorted({request.job.pk for request in requests})
    jobs = {job.pk: job for job in Job.objects.select_for_update().filter(pk__in=job_ids).order_by("pk")}
    versions = job_versions_latest(job_ids=job_ids)
    guarded = [pk for pk, job in jobs.items() if job.concurrency_policy != ConcurrencyPolicy.ALLOW]
    active_jobs = set(
        Process.objects.filter(job_id__in=guarded, status__in=ACTIVE_STATUSES)
        .values_list("job_id", flat=True).distinct()
    ) if guarded else set()

    user = user if getattr(user, "is_authenticated", False) else None
    refusals: dict[int, str] = {}
    processes: list[Process] = []
    now = timezone.now()
    for index, (request, parameters) in enumerate(zip(requests, cleaned, strict=True)):
        job = jobs.get(request.job.pk)
        if job is None:
            refusals[index] = f"Job {request.job.pk} no longer exists."
            continue
        if not job.enabled:
            refusals[index] = f"Job {job.name!r} is disabled; enable it to run it."
            continue
        held = False
        if job.pk in active_jobs:
            if job.concurrency_policy == ConcurrencyPolicy.SKIP:
                refusals[index] = f"Job {job.name!r} already has an active run and its policy is to skip."
                continue
            held = True
        if job.concurrency_policy != ConcurrencyPolicy.ALLOW:
            active_jobs.add(job.pk)
        processes.append(
            Process(
                job=job, status=ProcessStatus.QUEUED, held=held, trigger=trigger, triggered_by=user,
                parameters={**job.parameters, **parameters}, snapshot=job_snapshot(job),
                job_version=versions.get(job.pk),
                rerun_of=rerun_of, schedule=request.schedule or schedule,
                scheduled_for=request.scheduled_for or scheduled_for, created_at=now,
            )
        )
    if refusals:
        if len(requests) == 1:
            raise ProcessRefused(next(iter(refusals.values())), code="refused")
        raise ProcessRefused(
            "; ".join(f"run {index}: {reason}" for index, reason in refusals.items()), code="refused"
        )
    if len(processes) == 1:
        processes[0].save()
        return processes
    return _bulk_insert(processes)


# SQL Server takes at most 2,100 parameters a statement: read bulk keys back in slices well below.
BULK_KEY_SLICE = 1000


def _bulk_insert(processes: list[Process]) -> list[Process]:
    """One INSERT for all rows, with their ids, on every backend.

    Where the database cannot return the ids of a bulk insert (mssql-django on SQL Server), each
    row carries a key of ours, read back (and cleared) after the insert: never a second insert.
    """
    if connection.features.can_return_rows_from_bulk_insert:
        return Process.objects.bulk_create(processes)
    token = uuid.uuid4().hex
    for index, process in enumerate(processes):
        process.bulk_key = f"{token}:{index}"
    Process.objects.bulk_create(processes)
    keys = [process.bulk_key for process in processes]
    ids: dict[str, int] = {}
    for start in range(0, len(keys), BULK_KEY_SLICE):
        ids.update(Process.objects.filter(bulk_key__in=keys[start : start + BULK_KEY_SLICE]).values_list("bulk_key", "pk"))
    Process.objects.filter(pk__in=list(ids.values())).update(bulk_key=None)
    for process in processes:
        process.pk, process.bulk_key = ids[process.bulk_key], None
        process._state.adding = False
    return processes


def _refuse_second_rerun(rerun_of: Process) -> None:
    active = Process.objects.filter(rerun_of=rerun_of, status__in=ACTIVE_STATUSES).order_by("pk").first()
    if active is not None:
        raise ProcessRefused(
            f"Process {rerun_of.pk} already has a rerun in flight: process {active.pk} ({active.status}).",
            code="rerun_in_flight",
        )


def processes_submit_later(*, process_ids: Iterable[int]) -> None:
    """Send submit messages (in chunks) for runs already committed as queued."""
    from processes.tasks import submit_processes

    ids = list(process_ids)
    for start in range(0, len(ids), SUBMIT_CHUNK):
        submit_processes.delay(ids[start : start + SUBMIT_CHUNK])


def processes_submit(*, process_ids: Sequence[int]) -> None:
    """Hand queued runs (a submit message's chunk) to the executor in settings, loaded in one query.

    Runs no longer queued, or held behind an active run of their job, are skipped; the executor's
    claim decides between two workers, so calling this twice for the same runs is safe.
    """
    processes = list(
        Process.objects.select_related("job")
        .filter(pk__in=list(process_ids), status=ProcessStatus.QUEUED, held=False)
        .order_by("pk")
    )
    if processes:
        executor_get().submit(processes)


def process_claim(*, process_id: int, to_status: str, from_statuses: Sequence[str], **fields) -> bool:
    """Move a run from one of `from_statuses` to `to_status`; False when someone else already did."""
    updated = Process.objects.filter(pk=process_id, status__in=list(from_statuses)).update(
        status=to_status, **fields
    )
    return updated == 1


def process_mark_submitted(*, process_id: int, executor: str, external_id: str = "", **fields) -> bool:
    """Claim a queued run for an executor; a run held behind an active one cannot be claimed.
    `fields` are saved with the claim (the local watcher records who claimed: executor_details)."""
    return Process.objects.filter(pk=process_id, status=ProcessStatus.QUEUED, held=False).update(
        status=ProcessStatus.SUBMITTED, executor=executor, external_id=external_id, submitted_at=timezone.now(),
        **fields,
    ) == 1


def process_unclaim(*, process_id: int, submitted_at: datetime, executor_details: dict) -> bool:
    """Put a run claimed by a worker that died before it started a runner back to `queued`.

    Only the claim the caller looked at is undone (same `submitted_at`, still no runner recorded in
    external_id), so two workers recovering the same run undo it once, and a run whose runner did
    start is never queued again. The caller sends it to the executor again.
    """
    return Process.objects.filter(
        pk=process_id, status__in=[ProcessStatus.SUBMITTED, ProcessStatus.RUNNING], external_id="",
        submitted_at=submitted_at, finished_at__isnull=True,
    ).update(
        status=ProcessStatus.QUEUED, executor="", submitted_at=None, started_at=None, heartbeat_at=None,
        executor_details=executor_details,
    ) == 1


# A runner claims its run from these (also before Django: runner/runtime/direct_db.py).
RUNNER_CLAIMS_FROM = (ProcessStatus.QUEUED, ProcessStatus.SUBMITTED)


def process_mark_running(*, process_id: int) -> bool:
    """The runner has started: claim the run so that a second runner for it stops at once."""
    now = timezone.now()
    return process_claim(
        process_id=process_id, to_status=ProcessStatus.RUNNING, from_statuses=RUNNER_CLAIMS_FROM,
        started_at=now, heartbeat_at=now,
    )


def process_heartbeat(*, process_id: int) -> bool:
    return Process.objects.filter(pk=process_id, status=ProcessStatus.RUNNING).update(
        heartbeat_at=timezone.now()
    ) == 1


def process_cancel_requested(*, process_id: int) -> bool:
    """Whether someone asked to cancel the run (the runner checks this itself, so a cancel works
    whichever process asked and whether or not a watcher is there to pass it on)."""
    return Process.objects.filter(pk=process_id, cancel_requested_at__isnull=False).exists()


def process_finish(
    *,
    process_id: int,
    status: str,
    failure_reason: str = "",
    exit_code: int | None = None,
    from_statuses: Sequence[str] = ACTIVE_STATUSES,
    finalize_later: bool = True,
    **fields,
) -> bool:
    """Record how a run ended. Only the first call for a run counts; later ones return False.

    Tasks still marked running are closed as failed with the same reason. With `finalize_later`
    (every control-plane caller) the run is finalized by a task after commit; the runner passes
    False: it records results only, and the control plane finds the run finished (see the module
    docstring).
    """
    if status not in FINISHED_STATUSES:
        raise ValueError(f"{status!r} is not a final status")
    now = timezone.now()
    with transaction.atomic():
        claimed = process_claim(
            process_id=process_id, to_status=status, from_statuses=from_statuses,
            finished_at=now, failure_reason=failure_reason[:10_000], exit_code=exit_code, held=False, **fields,
        )
        if not claimed:
            return False
        Task.objects.filter(process_id=process_id, status=TaskStatus.RUNNING).update(
            status=TaskStatus.CANCELLED if status == ProcessStatus.CANCELLED else TaskStatus.FAILED, finished_at=now,
            error=failure_reason[:10_000] or "The run ended before this task finished.",
        )
    if finalize_later:
        transaction.on_commit(lambda: processes_finalize_later(process_ids=[process_id]))
    return True


def processes_finalize_later(*, process_ids: Sequence[int]) -> None:
    """Ask the control plane to finalize these finished runs (a message to the control queue)."""
    from processes.tasks import finalize_processes

    finalize_processes.delay(list(process_ids))


def process_finalize(*, process_id: int) -> bool:
    """The control plane's half of a run's end, exactly once: raise its alerts, release the next run.

    Claimed with a conditional UPDATE on `finalized_at`, so a task, the local worker and the sweep
    racing for the same run do it once between them. Returns False when the run is not finished yet
    or was finalized already.
    """
    # The claim, the cost and the rollups' counts commit together: a run is counted once, or
    # not claimed and left for the sweep.
    with transaction.atomic():
        claimed = Process.objects.filter(
            pk=process_id, status__in=FINISHED_STATUSES, finalized_at__isnull=True
        ).update(finalized_at=timezone.now())
        if not claimed:
            return False
        process_cost_record(process_id=process_id)
        rollup_record_run(process_id=process_id)
    job_id = Process.objects.filter(pk=process_id).values_list("job_id", flat=True).get()
    # Failed, recovered, slow, failures in a row; a failure also e-mails the job's notify_emails.
    # Imported here: the runner imports this module and never finalizes, so it skips alerting's
    # imports (HTTP client, message building) on its startup path.
    from alerts.services import alerts_on_process_finished

    alerts_on_process_finished(process_id=process_id)
    process_release_next(job_id=job_id)
    return True


def processes_finalize(*, process_ids: Iterable[int]) -> list[int]:
    """Finalize these runs (those finished and not finalized yet); the ids this call finalized."""
    return [process_id for process_id in process_ids if process_finalize(process_id=process_id)]


def processes_finalize_pending(*, limit: int = FINALIZE_SWEEP_LIMIT) -> list[int]:
    """The sweep: finalize finished runs nobody finalized (a run ended in a container, a lost message)."""
    pending = list(
        Process.objects.filter(status__in=FINISHED_STATUSES, finalized_at__isnull=True)
        .order_by("pk").values_list("pk", flat=True)[:limit]
    )
    return processes_finalize(process_ids=pending)


def process_release_next(*, job_id: int) -> Process | None:
    """Start the oldest run of a `queue` job that waits, if no other run of the job is active."""
    with transaction.atomic():
        Job.objects.select_for_update().filter(pk=job_id).first()
        if Process.objects.filter(job_id=job_id, status__in=ACTIVE_STATUSES, held=False).exists():
            return None
        waiting = Process.objects.filter(job_id=job_id, status=ProcessStatus.QUEUED, held=True).order_by("pk").first()
        if waiting is None:
            return None
        Process.objects.filter(pk=waiting.pk, held=True).update(held=False)
        transaction.on_commit(lambda: processes_submit_later(process_ids=[waiting.pk]))
        return waiting


def process_cancel(*, process: Process, user=None) -> Process:
    """Cancel a run: at once when no executor has it yet, else ask the executor to stop it."""
    who = f" by {user.get_username()}" if user is not None and user.is_authenticated else ""
    if process.status in FINISHED_STATUSES:
        raise ProcessRefused(f"Process {process.pk} already {process.status}; there is nothing to cancel.", code="finished")
    # Only a run no executor has claimed yet ends at once; the claim decides, not our copy.
    if process_finish(
        process_id=process.pk, status=ProcessStatus.CANCELLED, failure_reason=f"Cancelled{who} before it started.",
        from_statuses=[ProcessStatus.QUEUED], cancel_requested_at=timezone.now(),
    ):
        process.refresh_from_db()
        return process
    updated = Process.objects.filter(pk=process.pk, status__in=ACTIVE_STATUSES).update(
        cancel_requested_at=timezone.now(), failure_reason=f"Cancelled{who}."
    )
    if not updated:
        process.refresh_from_db()
        raise ProcessRefused(f"Process {process.pk} already {process.status}; there is nothing to cancel.", code="finished")
    process.refresh_from_db()
    executor = executor_get(process.executor or None)
    transaction.on_commit(lambda: executor.cancel(process))
    return process


def process_rerun(*, process: Process, user=None) -> Process:
    """Start a new run of a failed or cancelled one, with the same parameters, linked by rerun_of."""
    if process.status not in (ProcessStatus.FAILED, ProcessStatus.CANCELLED):
        raise ProcessRefused(
            f"Only failed or cancelled processes can be rerun; process {process.pk} is {process.status}.",
            code="not_rerunnable",
        )
    return process_start(
        job=process.job, trigger=Trigger.RERUN, user=user, parameters=process.parameters, rerun_of=process
    )


def task_start(*, process_id: int, sequence: int, name: str, at: datetime | None = None) -> Task:
    """Record that a step began (`at`: when the template began it). Retried writes find the row there."""
    task, _ = Task.objects.get_or_create(
        process_id=process_id, sequence=sequence,
        defaults={"name": name[:200], "status": TaskStatus.RUNNING, "started_at": at or timezone.now()},
    )
    return task


def task_finish(
    *, process_id: int, sequence: int, status: str, error: str = "", traceback: str = "", at: datetime | None = None
) -> bool:
    """Record how a step ended (`at`: when the template ended it); only a running step changes."""
    return Task.objects.filter(process_id=process_id, sequence=sequence, status=TaskStatus.RUNNING).update(
        status=status, finished_at=at or timezone.now(), error=error[:10_000], traceback=traceback[:100_000]
    ) == 1


SWEEP_LIMIT = 500


def idempotency_records_expire(*, older_than_seconds: int) -> int:
    """Forget API answers kept for Idempotency-Key replays once they are older than the window."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    return IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()[0]


def processes_sweep_stuck(*, queued_seconds: int, submitted_seconds: int) -> dict[str, int]:
    """Hand runs nobody is working on to the executor again; the executor's claim keeps each to one
    execution, so a run that was only slow is not doubled.

    - `queued` (not held) for longer than `queued_seconds`: its submit message may be lost (a broker
      restart, a worker killed while holding it). Re-sent with a growing pause per run (recorded
      in executor_details), so runs that merely wait for a free slot are not flooded.
    - `submitted` to the local executor without a runner for longer than `submitted_seconds`: its
      worker died between its two claims. Moved back to `queued` and re-sent.
    """
    now = timezone.now()
    resend: list[int] = []
    stale_submitted = list(
        Process.objects.filter(
            status=ProcessStatus.SUBMITTED, executor=ExecutorName.LOCAL, external_id="",
            submitted_at__lt=now - timezone.timedelta(seconds=submitted_seconds),
        ).values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    for pk in stale_submitted:
        if Process.objects.filter(pk=pk, status=ProcessStatus.SUBMITTED, external_id="").update(
            status=ProcessStatus.QUEUED, executor="", submitted_at=None,
        ):
            resend.append(pk)
    waiting = Process.objects.filter(
        status=ProcessStatus.QUEUED, held=False, created_at__lt=now - timezone.timedelta(seconds=queued_seconds),
    ).exclude(pk__in=resend).order_by("pk").only("pk", "executor_details", "created_at")[:SWEEP_LIMIT]
    requeued = len(resend)
    for process in waiting:
        details = dict(process.executor_details or {})
        sends = int(details.get("resends") or 0)
        last = details.get("resent_at")
        since = datetime.fromisoformat(last) if last else process.created_at
        if (now - since).total_seconds() < queued_seconds * 2**sends:
            continue
        details.update(resends=sends + 1, resent_at=now.isoformat())
        if Process.objects.filter(pk=process.pk, status=ProcessStatus.QUEUED).update(executor_details=details):
            resend.append(process.pk)
    if resend:
        processes_submit_later(process_ids=resend)
    return {"requeued": requeued, "resent": len(resend) - requeued}


def processes_reap_lost(*, older_than_seconds: int) -> list[int]:
    """Fail running runs whose runner stopped beating, after the executor confirms it is gone."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    stale = list(
        Process.objects.filter(status=ProcessStatus.RUNNING, heartbeat_at__lt=cutoff).only(
            "pk", "executor", "external_id", "heartbeat_at", "job_id", "status"
        )[:500]
    )
    reaped = []
    for process in stale:
        try:
            alive = executor_get(process.executor or None).reconcile(process)
        except Exception:  # the executor cannot say (AWS unreachable): ask again next time
            logger.warning("Process %s: could not ask its executor whether it runs", process.pk, exc_info=True)
            continue
        if alive:
            continue
        last = timezone.localtime(process.heartbeat_at).strftime("%Y-%m-%d %H:%M:%S %Z")
        with transaction.atomic():
            # A runner back from a database outage may have beaten since the executor was asked:
            # only a run whose heartbeat is still old is failed (the row lock holds off its beat).
            still_lost = Process.objects.select_for_update().filter(
                pk=process.pk, status=ProcessStatus.RUNNING, heartbeat_at__lt=cutoff
            ).exists()
            if still_lost and process_finish(
                process_id=process.pk, status=ProcessStatus.FAILED,
                failure_reason=f"Runner lost: no heartbeat since {last}.",
            ):
                reaped.append(process.pk)
    return reaped

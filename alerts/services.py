"""Every state change of alerting: raise an alert once, group it into a delivery, send a delivery.

`alerts_on_process_finished` is the hook a finalized run calls (failed, recovered, slow, failures
in a row); `alerts_check` is the periodic look for what no finish reports (slow or waiting runs still
active, schedules that stopped firing). Both raise alerts through `alert_raise`, where the database
refuses the same event twice and where alerts join the open delivery of their job and event.
Sending happens outside any transaction, in `delivery_attempt`, claimed per attempt with a
conditional UPDATE so that a redelivered task message cannot send twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts import selectors
from alerts.channels import SendResult, Target, channel_send
from alerts.messages import message_for
from alerts.models import (
    JOB_EMAILS_KEY,
    Alert,
    Channel,
    ChannelKind,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Event,
    JobAlertPolicy,
)
from jobs.models import Job, Schedule, ScheduleDriver
from processes.models import Process, ProcessStatus, TaskStatus

logger = logging.getLogger(__name__)

# The periodic check looks at no more rows than this per kind: a backlog is worked off over
# several checks instead of one unbounded query.
CHECK_LIMIT = 5000


def _format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


# --- Raising ------------------------------------------------------------------------------------


def alert_raise(
    *,
    event: str,
    job: Job,
    summary: str,
    process_id: int | None = None,
    schedule_id: int | None = None,
    due_at: datetime | None = None,
    now: datetime | None = None,
) -> Alert | None:
    """Record an event and add it to the open delivery of each of its channels.

    Returns None when this event was already raised for this run (or schedule tick): the unique
    constraints make a second check, a second worker or a redelivered message harmless.
    """
    now = now or timezone.now()
    routes = selectors.alert_routes(job=job, event=event)
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                event=event, job=job, process_id=process_id, schedule_id=schedule_id, due_at=due_at,
                summary=summary, created_at=now,
            )
            for route in routes:
                _delivery_join(alert=alert, route=route, now=now)
    except IntegrityError:
        if Alert.objects.filter(event=event, process_id=process_id, schedule_id=schedule_id, due_at=due_at).exists():
            return None
        raise
    return alert


def _delivery_join(*, alert: Alert, route: selectors.Route, now: datetime) -> Delivery:
    """Add the alert to its channel's open delivery for this job and event, opening one if needed.

    The open delivery is locked while the alert joins, so a sender claiming it at this moment
    waits and then sends it with this alert in.
    """
    key = f"channel:{route.channel.pk}" if route.channel else JOB_EMAILS_KEY
    open_deliveries = Delivery.objects.filter(
        channel_key=key, job_id=alert.job_id, event=alert.event, status=DeliveryStatus.OPEN
    )
    delivery = open_deliveries.select_for_update().first()
    if delivery is None:
        send_after = now + timedelta(seconds=settings.JTB_ALERT_GROUP_SECONDS)
        try:
            with transaction.atomic():
                delivery = Delivery.objects.create(
                    channel=route.channel, channel_key=key, job_id=alert.job_id, event=alert.event,
                    channel_name=route.channel.name if route.channel else "job notification e-mails",
                    kind=route.channel.kind if route.channel else ChannelKind.EMAIL,
                    created_at=now, send_after=send_after, next_attempt_at=send_after,
                )
        except IntegrityError:  # another worker opened it first: join theirs
            delivery = open_deliveries.select_for_update().get()
    delivery.alerts.add(alert)
    return delivery


def alerts_on_process_finished(*, process_id: int) -> list[Alert]:
    """Raise what a finished run calls for: failed, failures in a row, recovered, slow.

    Called once per finished run by the control plane (processes.services.process_finalize), and
    again by the periodic check for a recent failure with no alert. Never raises: a run's outcome
    must not depend on alerting; problems are logged.
    """
    try:
        return _process_finished_alerts(process_id)
    except Exception:
        logger.exception("Could not raise the alerts of process %s", process_id)
        return []


def _process_finished_alerts(process_id: int) -> list[Alert]:
    process = Process.objects.select_related("job").get(pk=process_id)
    job = process.job
    raised: list[Alert | None] = []
    if process.status == ProcessStatus.FAILED:
        raised.append(alert_raise(event=Event.FAILED, job=job, process_id=process.pk, summary=_failure_summary(process)))
        thresholds = selectors.job_thresholds(job_id=job.pk)
        streak = thresholds.failures_in_row
        outcomes = selectors.job_recent_outcomes(job_id=job.pk, up_to_process_id=process.pk, count=streak + 1)
        # Exactly the N-th failure in a row: one alert per streak, not one per failure after it.
        failed_n = len(outcomes) >= streak and all(status == ProcessStatus.FAILED for status in outcomes[:streak])
        if failed_n and (len(outcomes) == streak or outcomes[streak] != ProcessStatus.FAILED):
            raised.append(alert_raise(
                event=Event.FAILURE_STREAK, job=job, process_id=process.pk,
                summary=f"{job.name} has failed {streak} times in a row; the latest is process #{process.pk}.",
            ))
    elif process.status == ProcessStatus.SUCCEEDED:
        outcomes = selectors.job_recent_outcomes(job_id=job.pk, up_to_process_id=process.pk, count=2)
        if outcomes[1:] == [ProcessStatus.FAILED]:
            raised.append(alert_raise(
                event=Event.RECOVERED, job=job, process_id=process.pk,
                summary=f"{job.name} succeeded again with process #{process.pk} after a failed run.",
            ))
        duration = process.duration
        if duration is not None:
            thresholds = selectors.job_thresholds(job_id=job.pk)
            limit = selectors.job_slow_threshold_seconds(
                job_id=job.pk, thresholds=thresholds, before_process_id=process.pk
            )
            if limit is not None and duration.total_seconds() > limit:
                raised.append(alert_raise(
                    event=Event.SLOW, job=job, process_id=process.pk,
                    summary=f"Process #{process.pk} of {job.name} took {_format_seconds(duration.total_seconds())}, "
                    f"over its limit of {_format_seconds(limit)}.",
                ))
    return [alert for alert in raised if alert is not None]


def _failure_summary(process: Process) -> str:
    failed_task = process.tasks.filter(status=TaskStatus.FAILED).order_by("sequence").first()
    return "\n".join([
        f"Job: {process.job.name}",
        f"Process: #{process.pk} ({process.get_trigger_display().lower()} run)",
        f"Failed task: {failed_task.name if failed_task else '(none: the run failed outside a task)'}",
        f"Reason: {process.failure_reason or 'not recorded'}",
        f"Started: {process.started_at or 'never'}",
        f"Finished: {process.finished_at}",
    ])


# --- Periodic checks ----------------------------------------------------------------------------


@dataclass
class CheckResult:
    failed: list[int] = field(default_factory=list)
    slow: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    schedules_missed: list[int] = field(default_factory=list)


def alerts_check(*, now: datetime | None = None) -> CheckResult:
    """Look for failures whose finish hook was lost, runs still going past their slow limit, runs
    waiting too long to start, and beat schedules whose next tick is long overdue. Safe to run in
    several workers at once."""
    now = now or timezone.now()
    result = CheckResult()
    _check_unreported_failures(now, result)
    _check_slow_runs(now, result)
    _check_waiting_runs(now, result)
    _check_missed_schedules(now, result)
    return result


def _policies(job_ids) -> dict[int, JobAlertPolicy]:
    return {policy.job_id: policy for policy in JobAlertPolicy.objects.filter(job_id__in=list(job_ids))}


def _already_alerted(event: str, process_ids) -> set[int]:
    return set(Alert.objects.filter(event=event, process_id__in=list(process_ids)).values_list("process_id", flat=True))


def _check_unreported_failures(now: datetime, result: CheckResult) -> None:
    """A runner killed right after it recorded a failure never ran the finish hook: catch up.

    Only recent failures (JTB_ALERT_CATCH_UP_SECONDS), so that turning alerts on does not page
    for last year's failures.
    """
    since = now - timedelta(seconds=settings.JTB_ALERT_CATCH_UP_SECONDS)
    # process_status_id_idx: the newest failed runs, then the few that finished recently.
    recent = [
        pk for pk, finished_at in Process.objects.filter(status=ProcessStatus.FAILED)
        .order_by("-pk").values_list("pk", "finished_at")[:CHECK_LIMIT]
        if finished_at and finished_at >= since
    ]
    for pk in sorted(set(recent) - _already_alerted(Event.FAILED, recent)):
        if any(alert.event == Event.FAILED for alert in alerts_on_process_finished(process_id=pk)):
            result.failed.append(pk)


def _check_slow_runs(now: datetime, result: CheckResult) -> None:
    # process_status_id_idx: WHERE status = 'running'.
    running = list(
        Process.objects.filter(status=ProcessStatus.RUNNING, started_at__isnull=False)
        .order_by("-pk").values_list("pk", "job_id", "started_at")[:CHECK_LIMIT]
    )
    done = _already_alerted(Event.SLOW, [pk for pk, _, _ in running])
    by_job: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    for pk, job_id, started_at in running:
        if pk not in done:
            by_job[job_id].append((pk, started_at))
    policies = _policies(by_job)
    jobs = Job.objects.in_bulk(list(by_job))
    for job_id, runs in by_job.items():
        thresholds = selectors.thresholds_from(policies.get(job_id))
        limit = selectors.job_slow_threshold_seconds(job_id=job_id, thresholds=thresholds)
        if limit is None:
            continue
        for pk, started_at in runs:
            elapsed = (now - started_at).total_seconds()
            if elapsed > limit and alert_raise(
                event=Event.SLOW, job=jobs[job_id], process_id=pk, now=now,
                summary=f"Process #{pk} of {jobs[job_id].name} has been running {_format_seconds(elapsed)}, "
                f"over its limit of {_format_seconds(limit)}.",
            ):
                result.slow.append(pk)


def _check_waiting_runs(now: datetime, result: CheckResult) -> None:
    shortest = min(
        [settings.JTB_ALERT_WAITING_SECONDS,
         *JobAlertPolicy.objects.filter(waiting_after_seconds__isnull=False).values_list("waiting_after_seconds", flat=True)]
    )
    # process_status_id_idx: WHERE status IN ('queued', 'submitted'); only runs older than the
    # shortest limit are read.
    waiting = list(
        Process.objects.filter(
            status__in=[ProcessStatus.QUEUED, ProcessStatus.SUBMITTED], created_at__lte=now - timedelta(seconds=shortest)
        ).order_by("-pk").values_list("pk", "job_id", "created_at", "held", "executor_state")[:CHECK_LIMIT]
    )
    done = _already_alerted(Event.WAITING, [row[0] for row in waiting])
    waiting = [row for row in waiting if row[0] not in done]
    policies = _policies({row[1] for row in waiting})
    jobs = Job.objects.in_bulk(list({row[1] for row in waiting}))
    for pk, job_id, created_at, held, executor_state in waiting:
        limit = selectors.thresholds_from(policies.get(job_id)).waiting_after_seconds
        waited = (now - created_at).total_seconds()
        if waited <= limit:
            continue
        if held:
            why = "queued behind an active run of the job"
        elif executor_state:
            why = f"executor state {executor_state}"
        else:
            why = "not started by an executor yet"
        if alert_raise(
            event=Event.WAITING, job=jobs[job_id], process_id=pk, now=now,
            summary=f"Process #{pk} of {jobs[job_id].name} has waited {_format_seconds(waited)} to start ({why}); "
            f"the limit is {_format_seconds(limit)}.",
        ):
            result.waiting.append(pk)


def _check_missed_schedules(now: datetime, result: CheckResult) -> None:
    late = now - timedelta(seconds=settings.JTB_ALERT_SCHEDULE_LATE_SECONDS)
    # schedule_next_fire_idx: WHERE next_fire_at < ?.
    overdue = list(
        Schedule.objects.filter(next_fire_at__lt=late, enabled=True, driver=ScheduleDriver.BEAT)
        .select_related("job").order_by("next_fire_at")[:CHECK_LIMIT]
    )
    for schedule in overdue:
        if alert_raise(
            event=Event.SCHEDULE_MISSED, job=schedule.job, schedule_id=schedule.pk, due_at=schedule.next_fire_at,
            now=now,
            summary=f"Schedule \"{schedule.cron}\" ({schedule.timezone}) of {schedule.job.name} was due at "
            f"{schedule.next_fire_at.isoformat()} and has not fired for "
            f"{_format_seconds((now - schedule.next_fire_at).total_seconds())}: is beat or the worker down?",
        ):
            result.schedules_missed.append(schedule.pk)


# --- Sending ------------------------------------------------------------------------------------


def deliveries_due(*, now: datetime | None = None) -> list[tuple[int, int]]:
    """(delivery id, attempt number) of deliveries to send now.

    Open deliveries whose grouping window has closed, and deliveries whose retry should have
    run a while ago (the worker that held it died): each attempt is claimed, so listing one
    that is being sent right now is harmless.
    """
    now = now or timezone.now()
    lost = now - timedelta(seconds=settings.JTB_ALERT_LOST_RETRY_SECONDS)
    # alert_delivery_due_idx: WHERE status = ? AND next_attempt_at <= ?.
    opened = Delivery.objects.filter(status=DeliveryStatus.OPEN, next_attempt_at__lte=now)
    stuck = Delivery.objects.filter(status=DeliveryStatus.SENDING, next_attempt_at__lte=lost)
    rows = list(opened.values_list("pk", "attempts")[:CHECK_LIMIT]) + list(stuck.values_list("pk", "attempts")[:CHECK_LIMIT])
    return [(pk, attempts + 1) for pk, attempts in rows]


@dataclass(frozen=True)
class AttemptOutcome:
    claimed: bool
    result: SendResult | None = None
    # Seconds until the next attempt, when there is one.
    retry_in: float | None = None


def delivery_backoff_seconds(*, attempt: int) -> float:
    """Wait after failed attempt `attempt`: base, 2 × base, 4 × base... capped."""
    return float(min(settings.JTB_ALERT_RETRY_BASE_SECONDS * 2 ** (attempt - 1), settings.JTB_ALERT_RETRY_MAX_SECONDS))


def delivery_attempt(*, delivery_id: int, attempt: int, now: datetime | None = None) -> AttemptOutcome:
    """Make attempt number `attempt` at sending a delivery; only one caller per attempt gets to."""
    now = now or timezone.now()
    claim = Delivery.objects.filter(pk=delivery_id, attempts=attempt - 1)
    if attempt == 1:
        claim = claim.filter(status=DeliveryStatus.OPEN, send_after__lte=now)
    else:
        claim = claim.filter(status=DeliveryStatus.SENDING)
    # While it is being sent, the sweeper leaves it alone; if this worker dies, it tries again.
    if claim.update(status=DeliveryStatus.SENDING, attempts=attempt, next_attempt_at=now) != 1:
        return AttemptOutcome(claimed=False)

    delivery = Delivery.objects.select_related("job", "channel").get(pk=delivery_id)
    target, refusal = _target_for(delivery)
    if target is None:
        result = SendResult(ok=False, retryable=False, error=refusal)
    else:
        alerts = list(delivery.alerts.order_by("pk"))
        message = message_for(event=delivery.event, job_id=delivery.job_id, job_name=delivery.job.name, alerts=alerts)
        result = channel_send(target=target, message=message, delivery_id=delivery.pk)
    return _delivery_record(delivery=delivery, attempt=attempt, result=result)


def _target_for(delivery: Delivery) -> tuple[Target | None, str]:
    if delivery.channel_key == JOB_EMAILS_KEY:
        emails = tuple(delivery.job.notify_emails)
        return (Target(kind=ChannelKind.EMAIL, emails=emails), "") if emails else (None, "the job has no e-mails now")
    channel: Channel | None = delivery.channel
    if channel is None:
        return None, "the channel was deleted"
    if not channel.enabled:
        return None, "the channel is disabled"
    return Target(kind=channel.kind, url=channel.url, secret=channel.secret, emails=tuple(channel.emails)), ""


def _delivery_record(*, delivery: Delivery, attempt: int, result: SendResult) -> AttemptOutcome:
    finished = timezone.now()
    retry_in = None
    if result.ok:
        fields = {"status": DeliveryStatus.SENT, "sent_at": finished, "next_attempt_at": None, "last_error": ""}
    elif result.retryable and attempt < settings.JTB_ALERT_DELIVERY_ATTEMPTS:
        retry_in = delivery_backoff_seconds(attempt=attempt)
        fields = {"next_attempt_at": finished + timedelta(seconds=retry_in), "last_error": result.error[:10_000]}
    else:
        fields = {"status": DeliveryStatus.FAILED, "next_attempt_at": None, "last_error": result.error[:10_000]}
        logger.warning("Alert delivery %s to %s failed for good: %s", delivery.pk, delivery.channel_name, result.error)
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery, number=attempt, at=finished, ok=result.ok, status_code=result.status_code,
            error=result.error[:10_000], duration_ms=result.duration_ms,
        )
        Delivery.objects.filter(pk=delivery.pk, attempts=attempt).update(**fields)
    return AttemptOutcome(claimed=True, result=result, retry_in=retry_in)

"""Reads the alert rules need: a job's thresholds, its recent durations, its run before this one,
and which channels an event of a job goes to."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from alerts.models import Channel, JobAlertPolicy, JobAlertRule
from jobs.models import Job
from processes.models import Process, ProcessStatus

# "k × p95 of the last 30 successful runs".
P95_SAMPLE_RUNS = 30


@dataclass(frozen=True)
class Thresholds:
    slow_after_seconds: int | None
    slow_p95_factor: Decimal
    waiting_after_seconds: int
    failures_in_row: int


def job_thresholds(*, job_id: int, policy: JobAlertPolicy | None = None) -> Thresholds:
    if policy is None:
        policy = JobAlertPolicy.objects.filter(job_id=job_id).first()
    return thresholds_from(policy)


def thresholds_from(policy: JobAlertPolicy | None) -> Thresholds:
    def pick(value, default):
        return default if value is None else value

    return Thresholds(
        slow_after_seconds=policy.slow_after_seconds if policy else None,
        slow_p95_factor=Decimal(pick(policy and policy.slow_p95_factor, settings.JTB_ALERT_SLOW_P95_FACTOR)),
        waiting_after_seconds=pick(policy and policy.waiting_after_seconds, settings.JTB_ALERT_WAITING_SECONDS),
        failures_in_row=pick(policy and policy.failures_in_row, settings.JTB_ALERT_FAILURES_IN_ROW),
    )


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (the value 95 % of the sample is at or below)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def job_slow_threshold_seconds(*, job_id: int, thresholds: Thresholds, before_process_id: int | None = None) -> float | None:
    """Seconds after which a run of the job is slow, or None when the job has no basis for one.

    A fixed limit wins. Otherwise k × p95 of the last 30 successful runs, once there are at least
    JTB_ALERT_SLOW_MIN_RUNS of them, and never under JTB_ALERT_SLOW_MIN_SECONDS (a 2-second job
    taking 7 seconds is not worth a page).
    """
    if thresholds.slow_after_seconds is not None:
        return float(thresholds.slow_after_seconds)
    if thresholds.slow_p95_factor <= 0:
        return None
    # Uses process_job_status_idx (job_id, status) and reads at most 30 rows.
    runs = Process.objects.filter(
        job_id=job_id, status=ProcessStatus.SUCCEEDED, started_at__isnull=False, finished_at__isnull=False,
    )
    if before_process_id is not None:
        runs = runs.filter(pk__lt=before_process_id)
    rows = list(runs.order_by("-pk").values_list("started_at", "finished_at")[:P95_SAMPLE_RUNS])
    if len(rows) < settings.JTB_ALERT_SLOW_MIN_RUNS:
        return None
    durations = [(finished - started).total_seconds() for started, finished in rows]
    return max(float(thresholds.slow_p95_factor) * p95(durations), float(settings.JTB_ALERT_SLOW_MIN_SECONDS))


def job_recent_outcomes(*, job_id: int, up_to_process_id: int, count: int) -> list[str]:
    """Statuses of the job's last `count` succeeded-or-failed runs up to this one, newest first.

    Cancelled runs say nothing about whether the job works, so they are skipped.
    """
    return list(
        Process.objects.filter(
            job_id=job_id, pk__lte=up_to_process_id, status__in=[ProcessStatus.SUCCEEDED, ProcessStatus.FAILED],
        ).order_by("-pk").values_list("status", flat=True)[:count]
    )


@dataclass(frozen=True)
class Route:
    """Where one alert goes: a Channel, or the job's own notify_emails (channel None)."""

    channel: Channel | None
    emails: tuple[str, ...] = ()


def alert_routes(*, job: Job, event: str) -> list[Route]:
    """The channels an event of `job` goes to.

    The job's rules for this event; a job with no rules at all uses the default channels. A
    failure also goes to the job's notification e-mails, as it always has.
    """
    job_has_rules = JobAlertRule.objects.filter(job_id=job.pk).exists()
    if job_has_rules:
        channels = Channel.objects.filter(rules__job_id=job.pk, rules__event=event, enabled=True).distinct()
    else:
        channels = Channel.objects.filter(is_default=True, enabled=True)
    routes = [Route(channel=channel) for channel in channels.order_by("pk")]
    if event == "failed" and job.notify_emails:
        routes.append(Route(channel=None, emails=tuple(job.notify_emails)))
    return routes


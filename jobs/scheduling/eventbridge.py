"""The EventBridge driver: each `eventbridge` Schedule mirrors one EventBridge Scheduler schedule.

The remote schedule fires AWS Batch SubmitJob (the universal target) with the runner command
`python manage.py run_job --job <id> --schedule <id> --scheduled-for <aws.scheduler.scheduled-time>`,
which creates the Process itself (deduplicated on (schedule, scheduled_for)) and runs it, so
schedules keep firing while the web app and the workers are down.

`schedule_remote_sync` makes the remote schedule match the database (create, update, delete);
`schedules_remote_sync_all` (`manage.py schedules_sync`) also removes remote orphans. Both run
outside any transaction: AWS is called after the state is committed, then the answer is recorded.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.utils import timezone

from jobs.models import Schedule, ScheduleDriver
from jobs.scheduling.aws_cron import unix_to_aws_cron
from runner.aws import scheduler as remote

logger = logging.getLogger(__name__)

TARGET_ARN = "arn:aws:scheduler:::aws-sdk:batch:submitJob"
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
# AWS refuses a StartDate more than five minutes in the past.
START_DATE_MARGIN = timedelta(minutes=1)


def remote_name(schedule_id: int) -> str:
    return f"{settings.JTB_SCHEDULER_NAME_PREFIX}-{schedule_id}"


def schedule_id_from_name(name: str) -> int | None:
    match = re.fullmatch(re.escape(settings.JTB_SCHEDULER_NAME_PREFIX) + r"-(\d+)", name)
    return int(match[1]) if match else None


def run_job_command(*, job_id: int, schedule_id: int) -> list[str]:
    return [
        "python", "manage.py", "run_job", "--job", str(job_id), "--schedule", str(schedule_id),
        "--scheduled-for", SCHEDULED_TIME,
    ]


def _batch_job_queue(job) -> str:
    return job.queue or getattr(settings, "JTB_BATCH_JOB_QUEUE", "") or "jtb-default"


def _is_fargate(queue: str) -> bool:
    return queue in getattr(settings, "JTB_BATCH_FARGATE_QUEUES", [])


def _resource_requirements(job, *, fargate: bool) -> list[dict]:
    vcpus = Decimal(job.vcpus)
    # EC2 compute environments take whole vCPUs; Fargate takes 0.25, 0.5, 1, 2 ...
    vcpu_text = format(vcpus.normalize(), "f") if fargate else str(max(1, math.ceil(vcpus)))
    requirements = [{"Type": "VCPU", "Value": vcpu_text}, {"Type": "MEMORY", "Value": str(job.memory_mib)}]
    if job.gpus:
        requirements.append({"Type": "GPU", "Value": str(job.gpus)})
    return requirements


def batch_submit_input(schedule: Schedule) -> dict:
    """The SubmitJob request EventBridge Scheduler sends at each tick (the target's Input)."""
    job = schedule.job
    queue = _batch_job_queue(job)
    fargate = _is_fargate(queue)
    definition = getattr(settings, "JTB_BATCH_JOB_DEFINITION", "") or "jtb-runner"
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", getattr(settings, "JTB_BATCH_NAME_PREFIX", "jtb")) or "jtb"
    return {
        "JobName": f"{prefix}-job{job.pk}-schedule{schedule.pk}"[:128],
        "JobQueue": queue,
        "JobDefinition": f"{definition}-fargate" if fargate else definition,
        "ContainerOverrides": {
            "Command": run_job_command(job_id=job.pk, schedule_id=schedule.pk),
            "ResourceRequirements": _resource_requirements(job, fargate=fargate),
        },
        # The runner enforces the job's timeout itself; Batch stops a hung attempt a bit later.
        "Timeout": {"AttemptDurationSeconds": max(60, job.timeout_seconds + 300)},
        "RetryStrategy": {"Attempts": job.retry_attempts},
        "Tags": {"jtb:job-id": str(job.pk), "jtb:schedule-id": str(schedule.pk)},
        "PropagateTags": True,
    }


def remote_spec(schedule: Schedule, *, now: datetime | None = None) -> dict:
    """The exact CreateSchedule/UpdateSchedule parameters for a schedule."""
    now = now or timezone.now()
    role = settings.JTB_SCHEDULER_ROLE_ARN
    if not role:
        raise ImproperlyConfigured(
            "Set JTB_SCHEDULER_ROLE_ARN to the IAM role EventBridge Scheduler assumes to call batch:SubmitJob."
        )
    ended = bool(schedule.end_at and schedule.end_at <= now)
    enabled = schedule.enabled and schedule.job.enabled and not ended
    spec = {
        "Name": remote_name(schedule.pk),
        "GroupName": settings.JTB_SCHEDULER_GROUP,
        "Description": f"{schedule.job.name}: {schedule.description}".strip(": ")[:512],
        "ScheduleExpression": unix_to_aws_cron(schedule.cron),
        "ScheduleExpressionTimezone": schedule.timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED" if enabled else "DISABLED",
        "Target": {
            "Arn": TARGET_ARN,
            "RoleArn": role,
            "Input": json.dumps(batch_submit_input(schedule), sort_keys=True),
            "RetryPolicy": {
                "MaximumEventAgeInSeconds": settings.JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS,
                "MaximumRetryAttempts": 185,
            },
        },
    }
    if schedule.start_at and schedule.start_at > now + START_DATE_MARGIN:
        spec["StartDate"] = schedule.start_at
    if schedule.end_at and not ended:
        spec["EndDate"] = schedule.end_at
    return spec


def _comparable(spec: dict) -> dict:
    target = spec.get("Target") or {}

    def stamp(value):
        return int(value.timestamp()) if isinstance(value, datetime) else value

    return {
        "expression": spec.get("ScheduleExpression"),
        "timezone": spec.get("ScheduleExpressionTimezone") or "UTC",
        "state": spec.get("State"),
        "description": spec.get("Description") or "",
        "window": (spec.get("FlexibleTimeWindow") or {}).get("Mode"),
        "arn": target.get("Arn"),
        "role": target.get("RoleArn"),
        "input": json.loads(target.get("Input") or "null"),
        "retry": target.get("RetryPolicy"),
        "start": stamp(spec.get("StartDate")),
        "end": stamp(spec.get("EndDate")),
    }


def schedule_remote_sync(*, schedule_id: int) -> str:
    """Make the remote schedule match the database; returns what was done.

    created / updated / unchanged; deleted / absent (no eventbridge schedule here any more);
    failed (the error is recorded on the schedule, and `schedules_sync` retries it).
    """
    name, group = remote_name(schedule_id), settings.JTB_SCHEDULER_GROUP
    schedule = Schedule.objects.select_related("job").filter(pk=schedule_id).first()
    if schedule is None or schedule.driver != ScheduleDriver.EVENTBRIDGE:
        return "deleted" if remote.scheduler_schedule_delete(name=name, group=group) else "absent"
    try:
        spec = remote_spec(schedule)
        current = remote.scheduler_schedule_get(name=name, group=group)
        if current is None:
            remote.scheduler_schedule_create(spec=spec)
            outcome = "created"
        elif _comparable(current) != _comparable(spec):
            remote.scheduler_schedule_update(spec=spec)
            outcome = "updated"
        else:
            outcome = "unchanged"
    except (remote.SchedulerError, ImproperlyConfigured, ValidationError) as exc:
        message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        logger.warning("EventBridge sync of schedule %s failed: %s", schedule_id, message)
        Schedule.objects.filter(pk=schedule_id).update(remote_error=message[:10_000])
        return "failed"
    Schedule.objects.filter(pk=schedule_id).update(remote_synced_at=timezone.now(), remote_error="")
    return outcome


@dataclass
class SyncReport:
    outcomes: dict[str, list[int]] = field(default_factory=dict)

    def add(self, outcome: str, schedule_id: int) -> None:
        self.outcomes.setdefault(outcome, []).append(schedule_id)

    def count(self, outcome: str) -> int:
        return len(self.outcomes.get(outcome, []))


def schedules_remote_sync_all() -> SyncReport:
    """Repair drift both ways: every eventbridge schedule exists remotely as it should, and
    remote schedules with our prefix that match none here (orphans) are deleted."""
    report = SyncReport()
    group, prefix = settings.JTB_SCHEDULER_GROUP, settings.JTB_SCHEDULER_NAME_PREFIX + "-"
    wanted = set(Schedule.objects.filter(driver=ScheduleDriver.EVENTBRIDGE).values_list("pk", flat=True))
    for summary in remote.scheduler_schedules_list(group=group, prefix=prefix):
        schedule_id = schedule_id_from_name(summary["Name"])
        if schedule_id is not None and schedule_id not in wanted:
            remote.scheduler_schedule_delete(name=summary["Name"], group=group)
            report.add("deleted", schedule_id)
    for schedule_id in sorted(wanted):
        report.add(schedule_remote_sync(schedule_id=schedule_id), schedule_id)
    return report


def schedules_remote_sync_queue(*, schedule_ids) -> None:
    """Sync these schedules in a worker once the current transaction commits."""
    ids = sorted(set(schedule_ids))
    if not ids:
        return
    from jobs.tasks import sync_schedules

    transaction.on_commit(lambda: sync_schedules.delay(ids))

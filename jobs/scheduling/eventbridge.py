"""The EventBridge driver: each `eventbridge` Schedule mirrors one EventBridge Scheduler schedule.

The remote schedule fires AWS Batch SubmitJob (the universal target) with the runner command
`python manage.py run_job --job <id> --schedule <id> --scheduled-for <aws.scheduler.scheduled-time>`,
which creates the Process itself (deduplicated on (schedule, scheduled_for)) and runs it, so
schedules keep firing while the web app and the workers are down.

`schedule_remote_sync` makes the remote schedule match the database (create, update, delete);
`schedules_remote_sync_all` (`manage.py schedules_sync`) also removes remote orphans. Both run
outside any transaction (in a worker: jobs.services queues them after commit): AWS is called after
the state is committed, then the answer is recorded.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils import timezone

from jobs.models import Schedule, ScheduleDriver
from jobs.scheduling.aws_cron import unix_to_aws_cron
from processes.services import job_snapshot
from runner.aws import scheduler as remote
from runner.aws.batch_request import pascal_case, submit_job_request

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


def batch_submit_input(schedule: Schedule) -> dict:
    """The SubmitJob request EventBridge Scheduler sends at each tick (the target's Input): the
    executor's own request (runner.aws.batch_request) for the job's current settings, in PascalCase,
    with the command that starts the tick's run."""
    job = schedule.job
    request = submit_job_request(
        snapshot=job_snapshot(job), job_id=job.pk, tags=job.tags, name_suffix=f"schedule{schedule.pk}",
        system_tags={"jtb:job-id": str(job.pk), "jtb:schedule-id": str(schedule.pk)},
        command=run_job_command(job_id=job.pk, schedule_id=schedule.pk),
    )
    return pascal_case(request)


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

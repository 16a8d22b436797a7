"""`manage.py run_job --job <id> --schedule <id> --scheduled-for <time>`: one scheduled run,
started from outside (EventBridge Scheduler submits it to AWS Batch as the container's command).

It creates the Process itself through the same start service as every other run, deduplicated on
(schedule, scheduled_for): an at-least-once delivery that arrives twice finds the first run and
stops. Then it runs the process in this container.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from jobs.models import Schedule
from processes.executors import ExecutorName
from processes.models import ProcessStatus, Trigger
from processes.services import ProcessRefused, process_mark_submitted, process_start
from runner.runtime.runner import run


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"--scheduled-for {text!r} is not an ISO 8601 time such as 2025-03-09T07:00:00Z.") from None
    if value.tzinfo is None:
        raise CommandError(f"--scheduled-for {text!r} needs a time zone, e.g. 2025-03-09T07:00:00Z.")
    return value.astimezone(UTC)


class Command(BaseCommand):
    help = "Start (once) and run the process of one schedule tick."

    def add_arguments(self, parser):
        parser.add_argument("--job", type=int, required=True)
        parser.add_argument("--schedule", type=int, required=True)
        parser.add_argument("--scheduled-for", required=True, help="The tick, e.g. 2025-03-09T07:00:00Z.")

    def handle(self, *args, job: int, schedule: int, scheduled_for: str, **options):
        tick = _instant(scheduled_for)
        found = Schedule.objects.select_related("job").filter(pk=schedule, job_id=job).first()
        if found is None:
            # A remote schedule whose schedule was deleted here: `schedules_sync` removes it.
            self.stdout.write(f"Schedule {schedule} of job {job} does not exist; nothing to run.")
            return
        if not found.enabled:
            self.stdout.write(f"Schedule {schedule} is disabled; nothing to run.")
            return
        try:
            with transaction.atomic():
                process = process_start(
                    job=found.job, trigger=Trigger.SCHEDULE, schedule=found, scheduled_for=tick, enqueue=False
                )
                # This container is the executor: claim the run so no worker hands it out again.
                process_mark_submitted(
                    process_id=process.pk, executor=ExecutorName.AWS_BATCH, external_id=os.environ.get("AWS_BATCH_JOB_ID", "")
                )
            Schedule.objects.filter(pk=schedule).exclude(last_fired_at__gte=tick).update(last_fired_at=tick)
        except ProcessRefused as exc:
            self.stdout.write(f"Tick {tick.isoformat()} of schedule {schedule} started no run: {exc.message}")
            return
        process.refresh_from_db()
        if process.held:
            self.stdout.write(f"Process {process.pk} waits for the job's active run; it starts when that ends.")
            return
        if process.status not in (ProcessStatus.QUEUED, ProcessStatus.SUBMITTED):
            self.stdout.write(f"Process {process.pk} for this tick is already {process.status}.")
            return
        code = run(process.pk)
        if code:
            raise SystemExit(code)

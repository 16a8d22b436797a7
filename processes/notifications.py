"""E-mail to a job's notification addresses when one of its runs fails."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from processes.models import Process, TaskStatus

logger = logging.getLogger(__name__)


def process_admin_url(process: Process) -> str:
    return settings.JTB_BASE_URL + reverse("admin:processes_process_change", args=[process.pk])


def process_failure_message(process: Process) -> tuple[str, str]:
    failed_task = process.tasks.filter(status=TaskStatus.FAILED).order_by("sequence").first()
    subject = f"[JobTarget Batch] {process.job.name} failed (process #{process.pk})"
    lines = [
        f"Job: {process.job.name}",
        f"Process: #{process.pk} ({process.get_trigger_display().lower()} run)",
        f"Failed task: {failed_task.name if failed_task else '(none: the run failed outside a task)'}",
        f"Reason: {process.failure_reason or 'not recorded'}",
        f"Started: {process.started_at or 'never'}",
        f"Finished: {process.finished_at}",
        "",
        f"Details and logs: {process_admin_url(process)}",
    ]
    return subject, "\n".join(lines)


def process_failure_notify(*, process_id: int) -> int:
    """Send the failure e-mail; returns how many messages went out. Mail errors never fail a run."""
    process = Process.objects.select_related("job").get(pk=process_id)
    recipients = list(process.job.notify_emails)
    if not recipients:
        return 0
    subject, body = process_failure_message(process)
    try:
        return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:
        logger.exception("Could not send the failure e-mail for process %s", process_id)
        return 0

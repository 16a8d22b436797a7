"""Celery tasks for alerts. Thin: each calls a service; each is safe to run twice."""

from __future__ import annotations

from celery import shared_task

from alerts import services


@shared_task(name="alerts.tasks.check_alerts")
def check_alerts() -> dict:
    """Beat: failures whose alert was lost, slow and waiting runs, schedules that stopped firing."""
    result = services.alerts_check()
    return {"failed": result.failed, "slow": result.slow, "waiting": result.waiting, "schedules_missed": result.schedules_missed}


@shared_task(name="alerts.tasks.send_due_deliveries")
def send_due_deliveries() -> int:
    """Beat: hand every delivery whose grouping window closed (or whose retry was lost) to `deliver`."""
    due = services.deliveries_due()
    for delivery_id, attempt in due:
        deliver.delay(delivery_id=delivery_id, attempt=attempt)
    return len(due)


@shared_task(bind=True, name="alerts.tasks.deliver", max_retries=None)
def deliver(self, *, delivery_id: int, attempt: int = 1) -> bool:
    """Send one delivery; a failed attempt comes back through Celery's retry after a growing wait."""
    outcome = services.delivery_attempt(delivery_id=delivery_id, attempt=attempt)
    if outcome.retry_in is not None:
        raise self.retry(kwargs={"delivery_id": delivery_id, "attempt": attempt + 1}, countdown=outcome.retry_in)
    return bool(outcome.result and outcome.result.ok)

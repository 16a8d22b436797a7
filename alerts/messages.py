"""What an alert message says: one title and text for e-mail, a Slack-shaped payload, a JSON payload
for webhooks. A message covers one or more alerts of one job and event (a grouped storm)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.urls import reverse

from alerts.models import Alert, Event

# A grouped message lists this many alerts and counts the rest.
LISTED_ALERTS = 20

_VERBS = {
    Event.FAILED: "failed",
    Event.RECOVERED: "recovered",
    Event.SLOW: "is running slow",
    Event.WAITING: "is waiting too long to start",
    Event.SCHEDULE_MISSED: "missed a scheduled run",
    Event.FAILURE_STREAK: "keeps failing",
}


@dataclass(frozen=True)
class AlertItem:
    alert_id: int
    summary: str
    created_at: datetime
    process_id: int | None = None
    schedule_id: int | None = None
    due_at: datetime | None = None

    @property
    def url(self) -> str:
        if self.process_id is not None:
            return settings.JTB_BASE_URL + reverse("admin:processes_process_change", args=[self.process_id])
        if self.schedule_id is not None:
            return settings.JTB_BASE_URL + reverse("admin:jobs_schedule_change", args=[self.schedule_id])
        return settings.JTB_BASE_URL + reverse("admin:alerts_alert_change", args=[self.alert_id])


@dataclass(frozen=True)
class Message:
    event: str
    job_id: int
    job_name: str
    items: list[AlertItem] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def title(self) -> str:
        verb = _VERBS.get(self.event, self.event)
        if self.count == 1:
            item = self.items[0]
            what = f" (process #{item.process_id})" if item.process_id is not None else ""
            return f"[JobTarget Batch] {self.job_name} {verb}{what}"
        return f"[JobTarget Batch] {self.job_name} {verb}: {self.count} alerts"

    @property
    def text(self) -> str:
        lines = [item.summary + "\n" + f"Details: {item.url}" for item in self.items[:LISTED_ALERTS]]
        if self.count > LISTED_ALERTS:
            lines.append(f"... and {self.count - LISTED_ALERTS} more.")
        return "\n\n".join(lines)

    def slack_payload(self) -> dict:
        # Slack's mrkdwn: <url|label> is a link; &, < and > in our text must be escaped.
        def esc(value: str) -> str:
            return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

        title = esc(self.title.removeprefix("[JobTarget Batch] "))
        lines = [f"*{title}*"]
        for item in self.items[:LISTED_ALERTS]:
            label = f"Process #{item.process_id}" if item.process_id is not None else "Details"
            first_line = esc(item.summary.splitlines()[0]) if item.summary else ""
            lines.append(f"• {first_line} <{item.url}|{label}>")
        if self.count > LISTED_ALERTS:
            lines.append(f"… and {self.count - LISTED_ALERTS} more.")
        return {"text": "\n".join(lines)}

    def webhook_payload(self, *, delivery_id: int) -> dict:
        return {
            "delivery_id": delivery_id,
            "event": self.event,
            "job": {"id": self.job_id, "name": self.job_name},
            "count": self.count,
            "title": self.title,
            "text": self.text,
            "alerts": [
                {
                    "id": item.alert_id,
                    "summary": item.summary,
                    "raised_at": item.created_at.isoformat(),
                    "process_id": item.process_id,
                    "schedule_id": item.schedule_id,
                    "due_at": item.due_at.isoformat() if item.due_at else None,
                    "url": item.url,
                }
                for item in self.items
            ],
        }


def message_for(*, event: str, job_id: int, job_name: str, alerts: list[Alert]) -> Message:
    items = [
        AlertItem(
            alert_id=alert.pk, summary=alert.summary, created_at=alert.created_at, process_id=alert.process_id,
            schedule_id=alert.schedule_id, due_at=alert.due_at,
        )
        for alert in alerts
    ]
    return Message(event=event, job_id=job_id, job_name=job_name, items=items)

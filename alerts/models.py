"""Who hears about what: channels (e-mail, webhook, Slack), each job's rules and thresholds, the
alerts raised (one per event and run, or per event and schedule tick) and their deliveries.

A Delivery is one message to one channel. Alerts of the same job and event that arrive while a
delivery is still open (its grouping window has not closed) join it, so twenty failures in a
minute make one message, not twenty.
"""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs.models import Job, Schedule
from jobs.validation import validate_notify_emails
from processes.models import Process


class Event(models.TextChoices):
    FAILED = "failed", "Run failed"
    RECOVERED = "recovered", "Run succeeded after a failure"
    SLOW = "slow", "Run slower than usual"
    WAITING = "waiting", "Run waiting too long to start"
    SCHEDULE_MISSED = "schedule_missed", "Schedule did not fire"
    FAILURE_STREAK = "failure_streak", "Job failed several times in a row"


class ChannelKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook (JSON POST, signed)"
    SLACK = "slack", "Slack incoming webhook"


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


class Channel(models.Model):
    name = models.CharField(
        "name", max_length=200, unique=True, help_text="A name people recognize, e.g. \"Data team Slack\".",
    )
    kind = models.CharField("kind", max_length=10, choices=ChannelKind.choices, default=ChannelKind.EMAIL)
    url = models.URLField(
        "URL", max_length=2000, blank=True,
        help_text="Webhook and Slack only: where messages are POSTed, e.g. https://hooks.slack.com/services/T0/B0/XYZ.",
    )
    emails = models.JSONField(
        "e-mail addresses", default=list, blank=True,
        help_text="E-mail only: who gets the messages, one address per line, e.g. oncall@example.com.",
    )
    secret = models.CharField(
        "signing secret", max_length=200, blank=True, default=_new_secret,
        help_text="Webhook only: each POST carries X-JTB-Signature: sha256=<HMAC-SHA256 of the body with this "
        "secret>, so the receiver can check it came from here. Generated for you; e.g. s3cr3t-value.",
    )
    is_default = models.BooleanField(
        "default channel", default=False,
        help_text="Jobs that chose no channels send every alert here.",
    )
    enabled = models.BooleanField("enabled", default=True, help_text="Disabled channels receive nothing.")
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(name="alert_channel_kind_valid", condition=Q(kind__in=ChannelKind.values)),
            models.CheckConstraint(
                name="alert_channel_web_needs_url", condition=Q(kind=ChannelKind.EMAIL) | ~Q(url=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.kind == ChannelKind.EMAIL:
            try:
                self.emails = validate_notify_emails(self.emails)
            except ValidationError as exc:
                errors["emails"] = exc.messages
            if not errors and not self.emails:
                errors["emails"] = ["An e-mail channel needs at least one address."]
        elif not self.url:
            errors["url"] = ["A webhook or Slack channel needs the URL to POST to."]
        elif not self.url.startswith(("https://", "http://")):
            errors["url"] = ["The URL must start with https:// (or http:// on a private network)."]
        if errors:
            raise ValidationError(errors)


class JobAlertRule(models.Model):
    """A job sends one event to one channel. A job with no rules uses the default channels."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="alert_rules", verbose_name="job")
    event = models.CharField("event", max_length=20, choices=Event.choices)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="rules", verbose_name="channel")

    class Meta:
        verbose_name = "alert rule"
        constraints = [
            models.CheckConstraint(name="alert_rule_event_valid", condition=Q(event__in=Event.values)),
            # Its index also serves routing: WHERE job_id = ? AND event = ?.
            models.UniqueConstraint(fields=["job", "event", "channel"], name="alert_rule_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} → {self.channel.name}"


class JobAlertPolicy(models.Model):
    """Per-job thresholds; an empty field uses the system default from settings."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="alert_policy", verbose_name="job")
    slow_after_seconds = models.PositiveIntegerField(
        "slow after (seconds)", null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="A run taking longer than this is slow, e.g. 1800. Empty: use the factor below.",
    )
    slow_p95_factor = models.DecimalField(
        "slow factor × p95", max_digits=5, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(1)],
        help_text="A run is slow past this many times the p95 of the job's last 30 successful runs, e.g. 3. "
        "Empty: the system default; 0 is not allowed (leave the fixed limit empty and set a large factor instead).",
    )
    waiting_after_seconds = models.PositiveIntegerField(
        "waiting alert after (seconds)", null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Alert when a run is queued, held or waiting for capacity longer than this, e.g. 3600.",
    )
    failures_in_row = models.PositiveSmallIntegerField(
        "failures in a row", null=True, blank=True, validators=[MinValueValidator(2)],
        help_text="Alert once when the job fails this many times in a row, e.g. 3.",
    )

    class Meta:
        verbose_name = "alert thresholds"
        verbose_name_plural = "alert thresholds"

    def __str__(self) -> str:
        return f"Alert thresholds of {self.job.name}"


class Alert(models.Model):
    """An event that happened, recorded once: the database refuses the same event twice."""

    event = models.CharField("event", max_length=20, choices=Event.choices)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="alerts", verbose_name="job")
    process = models.ForeignKey(
        Process, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts", verbose_name="process",
    )
    schedule = models.ForeignKey(
        Schedule, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts", verbose_name="schedule",
    )
    # The tick that did not fire (schedule alerts only).
    due_at = models.DateTimeField("due at", null=True, blank=True)
    summary = models.TextField("summary")
    created_at = models.DateTimeField("raised", default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(name="alert_event_valid", condition=Q(event__in=Event.values)),
            models.UniqueConstraint(
                fields=["event", "process"], name="alert_once_per_process", condition=Q(process__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["event", "schedule", "due_at"], name="alert_once_per_schedule_tick",
                condition=Q(schedule__isnull=False),
            ),
        ]
        indexes = [
            # The admin list, filtered by event, newest first.
            models.Index(fields=["event", "-id"], name="alert_event_id_idx"),
        ]

    def __str__(self) -> str:
        return self.summary


class DeliveryStatus(models.TextChoices):
    OPEN = "open", "Collecting alerts"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


# The grouping key of a delivery to a job's own `notify_emails` (it has no Channel row).
JOB_EMAILS_KEY = "job-emails"


class Delivery(models.Model):
    """One message to one channel, for one or more alerts of one job and event."""

    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries", verbose_name="channel",
    )
    # "channel:<id>" or JOB_EMAILS_KEY: part of the grouping key, kept when the channel is deleted.
    channel_key = models.CharField("channel key", max_length=40)
    channel_name = models.CharField("channel name", max_length=200)
    kind = models.CharField("kind", max_length=10, choices=ChannelKind.choices)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="alert_deliveries", verbose_name="job")
    event = models.CharField("event", max_length=20, choices=Event.choices)
    alerts = models.ManyToManyField(Alert, related_name="deliveries", verbose_name="alerts")
    status = models.CharField("status", max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.OPEN)
    created_at = models.DateTimeField("opened", default=timezone.now)
    # The grouping window closes here; alerts raised before it join this message.
    send_after = models.DateTimeField("send after")
    attempts = models.PositiveSmallIntegerField("attempts", default=0)
    next_attempt_at = models.DateTimeField("next attempt", null=True, blank=True)
    sent_at = models.DateTimeField("sent", null=True, blank=True)
    last_error = models.TextField("last error", blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(name="alert_delivery_status_valid", condition=Q(status__in=DeliveryStatus.values)),
            # One open group per channel, job and event: two workers raising alerts at once join
            # the same message instead of opening two.
            models.UniqueConstraint(
                fields=["channel_key", "job", "event"], name="alert_delivery_one_open_group",
                condition=Q(status=DeliveryStatus.OPEN),
            ),
        ]
        indexes = [
            # The sweeper: WHERE status IN ('open', 'sending') AND next_attempt_at <= ?.
            models.Index(fields=["status", "next_attempt_at"], name="alert_delivery_due_idx"),
            # /metrics: WHERE status = 'failed' GROUP BY channel_name.
            models.Index(fields=["status", "channel_name"], name="alert_delivery_status_chan_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_event_display()} → {self.channel_name}"


class DeliveryAttempt(models.Model):
    """One try at sending a delivery: the log the admin shows."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log", verbose_name="delivery")
    number = models.PositiveSmallIntegerField("attempt")
    at = models.DateTimeField("at", default=timezone.now)
    ok = models.BooleanField("delivered")
    status_code = models.PositiveSmallIntegerField("HTTP status", null=True, blank=True)
    error = models.TextField("error", blank=True)
    duration_ms = models.PositiveIntegerField("took (ms)", default=0)

    class Meta:
        ordering = ["delivery_id", "number"]
        constraints = [
            # A redelivered task message cannot log (or send) the same attempt twice.
            models.UniqueConstraint(fields=["delivery", "number"], name="alert_attempt_once"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number}: {'ok' if self.ok else self.error[:80]}"

"""What to run: a Job (template, modules, resources) and the Schedules that start it."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from jobs import validation


class ConcurrencyPolicy(models.TextChoices):
    ALLOW = "allow", "Allow: start every run at once"
    SKIP = "skip", "Skip: refuse a run while another is active"
    QUEUE = "queue", "Queue: start a run when the active one ends"


def _default_vcpus() -> Decimal:
    return settings.JTB_DEFAULT_VCPUS


def _default_memory() -> int:
    return settings.JTB_DEFAULT_MEMORY_MIB


def _default_timeout() -> int:
    return settings.JTB_DEFAULT_TIMEOUT_SECONDS


class Job(models.Model):
    name = models.CharField(
        "name", max_length=200, unique=True,
        help_text="A unique name people will recognize, e.g. \"Nightly sales export\".",
    )
    description = models.TextField(
        "description", blank=True,
        help_text="What the job does and who to ask about it, e.g. \"Loads yesterday's orders into the warehouse.\"",
    )
    enabled = models.BooleanField(
        "enabled", default=True, help_text="Disabled jobs cannot be run, by hand or by a schedule.",
    )
    template = models.CharField(
        "template", max_length=1024,
        help_text="The Python script to run: a path under the template folder, e.g. examples/hello.py, "
        "or an S3 object, e.g. s3://my-bucket/jobs/report.py?versionId=3HL4kqtJ.",
    )
    python_modules = models.JSONField(
        "Python modules", default=list, blank=True,
        help_text="Packages the script needs, one per line, e.g. requests>=2.31 or pandas==2.2.2.",
    )
    vcpus = models.DecimalField(
        "vCPUs", max_digits=6, decimal_places=2, default=_default_vcpus,
        validators=[MinValueValidator(Decimal("0.25"))],
        help_text="Processor cores for each run, e.g. 0.25, 1 or 4.",
    )
    memory_mib = models.PositiveIntegerField(
        "memory (MiB)", default=_default_memory,
        validators=[MinValueValidator(6), MaxValueValidator(4_000_000)],
        help_text="Memory limit for each run in MiB, e.g. 2048 for 2 GiB. A run that needs more fails with \"out of memory\".",
    )
    gpus = models.PositiveSmallIntegerField(
        "GPUs", default=0, validators=[MaxValueValidator(16)],
        help_text="GPUs for each run on AWS Batch, e.g. 0 or 1. Ignored by the local executor.",
    )
    timeout_seconds = models.PositiveIntegerField(
        "timeout (seconds)", default=_default_timeout,
        validators=[MinValueValidator(1), MaxValueValidator(14 * 24 * 3600)],
        help_text="A run still going after this many seconds is stopped and fails, e.g. 3600 for one hour.",
    )
    retry_attempts = models.PositiveSmallIntegerField(
        "attempts", default=1, validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="How many times AWS Batch may try a run in all when its host is reclaimed, e.g. 3 (1 = no retry).",
    )
    parameters = models.JSONField(
        "default parameters", default=dict, blank=True,
        help_text="Parameters every run gets unless the run overrides them, as JSON, e.g. {\"since\": \"yesterday\"}.",
    )
    environment = models.JSONField(
        "environment", default=dict, blank=True,
        help_text="Non-secret environment variables for the script, as JSON, e.g. {\"REGION\": \"us-east-1\"}.",
    )
    concurrency_policy = models.CharField(
        "when a run is already active", max_length=10,
        choices=ConcurrencyPolicy.choices, default=ConcurrencyPolicy.ALLOW,
        help_text="What happens when the job is started while an earlier run is still active.",
    )
    queue = models.CharField(
        "executor queue", max_length=255, blank=True,
        help_text="The AWS Batch job queue for this job, e.g. spot-large. Empty uses the default queue.",
    )
    tags = models.JSONField(
        "tags", default=dict, blank=True,
        help_text="Labels for cost reports and searching, as JSON, e.g. {\"team\": \"finance\"}.",
    )
    notify_emails = models.JSONField(
        "notification e-mails", default=list, blank=True,
        help_text="Who gets an e-mail when a run fails, one address per line, e.g. data-team@example.com.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("run_job", "Can run, rerun and cancel runs of jobs")]
        constraints = [
            models.CheckConstraint(name="job_vcpus_positive", condition=Q(vcpus__gt=0)),
            models.CheckConstraint(name="job_memory_positive", condition=Q(memory_mib__gt=0)),
            models.CheckConstraint(name="job_timeout_positive", condition=Q(timeout_seconds__gt=0)),
            models.CheckConstraint(
                name="job_retry_attempts_range", condition=Q(retry_attempts__gte=1, retry_attempts__lte=10)
            ),
            models.CheckConstraint(
                name="job_concurrency_policy_valid",
                condition=Q(concurrency_policy__in=ConcurrencyPolicy.values),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list] = {}
        checks = {
            "template": validation.validate_template,
            "python_modules": validation.validate_python_modules,
            "parameters": lambda v: validation.validate_json_object(v, what="Default parameters"),
            "environment": validation.validate_environment,
            "tags": validation.validate_tags,
            "notify_emails": validation.validate_notify_emails,
        }
        for field, check in checks.items():
            try:
                setattr(self, field, check(getattr(self, field)))
            except ValidationError as exc:
                errors[field] = exc.messages
        if self.name is not None:
            self.name = self.name.strip()
        if errors:
            raise ValidationError(errors)


class Schedule(models.Model):
    """A cron schedule that starts runs of a job (the drivers that fire it are in jobs.scheduling)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="schedules", verbose_name="job")
    cron = models.CharField(
        "cron", max_length=120,
        help_text="When to run, in five-field cron syntax: minute hour day-of-month month day-of-week, "
        "e.g. \"30 1 * * MON-FRI\" for 01:30 on weekdays.",
    )
    timezone = models.CharField(
        "time zone", max_length=64, default="UTC",
        help_text="The IANA time zone the cron is read in, e.g. America/New_York.",
    )
    enabled = models.BooleanField("enabled", default=True, help_text="Disabled schedules start no runs.")
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        ordering = ["job_id", "id"]

    def __str__(self) -> str:
        return f"{self.cron} ({self.timezone})"

    def clean(self) -> None:
        from jobs import cron

        errors = {}
        try:
            self.cron = cron.validate_cron(self.cron)
        except ValidationError as exc:
            errors["cron"] = exc.messages
        try:
            self.timezone = cron.validate_timezone(self.timezone)
        except ValidationError as exc:
            errors["timezone"] = exc.messages
        if errors:
            raise ValidationError(errors)

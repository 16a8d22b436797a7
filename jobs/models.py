"""What to run: a Job (template, modules, resources) and the Schedules that start it."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from jobs import aws_limits, validation
from jobtarget_batch.queries import CappedCount


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
    # Every save through jobs.services (admin, API, bootstrap) keeps a version: who, when, what.
    history = HistoricalRecords(verbose_name="job version", cascade_delete_history=False)

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
        # The input gate first: a NUL, a lone surrogate or deep nesting anywhere is refused whole.
        errors: dict[str, list] = validation.validate_model_inputs(self)
        if errors:
            raise ValidationError(errors)
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
        for field, message in self.aws_resource_errors().items():
            errors.setdefault(field, []).append(message)
        if errors:
            raise ValidationError(errors)

    def aws_resource_errors(self, *, runs_on_aws: bool = False) -> dict[str, str]:
        """{field: message} for vCPUs, memory and GPUs AWS Batch would refuse (or round) on this
        job's queue. Fargate rules apply to a Fargate queue (JTB_BATCH_FARGATE_QUEUES, by name or
        ARN); whole EC2 vCPUs only where runs go to AWS (the aws_batch executor or an EventBridge
        schedule), since the local executor takes fractions as they are."""
        queue = self.queue or settings.JTB_BATCH_JOB_QUEUE
        if aws_limits.queue_is_fargate(queue, settings.JTB_BATCH_FARGATE_QUEUES):
            platform = aws_limits.FARGATE_PLATFORM
        elif runs_on_aws or settings.JTB_EXECUTOR == "aws_batch" or (
            self.pk and self.schedules.filter(driver=ScheduleDriver.EVENTBRIDGE).exists()
        ):
            platform = aws_limits.EC2_PLATFORM
        else:
            return {}
        return aws_limits.batch_resource_errors(
            vcpus=self.vcpus, memory_mib=self.memory_mib, gpus=self.gpus, platform=platform,
        )


class ScheduleDriver(models.TextChoices):
    BEAT = "beat", "Celery beat (this system starts the runs)"
    EVENTBRIDGE = "eventbridge", "EventBridge Scheduler (AWS starts the runs on AWS Batch)"


SCHEDULE_EARLIEST_YEAR = 1970
SCHEDULE_LATEST_YEAR = 9000


def _default_schedule_timezone() -> str:
    return settings.JTB_SCHEDULE_DEFAULT_TIMEZONE


# Runs counted per schedule on a list: a schedule firing every minute starts half a million runs a
# year, and counting each one of them on every page view would group the whole history.
RUN_COUNT_CAP = 500


class ScheduleQuerySet(models.QuerySet):
    def with_run_counts(self) -> ScheduleQuerySet:
        """Annotate `runs_started_count`, capped at RUN_COUNT_CAP + 1 (admin and API lists: one query for
        the page). Each row reads at most that many entries of the partial unique index on
        (schedule_id, scheduled_for); no full-table group."""
        runs = self.model._meta.get_field("processes").related_model.objects.filter(
            schedule_id=models.OuterRef("pk"), scheduled_for__isnull=False
        )
        return self.annotate(runs_started_count=CappedCount(runs, cap=RUN_COUNT_CAP))


class Schedule(models.Model):
    """A cron schedule that starts runs of a job (the drivers that fire it are in jobs.scheduling).

    For the admin and the API: `cron_description`, `next_fire_times()` (next five, in the
    schedule's zone), `last_fired_at`, `runs_started` (its Processes, newest tick first) and
    `Schedule.objects.with_run_counts()`.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="schedules", verbose_name="job")
    cron = models.CharField(
        "cron", max_length=120,
        help_text="When to run, in five-field cron syntax: minute hour day-of-month month day-of-week, "
        "e.g. \"30 1 * * MON-FRI\" for 01:30 on weekdays.",
    )
    timezone = models.CharField(
        "time zone", max_length=64, default=_default_schedule_timezone,
        help_text="The IANA time zone the cron is read in, e.g. America/New_York.",
    )
    enabled = models.BooleanField("enabled", default=True, help_text="Disabled schedules start no runs.")
    driver = models.CharField(
        "driver", max_length=12, choices=ScheduleDriver.choices, default=ScheduleDriver.BEAT,
        help_text="Who fires the schedule: this system's beat, or EventBridge Scheduler, which keeps "
        "firing on AWS Batch while this system is down.",
    )
    start_at = models.DateTimeField(
        "starts", null=True, blank=True,
        help_text="No runs before this moment, e.g. 2025-01-01 00:00. Empty: starts at once.",
    )
    end_at = models.DateTimeField(
        "ends", null=True, blank=True,
        help_text="No runs after this moment, e.g. 2025-12-31 23:59. Empty: never ends.",
    )
    description = models.TextField(
        "description", blank=True,
        help_text="Why this schedule exists, e.g. \"Refresh the dashboard before the 9am meeting.\"",
    )
    # Set by the system. The beat driver's next due tick (UTC); NULL when the beat driver has
    # nothing to fire (disabled, ended, or driven by EventBridge).
    next_fire_at = models.DateTimeField("next fire", null=True, blank=True, editable=False)
    last_fired_at = models.DateTimeField("last fired", null=True, blank=True, editable=False)
    remote_synced_at = models.DateTimeField("synced to EventBridge", null=True, blank=True, editable=False)
    remote_error = models.TextField("EventBridge sync error", blank=True, editable=False)
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)
    # What people change; the fields the tick and the EventBridge sync set are not kept.
    history = HistoricalRecords(
        verbose_name="schedule version",
        excluded_fields=["next_fire_at", "last_fired_at", "remote_synced_at", "remote_error"],
    )

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["job_id", "id"]
        constraints = [
            models.CheckConstraint(name="schedule_driver_valid", condition=Q(driver__in=ScheduleDriver.values)),
            models.CheckConstraint(
                name="schedule_end_after_start",
                condition=Q(start_at__isnull=True) | Q(end_at__isnull=True) | Q(end_at__gt=models.F("start_at")),
            ),
        ]
        indexes = [
            # The beat tick: WHERE next_fire_at <= now ORDER BY next_fire_at.
            models.Index(fields=["next_fire_at"], name="schedule_next_fire_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.cron} ({self.timezone})"

    @property
    def cron_description(self) -> str:
        from jobs import cron

        return cron.describe(self.cron)

    def next_fire_times(self, count: int = 5, *, after=None) -> list:
        """The next `count` fire times in the schedule's zone, within its start and end."""
        from jobs.scheduling.times import schedule_fire_times

        zone = ZoneInfo(self.timezone)
        return [instant.astimezone(zone) for instant in schedule_fire_times(schedule=self, after=after, count=count)]

    @property
    def runs_started(self):
        # `scheduled_for IS NOT NULL` lets PostgreSQL read the partial unique index on
        # (schedule_id, scheduled_for) backwards; a tick is unique per schedule, so no tie-break.
        return self.processes.filter(scheduled_for__isnull=False).order_by("-scheduled_for")

    def clean(self) -> None:
        from jobs import cron
        from jobs.scheduling.aws_cron import unix_to_aws_cron

        errors: dict[str, list[str]] = validation.validate_model_inputs(self)
        if errors:
            raise ValidationError(errors)
        try:
            self.cron = cron.validate_cron(self.cron)
        except ValidationError as exc:
            errors["cron"] = exc.messages
        if "cron" not in errors and self.driver == ScheduleDriver.EVENTBRIDGE:
            try:
                unix_to_aws_cron(self.cron)
            except ValidationError as exc:
                errors["cron"] = exc.messages
        try:
            self.timezone = cron.validate_timezone(self.timezone)
        except ValidationError as exc:
            errors["timezone"] = exc.messages
        for name in ("start_at", "end_at"):
            moment = getattr(self, name)
            # Fire times are computed in the schedule's zone: year 9999 overflows Python's datetime.
            if moment is not None and not (SCHEDULE_EARLIEST_YEAR <= moment.year <= SCHEDULE_LATEST_YEAR):
                errors[name] = [f"Give a moment between the years {SCHEDULE_EARLIEST_YEAR} and {SCHEDULE_LATEST_YEAR}."]
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            errors["end_at"] = ["The end must be after the start."]
        if self.driver == ScheduleDriver.EVENTBRIDGE and self.job_id:
            # Its ticks go straight to AWS Batch, which would refuse (or round) the job's resources.
            refused = self.job.aws_resource_errors(runs_on_aws=True)
            if refused:
                errors["driver"] = [
                    "EventBridge submits this job to AWS Batch, which refuses its resources: "
                    + " ".join(refused.values()) + " Change the job first."
                ]
        if errors:
            raise ValidationError(errors)

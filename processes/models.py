"""What ran: a Process is one run of a job, a Task one named step inside it."""

from __future__ import annotations

from datetime import UTC

from django.conf import settings
from django.db import models
from django.db.models import Q

from jobs.models import Job, Schedule


class ProcessStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTED = "submitted", "Submitted"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (ProcessStatus.QUEUED, ProcessStatus.SUBMITTED, ProcessStatus.RUNNING)
FINISHED_STATUSES = (ProcessStatus.SUCCEEDED, ProcessStatus.FAILED, ProcessStatus.CANCELLED)


class Trigger(models.TextChoices):
    MANUAL = "manual", "Manual"
    API = "api", "API"
    SCHEDULE = "schedule", "Schedule"
    RERUN = "rerun", "Rerun"


class Process(models.Model):
    # No index of its own: process_job_newest_idx and process_job_status_idx lead with job_id.
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="processes", verbose_name="job", db_index=False
    )
    status = models.CharField(
        "status", max_length=10, choices=ProcessStatus.choices, default=ProcessStatus.QUEUED
    )
    # True while a `queue`-policy run waits for the job's active run to end; it is not yet
    # handed to an executor.
    held = models.BooleanField(
        "waiting for the active run", default=False,
        help_text="Queued behind another run of the same job; starts when that run ends.",
    )
    trigger = models.CharField("trigger", max_length=10, choices=Trigger.choices)
    # No index of its own: process_user_newest_idx leads with triggered_by_id.
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", verbose_name="triggered by", db_index=False,
    )
    schedule = models.ForeignKey(
        Schedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="processes",
        verbose_name="schedule",
    )
    scheduled_for = models.DateTimeField("scheduled for", null=True, blank=True)
    parameters = models.JSONField("parameters", default=dict, blank=True)
    # What the run used, frozen at start so editing the job later does not rewrite history:
    # template, python_modules, vcpus, memory_mib, gpus, timeout_seconds, retry_attempts,
    # environment, queue.
    snapshot = models.JSONField("job settings used", default=dict)
    # The job's version (history id in jobs.HistoricalJob) the run started from: who last changed
    # the job before this run, and what it was. NULL for runs of jobs saved before history existed.
    job_version = models.BigIntegerField("job version", null=True, blank=True, editable=False)
    executor = models.CharField("executor", max_length=20, blank=True)
    external_id = models.CharField("executor id", max_length=255, blank=True)
    # The executor's own words on the run, e.g. the AWS Batch state and status reason.
    executor_state = models.CharField("executor state", max_length=40, blank=True)
    executor_status_reason = models.TextField("executor status", blank=True)
    executor_details = models.JSONField("executor details", default=dict, blank=True)
    attempt = models.PositiveSmallIntegerField("attempt", default=1)
    created_at = models.DateTimeField("created", auto_now_add=True)
    submitted_at = models.DateTimeField("submitted", null=True, blank=True)
    started_at = models.DateTimeField("started", null=True, blank=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    heartbeat_at = models.DateTimeField("last heartbeat", null=True, blank=True)
    cancel_requested_at = models.DateTimeField("cancel requested", null=True, blank=True)
    # Set once the control plane did what a run's end calls for (failure notification, releasing
    # the next queued run): processes.services.process_finalize claims it.
    finalized_at = models.DateTimeField("finalized", null=True, blank=True, editable=False)
    exit_code = models.IntegerField("exit code", null=True, blank=True)
    failure_reason = models.TextField("failure reason", blank=True)
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns",
        verbose_name="rerun of",
    )
    # Set on rows of a bulk insert where the database cannot return their ids (SQL Server): the
    # ids are then read back by this key, and the key cleared (processes.services).
    bulk_key = models.CharField("bulk insert key", max_length=48, null=True, blank=True, editable=False)
    # Set when the run finishes (processes.costs.process_cost_record): its resources priced for
    # its duration with the JTB_COST_* settings. NULL: not estimated (still active, or older).
    estimated_cost = models.DecimalField(
        "estimated cost", max_digits=16, decimal_places=6, null=True, blank=True,
        help_text="Resources reserved × run time × the price settings; not the AWS bill.",
    )

    class Meta:
        verbose_name = "process"
        verbose_name_plural = "processes"
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(name="process_status_valid", condition=Q(status__in=ProcessStatus.values)),
            models.CheckConstraint(name="process_trigger_valid", condition=Q(trigger__in=Trigger.values)),
            # One run per schedule tick, whoever fires it and however often.
            models.UniqueConstraint(
                fields=["schedule", "scheduled_for"], name="process_one_run_per_schedule_tick",
                condition=Q(schedule__isnull=False, scheduled_for__isnull=False),
            ),
            # One rerun in flight per failed run, however many people press Rerun at once.
            models.UniqueConstraint(
                fields=["rerun_of"], name="process_one_active_rerun",
                condition=Q(rerun_of__isnull=False, status__in=ACTIVE_STATUSES),
            ),
        ]
        indexes = [
            # Concurrency policy: WHERE job_id = ? AND status IN (...).
            models.Index(fields=["job", "status"], name="process_job_status_idx"),
            # Runs of one job, newest first: admin and API `job=` filters and their capped counts,
            # process search by job name (job_id IN ...), the job page's recent runs, and the
            # retention purge's "is there a newer run of this job" probe.
            models.Index(fields=["job", "-id"], name="process_job_newest_idx"),
            # Admin and API lists filtered by status, newest first; process search by failure
            # reason (only failed and cancelled runs of a recent id window are read).
            models.Index(fields=["status", "-id"], name="process_status_id_idx"),
            # Admin and API lists filtered by trigger (rerun, manual...), newest first.
            models.Index(fields=["trigger", "-id"], name="process_trigger_newest_idx"),
            # Process search by who started the run (triggered_by_id IN ...), newest first.
            models.Index(fields=["triggered_by", "-id"], name="process_user_newest_idx"),
            # Process search by executor id: exact `pid:1234` or an AWS Batch job id.
            models.Index(fields=["external_id"], name="process_external_id_idx"),
            # API created_after/created_before, read in (created_at, id) order; admin date filter.
            models.Index(fields=["-created_at", "-id"], name="process_created_newest_idx"),
            # The reaper: WHERE status = 'running' AND heartbeat_at < ?.
            models.Index(fields=["status", "heartbeat_at"], name="process_status_heartbeat_idx"),
            # Reading back the ids of a bulk insert by key (backends that cannot return them).
            models.Index(fields=["bulk_key"], name="process_bulk_key_idx", condition=Q(bulk_key__isnull=False)),
            # The finalize sweep: finished runs not finalized yet (a handful among millions).
            models.Index(
                fields=["id"], name="process_to_finalize_idx",
                condition=Q(finalized_at__isnull=True, status__in=FINISHED_STATUSES),
            ),
            # The console: failures of the last 24 h, slowest and most failing jobs, cost over 30
            # days: WHERE status IN (...) AND finished_at >= ?.
            models.Index(fields=["status", "finished_at"], name="process_status_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.job.name if self.job_id else ''}".strip()

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class TaskStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    # A step still running when its process was cancelled: stopped on request, not broken.
    CANCELLED = "cancelled", "Cancelled"


# Every task status but succeeded (the rare ones), in a stable order for the partial index.
UNSUCCESSFUL_TASK_STATUSES = [status for status in TaskStatus.values if status != TaskStatus.SUCCEEDED]


class Task(models.Model):
    # No index of its own: task_one_row_per_step leads with process_id.
    process = models.ForeignKey(
        Process, on_delete=models.CASCADE, related_name="tasks", verbose_name="process", db_index=False
    )
    name = models.CharField("name", max_length=200)
    sequence = models.PositiveIntegerField("step")
    status = models.CharField("status", max_length=10, choices=TaskStatus.choices, default=TaskStatus.RUNNING)
    started_at = models.DateTimeField("started")
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    error = models.TextField("error", blank=True)
    traceback = models.TextField("traceback", blank=True)

    class Meta:
        ordering = ["process_id", "sequence"]
        constraints = [
            models.CheckConstraint(name="task_status_valid", condition=Q(status__in=TaskStatus.values)),
            # A status write retried after a lost connection must not add the step twice.
            models.UniqueConstraint(fields=["process", "sequence"], name="task_one_row_per_step"),
        ]
        indexes = [
            # Task list filtered by a rare status (running, failed), newest first. Nearly every
            # task succeeded, so the index holds only the few others; `succeeded` reads the primary
            # key backwards and finds its rows at once. An IN list, not NOT(...): SQL Server's
            # filtered indexes accept no NOT.
            models.Index(
                fields=["status", "-id"], name="task_unsuccessful_newest_idx",
                condition=Q(status__in=UNSUCCESSFUL_TASK_STATUSES),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sequence}. {self.name}"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class IdempotencyRecord(models.Model):
    """The first answer to a run, bulk-run or rerun request sent with an `Idempotency-Key` header:
    the same key from the same user within JTB_IDEMPOTENCY_SECONDS gets that answer again, and
    starts nothing more (jobtarget_batch/api/idempotency.py)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField("key", max_length=200)
    # What the key was first used for (method, path, body hash): another request under it is refused.
    fingerprint = models.CharField("request fingerprint", max_length=64)
    status_code = models.PositiveSmallIntegerField("answer status", null=True)
    body = models.JSONField("answer body", null=True)
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        constraints = [
            # Two requests racing with one key: the database lets exactly one in.
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_one_answer_per_key"),
        ]
        indexes = [
            # Expiring old records: WHERE created_at < ?.
            models.Index(fields=["created_at"], name="idempotency_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code or 'in progress'})"


# Bounds in seconds of the /metrics histograms, kept per job in ProcessTotal. Runs last from
# seconds to a day; waits from instant to hours (Spot capacity).
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
WAIT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)


def rollup_hour(instant):
    """The start of the UTC hour holding `instant`: ProcessHourly's bucket."""
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class ProcessHourly(models.Model):
    """Finished runs per hour (UTC, the hour they finished in), job, final status and trigger.

    The dashboard's 7- and 30-day charts, the job page's and the jobs list's run counts read this
    instead of the history: a year of hourly rows per job is far fewer rows than its runs, and a
    window reads only its own hours. Written once per run by processes.rollup when the control
    plane finalizes it; `manage.py rebuild_rollups` recounts it from the history. The retention
    purge leaves it alone: it is the long-term record of runs whose rows were deleted.
    """

    hour = models.DateTimeField("hour (UTC)")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+", db_index=False)
    status = models.CharField("final status", max_length=10, choices=ProcessStatus.choices)
    trigger = models.CharField("trigger", max_length=10, choices=Trigger.choices)
    runs = models.PositiveIntegerField("runs finished", default=0)
    # Runs that started (the others were cancelled while waiting): what the duration figures divide by.
    timed_runs = models.PositiveIntegerField("runs that started", default=0)
    duration_seconds = models.FloatField("total run time (s)", default=0)
    longest_seconds = models.FloatField("longest run time (s)", default=0)
    # Run time spent inside this hour by runs that finished in it or later (a run over several
    # hours adds to each): busy_seconds / 3600 is how many runs executed at once on average.
    busy_seconds = models.FloatField("run time inside the hour (s)", default=0)
    estimated_cost = models.DecimalField("estimated cost", max_digits=20, decimal_places=6, default=0)

    class Meta:
        verbose_name = "hourly run count"
        constraints = [
            # One row per key: concurrent finalizes add to it (processes.rollup retries a lost insert race).
            models.UniqueConstraint(fields=["hour", "job", "status", "trigger"], name="process_hourly_one_row"),
        ]
        indexes = [
            # The job page and the jobs list: WHERE job_id IN (...) AND hour >= ?.
            models.Index(fields=["job", "hour"], name="process_hourly_job_hour_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} job {self.job_id} {self.status}/{self.trigger}: {self.runs}"


def _bucket_field_name(prefix: str, bound: int) -> str:
    return f"{prefix}_le_{bound}"


class ProcessTotal(models.Model):
    """Every finished run since the start, per job, final status and trigger: /metrics' counters
    and histograms read these few rows instead of grouping the history at each scrape.

    Written with ProcessHourly (processes.rollup). Counters only grow: the retention purge does
    not lower them (Prometheus would read a drop as a restart).
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+", db_index=False)
    status = models.CharField("final status", max_length=10, choices=ProcessStatus.choices)
    trigger = models.CharField("trigger", max_length=10, choices=Trigger.choices)
    runs = models.PositiveBigIntegerField("runs finished", default=0)
    timed_runs = models.PositiveBigIntegerField("runs that ran", default=0)
    duration_seconds = models.FloatField("total run time (s)", default=0)
    waited_runs = models.PositiveBigIntegerField("runs that started", default=0)
    wait_seconds = models.FloatField("total wait to start (s)", default=0)
    # duration_le_<bound> and wait_le_<bound> (cumulative histogram buckets) are added below.

    class Meta:
        verbose_name = "run total"
        constraints = [
            models.UniqueConstraint(fields=["job", "status", "trigger"], name="process_total_one_row"),
        ]

    def __str__(self) -> str:
        return f"job {self.job_id} {self.status}/{self.trigger}: {self.runs}"


DURATION_BUCKET_FIELDS = [_bucket_field_name("duration", bound) for bound in DURATION_BUCKETS]
WAIT_BUCKET_FIELDS = [_bucket_field_name("wait", bound) for bound in WAIT_BUCKETS]
for _name, _bound in [*zip(DURATION_BUCKET_FIELDS, DURATION_BUCKETS, strict=True),
                      *zip(WAIT_BUCKET_FIELDS, WAIT_BUCKETS, strict=True)]:
    ProcessTotal.add_to_class(_name, models.PositiveBigIntegerField(f"at most {_bound} s", default=0))

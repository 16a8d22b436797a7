"""API representation of runs (processes and their tasks), and the bodies that start runs."""

from __future__ import annotations

from rest_framework import serializers

from jobtarget_batch.api.fields import JSONObjectField, StrictFieldsMixin
from processes.models import Process, ProcessStatus, Task, Trigger

MAX_ID = 2**63 - 1
MAX_BULK_RUNS = 1000
# 1 TiB: beyond any run's log, and below what every file system can seek to.
MAX_LOG_OFFSET = 2**40


class TaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = ["id", "name", "sequence", "status", "started_at", "finished_at", "error", "traceback"]
        read_only_fields = fields


class ProcessSummarySerializer(serializers.ModelSerializer):
    """A run without its tasks: lists and bulk answers stay small whatever the runs logged."""

    job_name = serializers.CharField(source="job.name", read_only=True)
    triggered_by = serializers.CharField(
        source="triggered_by.username", read_only=True, allow_null=True,
        help_text="The user who started the run; null for schedules and deleted users.",
    )
    parameters = serializers.JSONField(read_only=True)

    class Meta:
        model = Process
        fields = [
            "id", "job", "job_name", "status", "trigger", "triggered_by", "parameters", "executor",
            "external_id", "attempt", "created_at", "submitted_at", "started_at", "finished_at", "exit_code",
            "failure_reason", "rerun_of",
            # Beyond the contract's list: why a run waits, which tick started it, what its executor says.
            "held", "schedule", "scheduled_for", "cancel_requested_at", "executor_state", "executor_status_reason",
            # The job version (GET jobs/{id}/history/ history_id) the run started from.
            "job_version",
        ]
        read_only_fields = fields


# The list's columns, read with values() (no model instances): what ProcessSummarySerializer shows.
SUMMARY_COLUMNS = (
    "id", "job_id", "job__name", "status", "trigger", "triggered_by__username", "parameters", "executor",
    "external_id", "attempt", "created_at", "submitted_at", "started_at", "finished_at", "exit_code",
    "failure_reason", "rerun_of_id", "held", "schedule_id", "scheduled_for", "cancel_requested_at",
    "executor_state", "executor_status_reason", "job_version",
)
# Each field of ProcessSummarySerializer.Meta.fields (in its order) and its column.
SUMMARY_FIELD_COLUMNS = {"job": "job_id", "job_name": "job__name", "triggered_by": "triggered_by__username",
                         "rerun_of": "rerun_of_id", "schedule": "schedule_id"}
SUMMARY_DATETIMES = {"created_at", "submitted_at", "started_at", "finished_at", "scheduled_for", "cancel_requested_at"}


def _iso(value, zone) -> str | None:
    """DRF's DateTimeField output (ISO 8601 in the current time zone, UTC written as Z)."""
    if value is None:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def process_summaries(rows) -> list[dict]:
    """What ProcessSummarySerializer(many=True) answers, built straight from SUMMARY_COLUMNS rows.

    The API's list answers up to 500 runs a page: per-field serializer calls and model instances
    cost more than the query, so the list builds plain dicts here; a test keeps both identical.
    """
    from django.utils import timezone

    zone = timezone.get_current_timezone()
    fields = [(name, SUMMARY_FIELD_COLUMNS.get(name, name), name in SUMMARY_DATETIMES)
              for name in ProcessSummarySerializer.Meta.fields]
    return [
        {name: _iso(row[column], zone) if is_time else row[column] for name, column, is_time in fields}
        for row in rows
    ]


class ProcessSerializer(ProcessSummarySerializer):
    tasks = TaskSerializer(many=True, read_only=True, help_text="The named steps of the run, in order.")

    class Meta(ProcessSummarySerializer.Meta):
        fields = [*ProcessSummarySerializer.Meta.fields, "tasks"]
        read_only_fields = fields


class ProcessFilterSerializer(serializers.Serializer):
    """Query parameters of `GET processes/`."""

    job = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID, help_text="Runs of this job id.")
    status = serializers.ChoiceField(choices=ProcessStatus.choices, required=False)
    trigger = serializers.ChoiceField(choices=Trigger.choices, required=False)
    created_after = serializers.DateTimeField(required=False, help_text="Created at or after, ISO 8601.")
    created_before = serializers.DateTimeField(required=False, help_text="Created before, ISO 8601.")


class LogQuerySerializer(serializers.Serializer):
    offset = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=MAX_LOG_OFFSET,
        help_text="Byte offset to read from; pass the previous response's X-Next-Offset to tail the log.",
    )


class RunRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    job = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The id of the job to run.")
    parameters = JSONObjectField(
        required=False, default=dict, help_text="Overrides of the job's default parameters for this run.",
    )


class RunsSerializer(StrictFieldsMixin, serializers.Serializer):
    runs = RunRequestSerializer(
        many=True, allow_empty=False, max_length=MAX_BULK_RUNS,
        help_text=f"1 to {MAX_BULK_RUNS} runs, started all or none.",
    )

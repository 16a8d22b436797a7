"""API representation of jobs and schedules. Validation beyond types is the model's `clean`,
run by `jobs.services` (the same checks as the admin), so these classes only parse and render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.models import Job, Schedule
from jobtarget_batch.api.fields import JSONObjectField, StrictFieldsMixin, StringListField, StringMapField


class JobSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    vcpus = serializers.DecimalField(
        max_digits=6, decimal_places=2, coerce_to_string=False, required=False,
        min_value=Job._meta.get_field("vcpus").validators[0].limit_value,
        help_text=Job._meta.get_field("vcpus").help_text,
    )
    python_modules = StringListField(required=False, help_text=Job._meta.get_field("python_modules").help_text)
    parameters = JSONObjectField(required=False, help_text=Job._meta.get_field("parameters").help_text)
    environment = StringMapField(required=False, help_text=Job._meta.get_field("environment").help_text)
    tags = StringMapField(required=False, help_text=Job._meta.get_field("tags").help_text)
    notify_emails = StringListField(required=False, help_text=Job._meta.get_field("notify_emails").help_text)

    class Meta:
        model = Job
        fields = [
            "id", "name", "description", "enabled", "template", "python_modules", "vcpus", "memory_mib",
            "gpus", "timeout_seconds", "retry_attempts", "parameters", "environment", "concurrency_policy",
            "queue", "tags", "notify_emails", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class ScheduleSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    # The contract's `description` is the cron in words; the model's free-text description
    # (why the schedule exists) is `notes` here.
    notes = serializers.CharField(
        source="description", required=False, allow_blank=True,
        help_text=Schedule._meta.get_field("description").help_text,
    )
    description = serializers.CharField(
        source="cron_description", read_only=True, help_text="The cron in words, e.g. \"At 06:00 AM\".",
    )
    next_runs = serializers.SerializerMethodField(
        help_text="The next five fire times in the schedule's time zone (ISO 8601 with its offset), within "
        "its start and end; empty while the schedule is disabled."
    )

    class Meta:
        model = Schedule
        fields = [
            "id", "job", "cron", "timezone", "enabled", "driver", "start_at", "end_at", "notes",
            "description", "next_runs", "next_fire_at", "last_fired_at", "remote_synced_at", "remote_error",
            "created_at", "updated_at",
        ]
        read_only_fields = [
            "id", "next_fire_at", "last_fired_at", "remote_synced_at", "remote_error", "created_at", "updated_at",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_next_runs(self, schedule: Schedule) -> list[str]:
        if not schedule.enabled:
            return []
        return [moment.isoformat() for moment in schedule.next_fire_times(5)]

"""API representation of jobs and schedules. Validation beyond types is the model's `clean`,
run by `jobs.services` (the same checks as the admin), so these classes only parse and render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.masking import environment_masked, user_may_read_environment
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

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        # Values only for users who may change the job; secret-named values for no one (jobs.masking).
        data["environment"] = environment_masked(
            data.get("environment") or {}, reveal=user_may_read_environment(getattr(request, "user", None))
        )
        return data


class FieldChangeSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The field that changed, e.g. memory_mib.")
    before = serializers.JSONField(help_text="Its value before the change (null for a new object).")
    after = serializers.JSONField(help_text="Its value after the change.")


class VersionSerializer(serializers.Serializer):
    """One kept version of a job or schedule (django-simple-history), newest first."""

    history_id = serializers.IntegerField(help_text="The version's id; a run records the job version it started from.")
    kind = serializers.ChoiceField(choices=["created", "changed", "deleted"])
    changed_at = serializers.DateTimeField()
    changed_by = serializers.CharField(allow_null=True, help_text="Username; null for system changes.")
    reason = serializers.CharField(help_text="Where the change came from, e.g. \"admin\" or \"api\".")
    changes = FieldChangeSerializer(many=True)


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

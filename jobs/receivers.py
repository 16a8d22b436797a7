"""Signal receivers of the jobs app, connected in JobsConfig.ready.

Deleting a job cascades to its schedules without calling `schedule_delete`, and so does a
queryset delete: post_delete is the only place that sees those, and a schedule's EventBridge copy
must go with its row.
"""

from __future__ import annotations

from django.db.models.signals import post_delete

from jobs.models import Schedule
from jobs.services import schedule_remote_forget


def _schedule_deleted(sender, instance: Schedule, **kwargs) -> None:
    schedule_remote_forget(schedule=instance)


def connect() -> None:
    post_delete.connect(_schedule_deleted, sender=Schedule, dispatch_uid="schedule_post_delete")

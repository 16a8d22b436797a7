"""Reads of the audit trail (django-simple-history): the versions of a job or schedule, what each
change did, and the version a new run starts from.

Environment values follow the same masking rule as the job itself (jobs.masking), so the history
never shows what the current job page hides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max

from jobs.masking import environment_masked
from jobs.models import Job

HISTORY_TYPES = {"+": "created", "~": "changed", "-": "deleted"}
# Bookkeeping, not something a person changed.
UNCOMPARED_FIELDS = {"updated_at", "created_at"}


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: object
    after: object


@dataclass(frozen=True)
class Version:
    history_id: int
    kind: str
    changed_at: datetime
    changed_by: str | None
    reason: str
    changes: list[FieldChange]


def job_versions_latest(*, job_ids: Iterable[int]) -> dict[int, int]:
    """{job id: history id of its newest version}, in one query (runs record what they started from)."""
    ids = list(job_ids)
    if not ids:
        return {}
    rows = Job.history.filter(id__in=ids).values("id").annotate(latest=Max("history_id"))
    return {row["id"]: row["latest"] for row in rows}


def _shown(field: str, value, *, can_see_environment: bool):
    if field == "environment" and isinstance(value, dict):
        return environment_masked(value, reveal=can_see_environment)
    return value


def versions_list(*, history_queryset, can_see_environment: bool, limit: int = 200) -> list[Version]:
    """Newest first: each version with the fields it changed against the one before."""
    records = list(history_queryset.select_related("history_user").order_by("-history_id")[: limit + 1])
    versions = []
    for index, record in enumerate(records[:limit]):
        previous = records[index + 1] if index + 1 < len(records) else None
        changes = []
        fields = [f.name for f in record.instance_type._meta.fields
                  if f.name not in UNCOMPARED_FIELDS and hasattr(record, f.attname)]
        for name in fields:
            attname = record.instance_type._meta.get_field(name).attname
            after = getattr(record, attname)
            before = getattr(previous, attname) if previous is not None else None
            if previous is None and record.history_type != "+":
                continue  # the oldest kept version of a longer history: nothing to compare with
            if before != after:
                changes.append(FieldChange(
                    field=name,
                    before=_shown(name, before, can_see_environment=can_see_environment),
                    after=_shown(name, after, can_see_environment=can_see_environment),
                ))
        versions.append(Version(
            history_id=record.history_id,
            kind=HISTORY_TYPES.get(record.history_type, record.history_type),
            changed_at=record.history_date,
            changed_by=record.history_user.get_username() if record.history_user else None,
            reason=record.history_change_reason or "",
            changes=changes,
        ))
    return versions

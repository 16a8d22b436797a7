"""Cron expressions as users write them: five fields, read in an IANA time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cron_descriptor import get_description
from croniter import croniter
from django.core.exceptions import ValidationError
from django.utils import timezone


def validate_cron(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("Give a cron expression, e.g. \"0 6 * * *\" for every day at 06:00.")
    text = " ".join(value.split())
    if len(text.split(" ")) != 5:
        raise ValidationError(
            f"{text!r} must have five fields: minute hour day-of-month month day-of-week, e.g. \"0 6 * * *\"."
        )
    if not croniter.is_valid(text):
        raise ValidationError(f"{text!r} is not a valid cron expression.")
    return text


def validate_timezone(value) -> str:
    if not isinstance(value, str) or value not in _timezones():
        raise ValidationError(f"{value!r} is not a known time zone; use an IANA name such as Europe/London.")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not a known time zone.") from None
    return value


def describe(cron: str) -> str:
    """The cron in words, e.g. "At 01:30 AM, Monday through Friday"."""
    try:
        return get_description(cron)
    except Exception:  # cron-descriptor raises several private types on odd input
        return cron


def next_runs(cron: str, tz_name: str, count: int = 5, *, after: datetime | None = None) -> list[datetime]:
    """The next `count` fire times, aware datetimes in the schedule's zone."""
    zone = ZoneInfo(tz_name)
    start = (after or timezone.now()).astimezone(zone)
    iterator = croniter(cron, start)
    return [iterator.get_next(datetime) for _ in range(count)]


_TIMEZONES: set[str] | None = None


def _timezones() -> set[str]:
    global _TIMEZONES
    if _TIMEZONES is None:
        _TIMEZONES = available_timezones() | {"UTC"}
    return _TIMEZONES

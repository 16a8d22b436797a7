"""Cron expressions as users write them: five Unix fields, read in an IANA time zone.

`parse` validates and expands an expression; `fire_times` yields the real instants (UTC) at which
it fires. Fire times are computed on the local wall clock and then placed on the time line, with
the two daylight-saving rules users expect from cron (docs/schedules.md):

- A wall-clock time the clocks skip (02:30 on the spring-forward night in New York) fires once,
  at the moment the clocks jump (03:00 local), so a daily job never loses a day.
- A wall-clock time that happens twice (01:30 on the fall-back night) fires once, at its first
  occurrence, unless the expression fires every hour (hour field `*`): such interval schedules
  fire once per real hour, in both occurrences.

The calendar search is our own rather than croniter's, whose aware-datetime arithmetic has had
DST bugs and whose extensions (`L`, `#`, `H`, seconds) are not part of the Unix syntax we accept
(and could not be sent to EventBridge Scheduler).
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cron_descriptor import get_description
from django.core.exceptions import ValidationError

from jobs.aws_limits import is_iana_zone

MONTH_NAMES = {name: number for number, name in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
)}
DAY_NAMES = {name: number for number, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
# A calendar that matches no day within this many years never fires (e.g. "0 0 30 2 *").
SEARCH_YEARS = 9
_ITEM = re.compile(r"^(?P<base>\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?$")


@dataclass(frozen=True)
class FieldSpec:
    label: str
    low: int
    high: int
    names: dict[str, int] | None = None


FIELDS = (
    FieldSpec("minute", 0, 59),
    FieldSpec("hour", 0, 23),
    FieldSpec("day of month", 1, 31),
    FieldSpec("month", 1, 12, MONTH_NAMES),
    # 0 and 7 are both Sunday, as in every Unix cron.
    FieldSpec("day of week", 0, 7, DAY_NAMES),
)


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the sets of values each field matches (day of week 0-6, Sunday 0)."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    # Unix cron: when both day fields are restricted a day matches if EITHER does; a field
    # written starting with `*` counts as unrestricted.
    day_restricted: bool
    weekday_restricted: bool

    @property
    def every_hour(self) -> bool:
        return len(self.hours) == 24

    def matches_day(self, day: date) -> bool:
        in_month = day.day in self._day_set
        in_week = day.isoweekday() % 7 in self._weekday_set
        if self.day_restricted and self.weekday_restricted:
            return in_month or in_week
        return in_month and in_week

    @property
    def _day_set(self) -> frozenset[int]:
        return _frozen(self.days)

    @property
    def _weekday_set(self) -> frozenset[int]:
        return _frozen(self.weekdays)


@lru_cache(maxsize=256)
def _frozen(values: tuple[int, ...]) -> frozenset[int]:
    return frozenset(values)


def normalize(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("Give a cron expression, e.g. \"0 6 * * *\" for every day at 06:00.")
    text = " ".join(value.split())
    return MACROS.get(text.lower(), text)


def parse(value) -> Cron:
    """Parse a five-field Unix cron expression; ValidationError says what is wrong and how to fix it."""
    return _parse(normalize(value))


@lru_cache(maxsize=4096)
def _parse(text: str) -> Cron:
    if text.startswith("@"):
        raise ValidationError(
            f"{text!r} is not supported; use five fields or one of {', '.join(sorted(MACROS))}."
        )
    fields = text.split(" ")
    if len(fields) == 6:
        raise ValidationError(
            f"{text!r} has six fields. Schedules run at most once a minute: give five fields "
            "(minute hour day-of-month month day-of-week) without seconds, e.g. \"*/5 * * * *\"."
        )
    if len(fields) != 5:
        raise ValidationError(
            f"{text!r} must have five fields: minute hour day-of-month month day-of-week, e.g. \"0 6 * * *\"."
        )
    values = [_parse_field(field, spec) for field, spec in zip(fields, FIELDS, strict=True)]
    weekdays = tuple(sorted({day % 7 for day in values[4]}))
    cron = Cron(
        text=text, minutes=values[0], hours=values[1], days=values[2], months=values[3], weekdays=weekdays,
        day_restricted=not fields[2].startswith("*"), weekday_restricted=not fields[4].startswith("*"),
    )
    if _next_wall_time(cron, datetime(2000, 1, 1)) is None:
        raise ValidationError(f"{text!r} never fires: no date matches its day and month fields.")
    return cron


def _parse_field(field: str, spec: FieldSpec) -> tuple[int, ...]:
    values: set[int] = set()
    for item in field.split(","):
        match = _ITEM.match(item)
        if not match:
            raise ValidationError(
                f"{spec.label} field: {item or field!r} is not Unix cron syntax; use numbers, names, "
                "'*', lists (1,15), ranges (1-5) and steps (*/15). L, W, #, ? and H are not supported."
            )
        base, step_text = match["base"], match["step"]
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValidationError(f"{spec.label} field: the step in {item!r} must be at least 1.")
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, last = base.split("-")
            low, high = _value(first, spec, item), _value(last, spec, item)
            if low > high:
                raise ValidationError(
                    f"{spec.label} field: the range {item!r} runs backwards; cron ranges do not wrap "
                    f"around, so list both parts, e.g. \"{first}-{spec.high},{spec.low}-{last}\"."
                )
        else:
            low = _value(base, spec, item)
            # "5/15" means from 5 to the end of the field, every 15, as in Vixie cron.
            high = spec.high if step_text else low
        values.update(range(low, high + 1, step))
    return tuple(sorted(values))


def _value(text: str, spec: FieldSpec, item: str) -> int:
    if text.isdigit():
        number = int(text)
    elif spec.names and text.upper() in spec.names:
        number = spec.names[text.upper()]
    elif text.upper() in ("L", "W", "LW", "H") or text[:-1].isdigit() and text[-1:].upper() in ("L", "W"):
        raise ValidationError(
            f"{spec.label} field: {item!r} is not Unix cron syntax (L, W and H belong to other cron dialects)."
        )
    else:
        names = f" or a name such as {next(iter(spec.names))}" if spec.names else ""
        raise ValidationError(f"{spec.label} field: {text!r} in {item!r} is not a number{names}.")
    if not spec.low <= number <= spec.high:
        raise ValidationError(
            f"{spec.label} field: {number} in {item!r} is out of range {spec.low}-{spec.high}."
        )
    return number


def validate_cron(value) -> str:
    """The normalized expression (one space between fields, macros expanded) or ValidationError."""
    return parse(value).text


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
        return get_description(normalize(cron))
    except Exception:  # cron-descriptor raises several private types on odd input
        return cron


# --- fire times ------------------------------------------------------------------------------

def _next_wall_time(cron: Cron, after: datetime) -> datetime | None:
    """The first naive wall-clock minute strictly after `after` that the expression matches."""
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    last_year = t.year + SEARCH_YEARS
    months = _frozen(cron.months)
    while t.year <= last_year:
        if t.month not in months:
            t = datetime(t.year + (t.month == 12), t.month % 12 + 1, 1)
            continue
        if not cron.matches_day(t.date()):
            t = datetime(t.year, t.month, t.day) + timedelta(days=1)
            continue
        index = bisect.bisect_left(cron.hours, t.hour)
        if index == len(cron.hours):
            t = datetime(t.year, t.month, t.day) + timedelta(days=1)
            continue
        if cron.hours[index] != t.hour:
            t = t.replace(hour=cron.hours[index], minute=0)
        index = bisect.bisect_left(cron.minutes, t.minute)
        if index == len(cron.minutes):
            t = t.replace(minute=0) + timedelta(hours=1)
            continue
        return t.replace(minute=cron.minutes[index])
    return None


def _is_ambiguous_or_missing(wall: datetime, zone: ZoneInfo) -> bool:
    return wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset()


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _first_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """When a wall-clock time first happens (UTC); for a skipped time, when the clocks jump past it."""
    if not _is_ambiguous_or_missing(wall, zone) or _exists(wall, zone):
        return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    # Skipped: the jump lies between the instant read with the later offset and the earlier one.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def fire_times(cron: Cron | str, tz_name: str, *, after: datetime) -> Iterator[datetime]:
    """Every instant (aware, UTC) strictly after `after` at which the expression fires, in order."""
    cron = cron if isinstance(cron, Cron) else parse(cron)
    zone = _zone(tz_name)
    after = after.astimezone(UTC)
    wall = after.astimezone(zone).replace(tzinfo=None)
    if _is_ambiguous_or_missing(wall, zone):
        # Inside a repeated hour, second occurrences of earlier wall times are still ahead.
        wall -= timedelta(hours=3)
    pending: list[datetime] = []
    last = after
    while True:
        nxt = _next_wall_time(cron, wall)
        if nxt is None:
            break
        wall = nxt
        first = _first_instant(wall, zone)
        heapq.heappush(pending, first)
        if cron.every_hour and _is_ambiguous_or_missing(wall, zone) and _exists(wall, zone):
            heapq.heappush(pending, wall.replace(tzinfo=zone, fold=1).astimezone(UTC))
        # Later wall times never map before `first`, so everything up to it is final.
        while pending and pending[0] <= first:
            instant = heapq.heappop(pending)
            if instant > last:
                last = instant
                yield instant
    while pending:
        instant = heapq.heappop(pending)
        if instant > last:
            last = instant
            yield instant


def next_fire(cron: Cron | str, tz_name: str, *, after: datetime) -> datetime | None:
    return next(fire_times(cron, tz_name, after=after), None)


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_TIMEZONES: set[str] | None = None


def _timezones() -> set[str]:
    global _TIMEZONES
    if _TIMEZONES is None:
        # Only real IANA zones: EventBridge Scheduler refuses `localtime`, `Factory` and the like.
        _TIMEZONES = {name for name in available_timezones() if is_iana_zone(name)} | {"UTC"}
    return _TIMEZONES

"""Unix cron (five fields, what users write) to EventBridge Scheduler cron (six fields).

AWS differs from Unix in four ways that matter here: a sixth field (year); day of week 1-7 from
Sunday instead of 0-6 (or 7); one of day-of-month and day-of-week must be `?`; and day of week
takes no `/` steps. Unix cron fires on days matching EITHER day field when both are restricted;
AWS cannot say that, so such expressions are refused for the EventBridge driver.

Each field is expanded to the values it matches and written back compactly (`*`, `a/step`,
ranges, lists), so every Unix spelling of a field converts to one canonical AWS spelling.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from jobs import cron as cronlib

AWS_DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]  # AWS 1-7
MAX_EXPRESSION = 256


def unix_to_aws_cron(expression: str) -> str:
    """`cron(...)` for EventBridge Scheduler, or ValidationError when AWS cannot express it."""
    parsed = cronlib.parse(expression)
    all_days = len(parsed.days) == 31
    all_weekdays = len(parsed.weekdays) == 7
    if parsed.day_restricted and parsed.weekday_restricted:
        # Unix "either field matches": a field matching every day makes the other irrelevant.
        if all_days or all_weekdays:
            all_days, all_weekdays = True, True
        else:
            raise ValidationError(
                f"{parsed.text!r} restricts both the day of month and the day of week. Unix cron runs on "
                "days matching either one, which EventBridge Scheduler cannot express: use the beat "
                "driver, or split it into two schedules (one by day of month, one by day of week)."
            )
    elif not all_days and not all_weekdays:
        raise ValidationError(
            f"{parsed.text!r} restricts both the day of month and the day of week, which EventBridge "
            "Scheduler cannot express (one of them must be *): use the beat driver."
        )
    minutes = _compact(parsed.minutes, 0, 59)
    hours = _compact(parsed.hours, 0, 23)
    months = _compact(parsed.months, 1, 12)
    if not all_weekdays:
        days, weekdays = "?", _weekdays(parsed.weekdays)
    else:
        days, weekdays = _compact(parsed.days, 1, 31), "?"
    result = f"cron({minutes} {hours} {days} {months} {weekdays} *)"
    if len(result) > MAX_EXPRESSION:
        raise ValidationError(
            f"{parsed.text!r} becomes longer than the {MAX_EXPRESSION} characters EventBridge Scheduler "
            "accepts; use fewer list items or a step such as */5."
        )
    return result


def _compact(values: tuple[int, ...], low: int, high: int) -> str:
    if values == tuple(range(low, high + 1)):
        return "*"
    if len(values) > 2:
        step = values[1] - values[0]
        if step > 1 and values == tuple(range(values[0], high + 1, step)) and values[0] < step + low:
            return f"{values[0]}/{step}"
    return ",".join(_runs([str(v) for v in values], values))


def _weekdays(unix_days: tuple[int, ...]) -> str:
    if len(unix_days) == 7:
        return "*"
    aws = tuple(sorted(day + 1 for day in unix_days))
    return ",".join(_runs([AWS_DAY_NAMES[day - 1] for day in aws], aws))


def _runs(labels: list[str], values: tuple[int, ...]) -> list[str]:
    """Consecutive values of three or more become a range: 1,2,3,5 -> 1-3,5."""
    parts: list[str] = []
    index = 0
    while index < len(values):
        end = index
        while end + 1 < len(values) and values[end + 1] == values[end] + 1:
            end += 1
        if end - index >= 2:
            parts.append(f"{labels[index]}-{labels[end]}")
        else:
            parts.extend(labels[index : end + 1])
        index = end + 1
    return parts

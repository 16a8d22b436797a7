"""Template filters of the console pages: durations written the way the lists write them."""

from __future__ import annotations

from datetime import timedelta

from django import template

from jobtarget_batch.admin_tools import format_duration

register = template.Library()


@register.filter
def duration(value) -> str:
    """A timedelta, or a number of seconds, as "4.2 s", "3 min 05 s" or "1 h 02 min"."""
    if value is None or value == "":
        return "—"
    if not isinstance(value, timedelta):
        value = timedelta(seconds=float(value))
    return format_duration(value)


@register.filter
def percent(value) -> str:
    """A fraction (0.5) as "50 %"; "—" when there is nothing to divide."""
    if value is None:
        return "—"
    return f"{value * 100:.0f} %"

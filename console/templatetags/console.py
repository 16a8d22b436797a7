"""Template filters of the console: elapsed times in the same words the page's script ticks."""

from __future__ import annotations

from datetime import datetime

from django import template

register = template.Library()


def elapsed_words(seconds: float) -> str:
    """"42 s", "3 min 07 s", "2 h 05 min" (console/static/console/dashboard.js says the same)."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@register.filter
def elapsed_since(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "—"
    return elapsed_words((now - since).total_seconds())


@register.filter
def seconds_words(seconds: float) -> str:
    return elapsed_words(seconds)


@register.filter
def percent(share: float) -> str:
    return f"{share * 100:.0f} %"

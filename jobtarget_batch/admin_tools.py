"""Admin helpers shared by the apps: list pages that stay fast on millions of rows, and form fields
that let non-engineers type lists one item per line."""

from __future__ import annotations

import json
from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.forms.fields import InvalidJSONInput
from django.utils.functional import cached_property

from jobs.input_gate import input_problem


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: `COUNT(*)` over a whole history table takes seconds.

    Past the cap the admin shows CAP rows' worth of pages; filters narrow further.
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        try:
            # Without the list's ORDER BY: counting rows in id order would make a filter on a rare
            # value (trigger=rerun) walk the primary key backwards instead of using its own index.
            return self.object_list.order_by()[: self.CAP + 1].count()
        except (AttributeError, TypeError):
            return len(self.object_list)


class LinesField(forms.CharField):
    """A list typed as one item per line (modules, e-mail addresses)."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 60})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        text = super().to_python(value) or ""
        return [line.strip() for line in text.splitlines() if line.strip()]

    def has_changed(self, initial, data):
        return self.to_python(initial or []) != self.to_python(data)


class GatedJSONField(forms.JSONField):
    """JSON typed into a form, through the one input gate (jobs.input_gate): NUL, lone surrogates
    (`"\\udc00"` is valid JSON) and deep nesting are a form error, not a 500 or a broken row."""

    def to_python(self, value):
        try:
            data = super().to_python(value)
        except RecursionError:
            raise ValidationError(f"{self.label or 'The value'} is nested too deeply.", code="invalid") from None
        found = input_problem(data)
        if found:
            path, message = found
            raise ValidationError(f"{path}: {message}" if path else message, code="invalid")
        return data

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)

    def prepare_value(self, value):
        if isinstance(value, InvalidJSONInput) or input_problem(value) is None:
            return super().prepare_value(value)
        # A refused value is shown escaped (\\udc00, \\u0000), so the page itself can be encoded.
        try:
            return json.dumps(value, ensure_ascii=True, cls=self.encoder)
        except (RecursionError, TypeError, ValueError):
            return ""


def format_duration(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def elapsed_html(start, end, *, now=None):
    """A duration for a list or page: fixed once `end` is set; while running, the time so far in a
    span that the console script keeps ticking (`data-elapsed-since`)."""
    from django.utils import timezone
    from django.utils.html import format_html

    if start is None:
        return "—"
    if end is not None:
        return format_duration(end - start)
    so_far = (now or timezone.now()) - start
    return format_html('<span class="jtb-elapsed" data-elapsed-since="{}" title="running for">{}</span>',
                       start.isoformat(), format_duration(so_far))


def date_time_html(moment):
    """Date, then time with seconds and zone, which may wrap onto two lines in a narrow column."""
    from django.utils import timezone
    from django.utils.html import format_html

    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    return format_html('<span class="jtb-nowrap">{}</span> <span class="jtb-nowrap">{}</span>',
                       local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S %Z"))

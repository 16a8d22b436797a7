"""Inline SVG charts for the admin pages: no chart library, nothing loaded from elsewhere."""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from jobtarget_batch.admin_tools import format_duration
from processes.run_history import DurationSeries

WIDTH, HEIGHT, LEFT, TOP, BOTTOM = 640, 170, 56, 10, 20


def duration_chart_svg(series: DurationSeries) -> SafeString:
    """One bar per run (coloured by status, linking to the run) with dashed p50 and p95 lines."""
    if not series.points:
        return mark_safe('<p class="jtb-muted">No finished runs yet.</p>')
    top = max(point.seconds for point in series.points) or 1.0
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(series.points)
    bar = max(min(slot * 0.7, 24.0), 1.0)  # a few runs still look like bars, not blocks

    def y(seconds: float) -> float:
        return TOP + plot_h - seconds / top * plot_h

    bars = format_html_join(
        "",
        '<a href="{}"><rect class="jtb-bar jtb-s-{}" x="{}" y="{}" width="{}" height="{}">'
        "<title>#{}: {} ({})</title></rect></a>",
        (
            (reverse("admin:processes_process_change", args=[point.process_id]), point.status,
             _n(LEFT + index * slot + (slot - bar) / 2), _n(y(point.seconds)), _n(bar),
             _n(max(TOP + plot_h - y(point.seconds), 1.0)), point.process_id, point.status, format_duration_s(point.seconds))
            for index, point in enumerate(series.points)
        ),
    )
    lines = format_html_join(
        "",
        '<line class="jtb-{}" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
        '<text class="jtb-axis" x="{}" y="{}" text-anchor="end">{} {}</text>',
        (
            (name, LEFT, WIDTH - 8, _n(y(value)), _n(y(value)), LEFT - 4, _n(y(value) + 4), name,
             format_duration_s(value))
            for name, value in (("p50", series.p50), ("p95", series.p95)) if value is not None
        ),
    )
    return format_html(
        '<svg class="jtb-chart" id="jtb-duration-chart" viewBox="0 0 {} {}" role="img" '
        'aria-label="Duration of the last {} finished runs">'
        '<line class="jtb-axis-line" x1="{}" x2="{}" y1="{}" y2="{}"></line>{}{}'
        '<text class="jtb-axis" x="{}" y="{}">older</text>'
        '<text class="jtb-axis" x="{}" y="{}" text-anchor="end">newest</text></svg>',
        WIDTH, HEIGHT, len(series.points), LEFT, WIDTH - 8, TOP + plot_h, TOP + plot_h, bars, lines,
        LEFT, HEIGHT - 4, WIDTH - 8, HEIGHT - 4,
    )


def _n(value: float) -> str:
    # format_html escapes its arguments to strings first, so numbers are formatted before.
    return f"{value:.1f}"


def format_duration_s(seconds: float) -> str:
    from datetime import timedelta

    return format_duration(timedelta(seconds=seconds))

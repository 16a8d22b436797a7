"""The dashboard (the admin's home page for people who may see runs), its live JSON, and its
rerun button. Thin: the reads are in console.selectors, the rerun is processes.services."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from console import selectors
from console.charts import bar_chart
from processes.models import Process, ProcessStatus
from processes.services import ProcessRefused, process_rerun

RUN_PERMISSION = "jobs.run_job"
VIEW_PERMISSION = "processes.view_process"
STATUS_COLOURS = {
    ProcessStatus.QUEUED: "#8c959f",
    ProcessStatus.SUBMITTED: "#6e7781",
    ProcessStatus.RUNNING: "#1f6feb",
    ProcessStatus.SUCCEEDED: "#1a7f37",
    ProcessStatus.FAILED: "#cf222e",
    ProcessStatus.CANCELLED: "#bf8700",
}
# Bottom to top in a stacked bar: what ended well at the base, failures on top where they show.
STACK_ORDER = [ProcessStatus.SUCCEEDED, ProcessStatus.CANCELLED, ProcessStatus.FAILED, ProcessStatus.RUNNING,
               ProcessStatus.SUBMITTED, ProcessStatus.QUEUED]
LIVE_PARTS = ["summary", "running", "waiting", "failures"]


def can_see_dashboard(user) -> bool:
    return user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION)


def _bucket_label(start, window: selectors.ChartWindow) -> str:
    if window.bucket >= timedelta(days=1):
        return start.strftime("%d %b")
    if window.key == "24h":
        return start.strftime("%H:%M")
    return start.strftime("%a %H:%M")


def _tooltip_time(start, window: selectors.ChartWindow) -> str:
    fmt = "%a %d %b" if window.bucket >= timedelta(days=1) else "%a %d %b %H:%M"
    return f"{start.strftime(fmt)} {start.tzname()}"


def _trends(window: selectors.ChartWindow, now) -> dict:
    """The charts, kept JTB_CONSOLE_TRENDS_CACHE_SECONDS per window and zone: the 24-hour ones
    read a day of runs, the longer ones the hourly rollup (console.selectors); the live parts read
    only active runs and the last 24 hours."""
    return _cached(f"console:trends:{window.key}:{timezone.get_current_timezone_name()}", lambda: _charts(window, now))


def _cached(key: str, compute):
    seconds = settings.JTB_CONSOLE_TRENDS_CACHE_SECONDS
    if not seconds:
        return compute()
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, seconds)
    return value


def _charts(window: selectors.ChartWindow, now) -> dict:
    zone = timezone.get_current_timezone()
    trends = selectors.trends(window=window, now=now, zone=zone)
    buckets = trends.buckets
    label_every = max(1, len(buckets) // 8)
    status_labels = dict(ProcessStatus.choices)
    runs_chart = bar_chart(
        columns=[
            (_bucket_label(bucket.start, window),
             [(status_labels[status].lower(), bucket.counts.get(status, 0), STATUS_COLOURS[status])
              for status in STACK_ORDER],
             _tooltip_time(bucket.start, window))
            for bucket in buckets
        ],
        label_every=label_every,
    )
    totals = {status: sum(bucket.counts.get(status, 0) for bucket in buckets) for status in STACK_ORDER}
    concurrency = trends.concurrency
    concurrency_chart = bar_chart(
        columns=[
            (_bucket_label(start, window), [("at most at once", peak, "#8250df")], _tooltip_time(start, window))
            for start, peak in concurrency.peaks
        ],
        label_every=label_every,
    )
    slowest, failing = trends.slowest, trends.failing
    longest = max((job.value for job in slowest), default=0) or 1
    most = max((job.value for job in failing), default=0) or 1
    return {
        "runs_chart": runs_chart,
        "runs_total": sum(totals.values()),
        "legend": [(status_labels[status], STATUS_COLOURS[status], totals[status]) for status in STACK_ORDER],
        "concurrency": concurrency,
        "concurrency_chart": concurrency_chart,
        "slowest": [(job, round(100 * job.value / longest)) for job in slowest],
        "failing": [(job, round(100 * job.value / most)) for job in failing],
        "trends_at": now,
    }


def live_context(request, *, now=None) -> dict:
    """What the live parts of the dashboard show; the page and the JSON endpoint both use it."""
    now = now or timezone.now()
    active = selectors.active_runs()
    failures, failures_total = selectors.recent_failures(now=now)
    finished = selectors.finished_counts(now=now)
    return {
        "now": now,
        "active": active,
        "failures": failures,
        "failures_total": failures_total,
        "finished_24h": finished,
        "succeeded_24h": finished[ProcessStatus.SUCCEEDED],
        "cancelled_24h": finished[ProcessStatus.CANCELLED],
        "can_run": request.user.has_perm(RUN_PERMISSION),
        "cost_24h": selectors.cost_total(now=now),
    }


def dashboard_context(request) -> dict:
    window = selectors.CHART_WINDOWS.get(request.GET.get("range", ""), selectors.CHART_WINDOWS[selectors.DEFAULT_WINDOW])
    context = live_context(request)
    context.update({
        "window": window,
        "windows": list(selectors.CHART_WINDOWS.values()),
        "next_runs": selectors.next_scheduled_runs(),
        "live_url": reverse("admin:console_live"),
        "cost_currency": settings.JTB_COST_CURRENCY,
        **_trends(window, context["now"]),
    })
    return context


@require_GET
def dashboard_live(request):
    """The live parts as HTML fragments, and whether anything is still active (the page stops
    polling when not)."""
    if not can_see_dashboard(request.user):
        raise PermissionDenied
    context = live_context(request)
    context["cost_currency"] = settings.JTB_COST_CURRENCY
    parts = {
        part: render_to_string(f"console/parts/{part}.html", context, request=request) for part in LIVE_PARTS
    }
    return JsonResponse({
        "active": context["active"].any,
        "server_time": context["now"].isoformat(),
        "parts": parts,
    })


@require_POST
def dashboard_rerun(request, process_id: int):
    """Rerun a failed run from the dashboard, then come back to it."""
    if not request.user.has_perm(RUN_PERMISSION):
        raise PermissionDenied
    process = get_object_or_404(Process.objects.select_related("job"), pk=process_id)
    try:
        rerun = process_rerun(process=process, user=request.user)
    except ProcessRefused as exc:
        messages.warning(request, exc.message)
    else:
        url = reverse("admin:processes_process_change", args=[rerun.pk])
        messages.success(request, format_html(
            'Started rerun <a href="{}">#{}</a> of process #{} ({}).', url, rerun.pk, process.pk, process.job.name
        ))
    return HttpResponseRedirect(reverse("admin:index"))


# The site's icon, in the admin's header colour. Browsers ask for /favicon.ico on every first page
# view; without an answer each ask was a "Not Found" warning on `make run`'s quiet terminal.
FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="6" fill="#417690"/>'
    '<path d="M19 7v12.5a5 5 0 0 1-10 0" fill="none" stroke="#f5dd5d" stroke-width="4" stroke-linecap="round"/>'
    "</svg>"
)


@require_GET
def favicon(request):
    response = HttpResponse(FAVICON_SVG, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response

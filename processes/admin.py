"""Admin for runs: filter the history, open a process to see its tasks, reason and log; rerun or cancel."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from jobs.masking import environment_masked, user_may_read_environment
from jobs.models import Job
from jobs.permissions import user_may_act_on_process
from jobtarget_batch.admin_tools import CappedCountPaginator, date_time_html, elapsed_html, format_duration
from processes import admin_live
from processes.live import process_live_state, processes_live_state
from processes.models import ACTIVE_STATUSES, Process, ProcessStatus, Task, TaskStatus
from processes.search import process_search_filter, task_search_filter
from processes.selectors import process_log_tail_chunk
from processes.serializers import MAX_ID
from processes.services import ProcessRefused, process_cancel, process_rerun
from processes.timeline import process_timeline
from processes.tracebacks import reason_split, traceback_without_runner_frames

STATUS_COLOURS = {
    ProcessStatus.QUEUED: "#777",
    ProcessStatus.SUBMITTED: "#777",
    ProcessStatus.RUNNING: "#1f6feb",
    ProcessStatus.SUCCEEDED: "#1a7f37",
    ProcessStatus.FAILED: "#cf222e",
    ProcessStatus.CANCELLED: "#9a6700",
}


def status_badge(status: str, label: str):
    return format_html('<strong class="jtb-status jtb-s-{}" style="color:{}">{}</strong>', status,
                       STATUS_COLOURS.get(status, "#000"), label)


class ConsoleMedia:
    """The console's stylesheet and script (live updates, confirmations), served from this app."""

    css = {"all": ["processes/console.css"]}
    js = ["processes/console.js"]


class JobFilter(admin.SimpleListFilter):
    """Filter by job, listing jobs from the small jobs table rather than scanning processes."""

    title = "job"
    parameter_name = "job"

    def lookups(self, request, model_admin):
        return list(Job.objects.order_by("name").values_list("pk", "name")[:500])

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        # A hand-edited URL (?job=abc, ?job=99999999999999999999) matches nothing instead of a 500.
        if not value.isascii() or not value.isdigit() or int(value) > MAX_ID:
            return queryset.none()
        return queryset.filter(job_id=int(value))


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    can_delete = False
    # Tracebacks are shown full width below the steps (the change form template), not in a narrow cell.
    fields = ["sequence", "name", "status_badge", "started_at", "finished_at", "task_duration", "error"]
    readonly_fields = fields
    ordering = ["sequence"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="status")
    def status_badge(self, task: Task):
        return status_badge(task.status, task.get_status_display())

    @admin.display(description="duration")
    def task_duration(self, task: Task):
        return elapsed_html(task.started_at, task.finished_at) if task.status == TaskStatus.RUNNING else (
            format_duration(task.duration))


@admin.register(Process)
class ProcessAdmin(admin.ModelAdmin):
    # The trigger is a filter and on each run's page: its column went to the reason, which needs the room.
    list_display = ["id", "job", "status_badge", "created", "run_duration", "short_reason"]
    list_display_links = ["id"]
    list_filter = ["status", JobFilter, "trigger", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["job"]
    list_per_page = 50
    show_full_result_count = False
    # Facet counts are a COUNT(*) per filter choice over the whole history.
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    # The search itself is processes.search (get_search_results): every form reads an index.
    search_fields = ["=id"]
    search_help_text = ("An id (123), an executor id (pid:4242, a Batch job id), part of a job name or username, "
                        "or words of a recent failure reason; job:, user: or reason: searches only that.")
    date_hierarchy = None
    inlines = [TaskInline]
    actions = ["rerun", "cancel", "delete_selected"]
    fieldsets = [
        (None, {"fields": ["job", "status_badge", "failure_reason", "trigger", "triggered_by", "parameters", "rerun_of"]}),
        ("Times", {"fields": ["created_at", "submitted_at", "started_at", "finished_at", "run_duration", "heartbeat_at"]}),
        ("Execution", {"classes": ["collapse"], "fields": [
            "executor", "external_id", "executor_state", "executor_status_reason", "attempt", "exit_code",
            "schedule", "scheduled_for", "job_version", "snapshot_shown"]}),
    ]
    # The log comes after the tasks (see the change form template), so it is not in a fieldset.
    readonly_fields = [field for fieldset in fieldsets for field in fieldset[1]["fields"]] + ["snapshot_editor"]
    change_form_template = "admin/processes/process/change_form.html"
    Media = ConsoleMedia

    def get_search_results(self, request, queryset, search_term):
        return queryset.filter(process_search_filter(term=search_term)), False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Everything on a process is recorded by the system; the page is for reading and actions.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # An active run is cancelled, not deleted: its runner is still writing to it, and a worker
        # still counts it. Its page offers Cancel instead; the list's action refuses it (below).
        if obj is not None and not obj.is_finished:
            return False
        return super().has_delete_permission(request, obj)

    def has_run_permission(self, request, obj=None) -> bool:
        # What the API's rerun and cancel check: view processes and run jobs.
        return user_may_act_on_process(request.user)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if not user_may_read_environment(request.user):
            return fieldsets
        return [
            (title, {**options, "fields": ["snapshot_editor" if f == "snapshot_shown" else f for f in options["fields"]]})
            for title, options in fieldsets
        ]

    @admin.display(description="job settings used")
    def snapshot_shown(self, process: Process):
        return self._snapshot(process, reveal=False)

    @admin.display(description="job settings used")
    def snapshot_editor(self, process: Process):
        return self._snapshot(process, reveal=True)

    @staticmethod
    def _snapshot(process: Process, *, reveal: bool):
        # The run's environment follows the job's rule: values for editors, secret-named ones for no one.
        snapshot = dict(process.snapshot or {})
        if isinstance(snapshot.get("environment"), dict):
            snapshot["environment"] = environment_masked(snapshot["environment"], reveal=reveal)
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', json.dumps(snapshot, indent=2))

    @admin.display(description="status", ordering="status")
    def status_badge(self, process: Process):
        label = process.get_status_display()
        if process.held:
            label += " (waiting for the active run)"
        return status_badge(process.status, label)

    @admin.display(description="duration")
    def run_duration(self, process: Process):
        # A running process shows the time so far, ticking on the page.
        return elapsed_html(process.started_at, process.finished_at)

    @admin.display(description="created", ordering="created_at")
    def created(self, process: Process):
        # Compact and on one line, so the reason column fits beside the filters on a laptop screen.
        return date_time_html(process.created_at)

    @admin.display(description="reason")
    def short_reason(self, process: Process):
        reason = process.failure_reason
        # "Task 'transform' failed: ValueError: …" reads as "transform: ValueError: …" in a narrow
        # column; the cell shows up to three lines, the whole text is in its tooltip and on the page.
        step, error = reason_split(reason)
        short = f"{step}: {error}" if step is not None else reason
        return format_html('<span class="jtb-reason" title="{}">{}</span>', reason, short[:240])

    def log_tail(self, process: Process) -> dict:
        """The last 20 kB of the log and the offset the page follows on from."""
        try:
            chunk = process_log_tail_chunk(process=process)
        except Exception as exc:  # the log store (CloudWatch) may be unreachable; the page must still load
            return {"text": f"The log could not be read: {exc}", "next_offset": 0, "truncated": False}
        return {"text": chunk.text, "next_offset": chunk.next_offset,
                "truncated": len(chunk.text.encode("utf-8")) < chunk.next_offset}

    def get_urls(self):
        return [
            path("<int:process_id>/rerun/", self.admin_site.admin_view(self.rerun_view), name="processes_process_rerun"),
            path("<int:process_id>/cancel/", self.admin_site.admin_view(self.cancel_view),
                 name="processes_process_cancel"),
            *self.live_urls(),
            *super().get_urls(),
        ]

    def live_urls(self) -> list:
        def view(function):
            return self.admin_site.admin_view(lambda request, **kwargs: function(self, request, **kwargs))

        return [
            path("live/", view(admin_live.processes_live_view), name="processes_process_live_list"),
            path("<int:process_id>/live/", view(admin_live.process_live_view), name="processes_process_live"),
            path("<int:process_id>/log/", view(admin_live.process_log_follow_view), name="processes_process_log"),
            path("<int:process_id>/log/all/", view(admin_live.process_log_download_view),
                 name="processes_process_log_all"),
        ]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            # The page polls while one of its rows is active (processes/static/processes/console.js).
            state = processes_live_state(process_ids=[process.pk for process in changelist.result_list])
            response.context_data.update({"live_active": state["active"], "live_version": state["version"],
                                          "server_now": state["now"]})
        return response

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        can_run = bool(obj and self.has_run_permission(request, obj))
        context.update({
            "can_rerun": can_run and obj.status in (ProcessStatus.FAILED, ProcessStatus.CANCELLED),
            "can_cancel": can_run and not obj.is_finished,
            "log": self.log_tail(obj) if obj else {},
            "live": process_live_state(process_id=obj.pk) if obj else None,
            "timeline": process_timeline(process=obj) if obj else None,
            "tracebacks": [
                (task, traceback_without_runner_frames(task.traceback))
                for task in obj.tasks.exclude(traceback="").order_by("sequence")
            ] if obj else [],
        })
        return super().render_change_form(request, context, add, change, form_url, obj)

    @method_decorator(require_POST)
    def rerun_view(self, request, process_id: int):
        process = get_object_or_404(Process.objects.select_related("job"), pk=process_id)
        if not self.has_run_permission(request, process):
            raise PermissionDenied
        try:
            rerun = process_rerun(process=process, user=request.user)
        except ProcessRefused as exc:
            self.message_user(request, exc.message, messages.WARNING)
            return HttpResponseRedirect(reverse("admin:processes_process_change", args=[process.pk]))
        self.message_user(request, f"Started rerun #{rerun.pk} of process #{process.pk}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:processes_process_change", args=[rerun.pk]))

    @method_decorator(require_POST)
    def cancel_view(self, request, process_id: int):
        process = get_object_or_404(Process.objects.select_related("job"), pk=process_id)
        if not self.has_run_permission(request, process):
            raise PermissionDenied
        try:
            process_cancel(process=process, user=request.user)
        except ProcessRefused as exc:
            self.message_user(request, exc.message, messages.WARNING)
        else:
            self.message_user(request, f"Asked process #{process.pk} to stop.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:processes_process_change", args=[process.pk]))

    @admin.action(description="Rerun selected failed or cancelled processes", permissions=["run"])
    def rerun(self, request, queryset):
        started, refused = [], []
        for process in queryset.select_related("job"):
            try:
                started.append(process_rerun(process=process, user=request.user).pk)
            except ProcessRefused as exc:
                refused.append(exc.message)
        if started:
            self.message_user(
                request, f"Started {len(started)} rerun(s): " + ", ".join(f"#{pk}" for pk in started), messages.SUCCESS
            )
        for reason in refused:
            self.message_user(request, reason, messages.WARNING)

    @admin.action(description="Delete selected finished processes", permissions=["delete"])
    def delete_selected(self, request, queryset):
        """The stock delete action (confirmation page and all), refused whole if a run is still active."""
        active = list(queryset.filter(status__in=ACTIVE_STATUSES).order_by("pk").values_list("pk", flat=True)[:11])
        if active:
            shown = ", ".join(f"#{pk}" for pk in active[:10]) + (" and more" if len(active) > 10 else "")
            self.message_user(
                request, f"Nothing was deleted: {shown} {'is' if len(active) == 1 else 'are'} still active. "
                "Cancel a run and let it end first, or leave it out of the selection.", messages.ERROR,
            )
            return None
        return delete_selected(self, request, queryset)

    @admin.action(description="Cancel selected queued or running processes", permissions=["run"])
    def cancel(self, request, queryset):
        cancelled, refused = 0, []
        for process in queryset.select_related("job"):
            try:
                process_cancel(process=process, user=request.user)
                cancelled += 1
            except ProcessRefused as exc:
                refused.append(exc.message)
        if cancelled:
            self.message_user(request, f"Asked {cancelled} process(es) to stop.", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.WARNING)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "process", "sequence", "name", "status", "started_at", "task_duration"]
    list_filter = ["status"]
    list_select_related = ["process", "process__job"]
    raw_id_fields = ["process"]
    # The search itself is processes.search (get_search_results).
    search_fields = ["=process__id"]
    search_help_text = "A process id (its steps), or part of a step name among recent tasks."
    # Newest first; a status filter reads the partial index task_unsuccessful_newest_idx.
    ordering = ["-id"]
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    readonly_fields = ["process", "name", "sequence", "status", "started_at", "finished_at", "error", "traceback"]

    def get_search_results(self, request, queryset, search_term):
        return queryset.filter(task_search_filter(term=search_term)), False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="duration")
    def task_duration(self, task: Task) -> str:
        return format_duration(task.duration)

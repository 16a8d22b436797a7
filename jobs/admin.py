"""Admin for jobs: define a job, attach schedules, run it now, see its recent runs."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse, reverse_lazy
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from jobs import services
from jobs.admin_forms import (
    ScheduleAdminForm,
    TemplateInput,
    numeric_fields_use_one_message,
    template_must_exist,
)
from jobs.history import versions_list
from jobs.masking import environment_masked, user_may_read_environment
from jobs.models import RUN_COUNT_CAP, Job, Schedule, ScheduleDriver
from jobs.permissions import user_may_run_job
from jobtarget_batch.admin_tools import GatedJSONField, LinesField, date_time_html, format_duration
from jobtarget_batch.queries import capped_label
from processes.admin import ConsoleMedia, status_badge
from processes.admin_charts import duration_chart_svg
from processes.models import ACTIVE_STATUSES, Process, ProcessStatus, Trigger
from processes.run_history import LIST_DAYS, job_duration_series, job_figures, job_run_grid, jobs_list_rows
from processes.services import ProcessRefused, process_start
from runner.log_retention import log_remover

RECENT_RUNS = 10
# The delete confirmation counts a job's runs and tasks up to this many.
HISTORY_COUNT_CAP = 100_000
HISTORY_ROWS = 20
# The change reason kept in the audit history for changes made in the admin.
AUDIT_REASON = "admin"


def _short(value) -> str:
    text = "—" if value is None else json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:79] + "…"


class JobAdminForm(forms.ModelForm):
    # JSON typed by hand passes the one input gate (nesting, NUL, lone surrogates) as it is parsed.
    # initial=dict: a declared field does not take the model's default, and the Add form showed "null".
    parameters = GatedJSONField(
        required=False, initial=dict, label="Default parameters", help_text=Job._meta.get_field("parameters").help_text,
    )
    environment = GatedJSONField(
        required=False, initial=dict, label="Environment", help_text=Job._meta.get_field("environment").help_text
        + " Values of names containing SECRET, PASSWORD, TOKEN, CREDENTIAL, PRIVATE or ending in _KEY are "
        "masked; leave ******** to keep the stored value.",
    )
    tags = GatedJSONField(required=False, initial=dict, label="Tags", help_text=Job._meta.get_field("tags").help_text)
    python_modules = LinesField(
        required=False, label="Python modules",
        help_text=Job._meta.get_field("python_modules").help_text,
    )
    notify_emails = LinesField(
        required=False, label="Notification e-mails",
        help_text=Job._meta.get_field("notify_emails").help_text,
    )

    class Meta:
        model = Job
        fields = "__all__"
        widgets = {"template": TemplateInput(upload_url=reverse_lazy("admin:jobs_job_upload_template"))}

    def clean_template(self):
        template = (self.cleaned_data.get("template") or "").strip()
        # Checked when the path is typed or changed, so a job whose file went missing can still be disabled.
        if template and "template" in self.changed_data:
            template_must_exist(template)
        return template

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        numeric_fields_use_one_message(self)
        if self.instance.pk and isinstance(self.instance.environment, dict):
            # Editors see every value but the secret-named ones; jobs.services.job_save puts
            # a mask sent back unchanged back to the stored value.
            self.initial["environment"] = environment_masked(self.instance.environment, reveal=True)

    def clean_parameters(self):
        return self.cleaned_data.get("parameters") or {}

    def clean_environment(self):
        return self.cleaned_data.get("environment") or {}

    def clean_tags(self):
        return self.cleaned_data.get("tags") or {}


class ScheduleDisplay:
    """Read-only columns a schedule shows on the job page and on its own page."""

    @admin.display(description="in words")
    def in_words(self, schedule: Schedule) -> str:
        return schedule.cron_description if schedule.pk else "—"

    @admin.display(description="next five runs")
    def next_fires(self, schedule: Schedule):
        return _next_fires_html(schedule)


def _next_fires_html(schedule: Schedule):
    if schedule.pk is None or not schedule.enabled:
        return "—"
    try:
        times = schedule.next_fire_times(count=5)
    except Exception as exc:  # an invalid cron typed before saving; the form shows the error
        return f"({exc})"
    if not times:
        return "No more runs (past its end)."
    return format_html_join(mark_safe("<br>"), "{}", ((t.strftime("%a %Y-%m-%d %H:%M %Z"),) for t in times))


class ScheduleInline(ScheduleDisplay, admin.TabularInline):
    model = Schedule
    form = ScheduleAdminForm
    extra = 0
    # The start and end dates, the last firing and EventBridge errors are on the schedule's own page
    # (the "change" link on each row): with them the table is wider than a laptop screen.
    fields = ["cron", "timezone", "driver", "enabled", "in_words", "next_fires"]
    readonly_fields = ["in_words", "next_fires"]
    show_change_link = True


@admin.register(Schedule)
class ScheduleAdmin(ScheduleDisplay, admin.ModelAdmin):
    form = ScheduleAdminForm
    Media = ConsoleMedia
    # Compact columns so the list fits a laptop screen; the full driver and firing history are on each page.
    list_display = ["cron_and_zone", "job", "in_words", "driver_short", "enabled", "next_fire", "runs_started_count"]
    list_display_links = ["cron_and_zone"]
    list_filter = ["enabled", "driver"]
    list_select_related = ["job"]
    # Each row counts its runs (up to RUN_COUNT_CAP on an index): 50 rows keep the page quick.
    list_per_page = 50
    search_fields = ["job__name", "cron", "description"]
    autocomplete_fields = ["job"]
    readonly_fields = ["in_words", "next_fires", "next_fire_at", "last_fired_at", "runs", "remote_synced_at",
                       "remote_error", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["job", "cron", "in_words", "timezone", "enabled", "driver", "start_at", "end_at",
                           "description"]}),
        ("Firing", {"fields": ["next_fires", "next_fire_at", "last_fired_at", "runs", "remote_synced_at",
                               "remote_error"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).with_run_counts()

    def save_model(self, request, obj, form, change):
        services.schedule_save(schedule=obj, user=request.user, reason=AUDIT_REASON)

    def delete_model(self, request, obj):
        services.schedule_delete(schedule=obj, user=request.user, reason=AUDIT_REASON)

    def delete_queryset(self, request, queryset):
        for schedule in queryset:
            services.schedule_delete(schedule=schedule, user=request.user, reason=AUDIT_REASON)


    @admin.display(description="cron", ordering="cron")
    def cron_and_zone(self, schedule: Schedule):
        return format_html('<code class="jtb-nowrap">{}</code><br><span class="jtb-muted">{}</span>',
                           schedule.cron, schedule.timezone)

    @admin.display(description="driver", ordering="driver")
    def driver_short(self, schedule: Schedule) -> str:
        return "EventBridge" if schedule.driver == ScheduleDriver.EVENTBRIDGE else "beat"

    @admin.display(description="next fire", ordering="next_fire_at")
    def next_fire(self, schedule: Schedule):
        return date_time_html(schedule.next_fire_at)

    @admin.display(description="runs started", ordering="runs_started_count")
    def runs_started_count(self, schedule: Schedule) -> str:
        return capped_label(schedule.runs_started_count, RUN_COUNT_CAP)

    @admin.display(description="runs it started")
    def runs(self, schedule: Schedule):
        if schedule.pk is None:
            return "—"
        recent = list(schedule.runs_started[:RECENT_RUNS])
        if not recent:
            return "None yet."
        return format_html_join(
            format_html("<br>"), "<a href=\"{}\">#{}</a> {} — {}",
            ((reverse("admin:processes_process_change", args=[p.pk]), p.pk,
              p.scheduled_for.strftime("%Y-%m-%d %H:%M %Z") if p.scheduled_for else "", p.get_status_display())
             for p in recent),
        )


class LastRunFilter(admin.SimpleListFilter):
    """Jobs by how their newest run went; like every admin filter it lives in the URL (?last_run=failed),
    so a filtered list can be bookmarked and shared. One index probe per job (process_job_newest_idx)."""

    title = "last run"
    parameter_name = "last_run"

    def lookups(self, request, model_admin):
        return [("failed", "Failed"), ("succeeded", "Succeeded"), ("cancelled", "Cancelled"),
                ("active", "Queued or running"), ("never", "Never run")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        newest = Process.objects.filter(job_id=OuterRef("pk")).order_by("-pk").values("status")[:1]
        queryset = queryset.annotate(newest_status=Subquery(newest))
        if value == "never":
            return queryset.filter(newest_status__isnull=True)
        if value == "active":
            return queryset.filter(newest_status__in=ACTIVE_STATUSES)
        return queryset.filter(newest_status=value)


class TemplateUploadForm(forms.Form):
    file = forms.FileField(
        label="Template file",
        help_text="A Python file with a main(ctx) function, e.g. nightly_report.py. It is stored in S3 for AWS Batch "
        "runs, or under the template folder for local runs.",
    )


class RunForm(forms.Form):
    parameters = GatedJSONField(
        required=False, initial=dict,
        help_text="Parameters for this run as JSON; they override the job's defaults, e.g. {\"since\": \"2024-01-01\"}.",
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60}),
    )


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    form = JobAdminForm
    inlines = [ScheduleInline]
    list_display = ["job_name", "last_run", "next_run", "runs_7d", "success_7d", "median_7d", "running_now"]
    list_display_links = ["job_name"]
    list_filter = [LastRunFilter, "enabled", "concurrency_policy"]
    search_fields = ["name", "description", "template"]
    readonly_fields = ["created_at", "updated_at", "environment_masked", "versions"]
    actions = ["run_now"]
    # The run history (grid, chart, figures) heads the change page: admin/jobs/job/change_form.html.
    fieldsets = [
        (None, {"fields": ["name", "description", "enabled", "template", "python_modules"]}),
        ("Resources", {"fields": ["vcpus", "memory_mib", "gpus", "timeout_seconds", "retry_attempts", "queue"]}),
        ("Runs", {"fields": ["parameters", "environment", "concurrency_policy", "notify_emails", "tags"]}),
        ("History", {"fields": ["versions", "created_at", "updated_at"]}),
    ]
    Media = ConsoleMedia

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if user_may_read_environment(request.user):
            return fieldsets
        # Viewers see the names of the environment, never the values (jobs.masking).
        return [
            (title, {**options, "fields": ["environment_masked" if f == "environment" else f for f in options["fields"]]})
            for title, options in fieldsets
        ]

    @admin.display(description="environment")
    def environment_masked(self, obj: Job):
        shown = environment_masked(obj.environment or {}, reveal=False) if obj.pk else {}
        return format_html("<code>{}</code>", json.dumps(shown)) if shown else "—"

    @admin.display(description="changes (newest first)")
    def versions(self, obj: Job):
        if obj.pk is None:
            return "—"
        # Environment values are masked in the history too: only names and "changed" show.
        versions = versions_list(history_queryset=Job.history.filter(id=obj.pk), can_see_environment=False,
                                 limit=HISTORY_ROWS)
        if not versions:
            return "No recorded changes yet."
        return format_html(
            '<table id="job-versions"><tr><th>Version</th><th>When</th><th>Who</th><th>From</th><th>What</th></tr>'
            "{}</table>",
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (f"#{version.history_id} {version.kind}", version.changed_at.strftime("%Y-%m-%d %H:%M:%S"),
                     version.changed_by or "system", version.reason or "—",
                     format_html_join(mark_safe("<br>"), "{}: {} → {}", (
                         (change.field, _short(change.before), _short(change.after)) for change in version.changes
                     )) if version.kind == "changed" else "")
                    for version in versions
                ),
            ),
        )

    def save_model(self, request, obj, form, change):
        services.job_save(job=obj, user=request.user, reason=AUDIT_REASON)
        if obj.template.startswith("s3://") and "template" in form.changed_data:
            self.message_user(
                request,
                f"The template {obj.template} is in S3 and was not checked now: a run fails with a clear reason "
                "if it cannot be read. Start a run to check it.",
                messages.WARNING,
            )

    # --- The list: one query per column for the page's jobs (processes.run_history.jobs_list_rows) ---
    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        jobs = list(changelist.result_list)  # evaluated once; the template iterates these same objects
        rows = jobs_list_rows(job_ids=[job.pk for job in jobs])
        for job in jobs:
            job.list_row = rows[job.pk]
        return changelist

    @admin.display(description="job", ordering="name")
    def job_name(self, job: Job):
        if job.enabled:
            return job.name
        return format_html('{} <span class="jtb-muted">(disabled)</span>', job.name)

    @admin.display(description="last run")
    def last_run(self, job: Job):
        row = job.list_row
        if row.last_status is None:
            return "never"
        return format_html('{}<br><span class="jtb-muted">{}</span>',
                           status_badge(row.last_status, ProcessStatus(row.last_status).label),
                           date_time_html(row.last_at))

    @admin.display(description="next run")
    def next_run(self, job: Job):
        if not job.enabled:
            return "—"
        next_at = job.list_row.next_run
        return date_time_html(next_at) if next_at else "—"

    @admin.display(description=f"runs ({LIST_DAYS} d)")
    def runs_7d(self, job: Job) -> int:
        return job.list_row.runs

    @admin.display(description=f"success ({LIST_DAYS} d)")
    def success_7d(self, job: Job) -> str:
        rate = job.list_row.success_rate
        return "—" if rate is None else f"{rate * 100:.0f} %"

    @admin.display(description=f"median ({LIST_DAYS} d)")
    def median_7d(self, job: Job) -> str:
        seconds = job.list_row.median_seconds
        return "—" if seconds is None else format_duration(timedelta(seconds=seconds))

    @admin.display(description="running")
    def running_now(self, job: Job):
        running = job.list_row.running
        if not running:
            return "0"
        url = reverse("admin:processes_process_changelist") + "?" + urlencode({"job": job.pk, "status__exact": "running"})
        return format_html('<a href="{}">{}</a>', url, running)

    def save_formset(self, request, form, formset, change):
        instances = formset.save(commit=False)
        for schedule in formset.deleted_objects:
            services.schedule_delete(schedule=schedule, user=request.user, reason=AUDIT_REASON)
        for schedule in instances:
            services.schedule_save(schedule=schedule, user=request.user, reason=AUDIT_REASON)
        formset.save_m2m()

    def get_deleted_objects(self, objs, request):
        """The confirmation page lists counts, not every run and task of the job's history."""
        jobs = list(objs)
        counts = services.job_history_counts(job_ids=[job.pk for job in jobs], cap=HISTORY_COUNT_CAP)
        summary = {
            "jobs": f"{len(jobs):,}",
            "schedules": f"{counts['schedules']:,}",
            "processes": capped_label(counts["processes"], HISTORY_COUNT_CAP),
            "tasks": capped_label(counts["tasks"], HISTORY_COUNT_CAP),
        }
        listed = [f"Job: {job.name}" for job in jobs]
        listed.append(f"Its runs (processes): {summary['processes']}, their tasks: {summary['tasks']}, "
                      f"schedules: {summary['schedules']}. A long history is deleted in the background.")
        return listed, summary, set(), []

    def delete_view(self, request, object_id, extra_context=None):
        if request.method == "POST":
            job = self.get_object(request, object_id)
            if job is not None and self.has_delete_permission(request, job):
                try:
                    deleted = services.job_delete(job=job, remove_logs=log_remover(), user=request.user, reason=AUDIT_REASON)
                except ProcessRefused as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                    return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))
                if deleted:
                    self.message_user(request, f"The job {job.name!r} was deleted.", messages.SUCCESS)
                else:
                    self.message_user(request, f"The job {job.name!r} is disabled; its runs are being deleted in "
                                      "the background, then the job.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:jobs_job_changelist"))
        return super().delete_view(request, object_id, extra_context)

    def delete_queryset(self, request, queryset):
        deleted, later, refused = 0, 0, []
        for job in queryset:
            try:
                if services.job_delete(job=job, remove_logs=log_remover(), user=request.user, reason=AUDIT_REASON):
                    deleted += 1
                else:
                    later += 1
            except ProcessRefused as exc:
                refused.append(exc.message)
        if later:
            self.message_user(request, f"{later} job(s) with a long history are disabled and being deleted in the "
                              "background.", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.ERROR)

    @admin.action(description="Run now", permissions=["run"])
    def run_now(self, request, queryset):
        started, refused = 0, []
        for job in queryset:
            try:
                process_start(job=job, trigger=Trigger.MANUAL, user=request.user)
                started += 1
            except (ProcessRefused, ValidationError) as exc:
                refused.append(getattr(exc, "message", None) or "; ".join(exc.messages))
        if started:
            self.message_user(request, f"Started {started} run(s).", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.WARNING)

    def has_run_permission(self, request, obj=None) -> bool:
        # What the API's POST jobs/{id}/run/ checks: view the job and run jobs.
        return user_may_run_job(request.user)

    # --- "Run now" page with parameters --------------------------------------------------------
    def get_urls(self):
        return [
            path("<int:job_id>/run/", self.admin_site.admin_view(self.run_view), name="jobs_job_run"),
            path("upload-template/", self.admin_site.admin_view(self.upload_template_view),
                 name="jobs_job_upload_template"),
            path("<int:job_id>/upload-template/", self.admin_site.admin_view(self.upload_template_view),
                 name="jobs_job_upload_job_template"),
            *super().get_urls(),
        ]

    def run_view(self, request, job_id: int):
        if not self.has_run_permission(request):
            raise PermissionDenied
        job = get_object_or_404(Job, pk=job_id)
        form = RunForm(request.POST or None, initial={"parameters": job.parameters})
        if request.method == "POST" and form.is_valid():
            try:
                process = process_start(
                    job=job, trigger=Trigger.MANUAL, user=request.user, parameters=form.cleaned_data["parameters"] or {}
                )
            except ProcessRefused as exc:
                form.add_error(None, exc.message)
            except ValidationError as exc:
                form.add_error("parameters", exc.messages)
            else:
                self.message_user(request, f"Started process #{process.pk} of {job.name}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:processes_process_change", args=[process.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Run {job.name}",
            "job": job,
            "form": form,
            "opts": self.model._meta,
            "defaults_json": json.dumps(job.parameters, indent=2),
        }
        return TemplateResponse(request, "admin/jobs/job/run.html", context)

    # Not atomic on purpose: the file goes to S3 first (a network call), then the job is saved in
    # its own short transaction by job_save.
    def upload_template_view(self, request, job_id: int | None = None):
        job = get_object_or_404(Job, pk=job_id) if job_id else None
        wants_json = "application/json" in request.headers.get("Accept", "")
        if job:
            allowed = self.has_change_permission(request, job)
        elif wants_json:  # the file picker beside the template field, on the Add and the Change form
            allowed = self.has_add_permission(request) or self.has_change_permission(request)
        else:
            allowed = self.has_add_permission(request)
        if not allowed:
            raise PermissionDenied
        form = TemplateUploadForm(request.POST or None, request.FILES or None)
        if wants_json and request.method == "POST" and job is None:
            return self._upload_template_json(form)
        if request.method == "POST" and form.is_valid():
            from runner.template_upload import template_store

            upload = form.cleaned_data["file"]
            try:
                uri = template_store(filename=upload.name, content=upload.read())
            except ValidationError as exc:
                form.add_error("file", exc.messages)
            else:
                if job is None:
                    self.message_user(request, f"Stored the template as {uri}.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:jobs_job_add") + "?" + urlencode({"template": uri}))
                job.template = uri
                services.job_save(job=job, user=request.user, reason=AUDIT_REASON)
                self.message_user(request, f"The job now runs the uploaded template {uri}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Upload a template for {job.name}" if job else "Upload a template for a new job",
            "job": job,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/jobs/job/upload_template.html", context)

    def _upload_template_json(self, form: TemplateUploadForm):
        """Store the file and answer with the path; the form it came from is saved by the user."""
        from runner.template_upload import template_store

        if not form.is_valid():
            return JsonResponse({"errors": [m for messages_ in form.errors.values() for m in messages_]}, status=400)
        upload = form.cleaned_data["file"]
        try:
            uri = template_store(filename=upload.name, content=upload.read())
        except ValidationError as exc:
            return JsonResponse({"errors": exc.messages}, status=400)
        return JsonResponse({"template": uri})

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj and obj.pk:
            context.update({
                "run_grid": (grid := job_run_grid(job=obj)),
                "grid_rows": list(zip(grid.steps, grid.rows, strict=True)),
                "duration_chart": duration_chart_svg(job_duration_series(job=obj)),
                "figures": job_figures(job=obj),
            })
        # Run now is not offered on a disabled job: it would only be refused.
        context["can_run"] = bool(obj and obj.pk and obj.enabled and self.has_run_permission(request, obj))
        context["can_upload"] = self.has_change_permission(request, obj) if obj and obj.pk else self.has_add_permission(request)
        return super().render_change_form(request, context, add, change, form_url, obj)

"""Admin for alerts: channels people manage, per-job rules and thresholds, and the read-only record
of alerts raised and of every delivery attempt."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from alerts.models import Alert, Channel, Delivery, DeliveryAttempt, JobAlertPolicy, JobAlertRule
from jobtarget_batch.admin_tools import CappedCountPaginator, LinesField


class ChannelForm(forms.ModelForm):
    url = forms.URLField(
        required=False, max_length=2000, assume_scheme="https", label="URL",
        help_text=Channel._meta.get_field("url").help_text,
    )
    emails = LinesField(
        required=False, label="E-mail addresses",
        help_text="E-mail only: who gets the messages, one address per line, e.g. oncall@example.com.",
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "url", "emails", "secret", "is_default", "enabled"]


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "is_default", "enabled", "updated_at"]
    list_filter = ["kind", "is_default", "enabled"]
    search_fields = ["name"]


@admin.register(JobAlertRule)
class JobAlertRuleAdmin(admin.ModelAdmin):
    """Which event of which job goes to which channel. A job with no rule sends everything to the
    default channels (and its failures to its notification e-mails, as always)."""

    list_display = ["job", "event", "channel"]
    list_filter = ["event", "channel"]
    list_select_related = ["job", "channel"]
    search_fields = ["job__name", "channel__name"]
    autocomplete_fields = ["job", "channel"]


@admin.register(JobAlertPolicy)
class JobAlertPolicyAdmin(admin.ModelAdmin):
    """Per-job limits; an empty field uses the system default (settings JTB_ALERT_*)."""

    list_display = ["job", "slow_after_seconds", "slow_p95_factor", "waiting_after_seconds", "failures_in_row"]
    list_select_related = ["job"]
    search_fields = ["job__name"]
    autocomplete_fields = ["job"]


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "at", "ok", "status_code", "duration_ms", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """The system writes these; people read them."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    list_per_page = 50

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["id", "event", "job", "process_link", "created_at"]
    list_filter = ["event"]
    list_select_related = ["job"]
    search_fields = ["=id", "=process__id"]
    fields = ["event", "job", "process_link", "schedule", "due_at", "created_at", "summary", "sent_in"]
    readonly_fields = fields

    @admin.display(description="process")
    def process_link(self, alert: Alert):
        if alert.process_id is None:
            return "—"
        return format_html('<a href="{}">#{}</a>', reverse("admin:processes_process_change", args=[alert.process_id]),
                           alert.process_id)

    @admin.display(description="sent in")
    def sent_in(self, alert: Alert):
        deliveries = alert.deliveries.order_by("pk")
        return format_html_join(
            ", ", '<a href="{}">#{} {} ({})</a>',
            ((reverse("admin:alerts_delivery_change", args=[d.pk]), d.pk, d.channel_name, d.get_status_display())
             for d in deliveries),
        ) or "—"


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "event", "job", "channel_name", "alert_count", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "event", "kind"]
    list_select_related = ["job"]
    search_fields = ["=id", "channel_name"]
    inlines = [DeliveryAttemptInline]
    fields = ["status", "event", "job", "channel", "channel_name", "kind", "created_at", "send_after", "attempts",
              "next_attempt_at", "sent_at", "last_error", "alert_list"]
    readonly_fields = fields

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(alert_total=Count("alerts"))

    @admin.display(description="alerts", ordering="alert_total")
    def alert_count(self, delivery: Delivery) -> int:
        return delivery.alert_total

    @admin.display(description="alerts in this message")
    def alert_list(self, delivery: Delivery):
        return format_html_join(
            "", '<div><a href="{}">#{}</a> {}</div>',
            ((reverse("admin:alerts_alert_change", args=[a.pk]), a.pk, a.summary.splitlines()[0])
             for a in delivery.alerts.order_by("pk")[:200]),
        )

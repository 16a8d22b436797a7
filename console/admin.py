"""Admin for the console's own settings (each person's time zone), and django-celery-beat's
models kept to superusers.

Beat's "Periodic tasks" hold this system's own upkeep (the schedule tick every few seconds, the
reaper, the Batch tracker): disabling one silently stops every schedule. Jobs are scheduled
with jobs.Schedule instead, so beat's models are hidden from everyone but superusers, and the
system's own entries (settings.CELERY_BEAT_SCHEDULE) cannot be changed even by them.
"""

from __future__ import annotations

from zoneinfo import available_timezones

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from console.models import UserPreferences
from console.viewer import viewer_time_zone_remember


def _time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(available_timezones()) if "/" in name or name == "UTC"]


class UserPreferencesForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        label="Time zone", choices=_time_zone_choices,
        help_text=UserPreferences._meta.get_field("time_zone").help_text,
    )

    class Meta:
        model = UserPreferences
        fields = ["time_zone"]


@admin.register(UserPreferences)
class UserPreferencesAdmin(admin.ModelAdmin):
    """Everyone who can sign in edits their own preferences; superusers see everyone's."""

    form = UserPreferencesForm
    list_display = ["user", "time_zone"]
    list_select_related = ["user"]

    def get_urls(self):
        return [
            path("mine/", self.admin_site.admin_view(self.mine_view), name="console_userpreferences_mine"),
            *super().get_urls(),
        ]

    def mine_view(self, request):
        """The signed-in person's own preferences: their change page, or the add page the first time."""
        pk = UserPreferences.objects.filter(user=request.user).values_list("pk", flat=True).first()
        if pk is None:
            return HttpResponseRedirect(reverse("admin:console_userpreferences_add"))
        return HttpResponseRedirect(reverse("admin:console_userpreferences_change", args=[pk]))

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    def _own(self, request, obj) -> bool:
        return obj is None or obj.user_id == request.user.pk or request.user.is_superuser

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request) and self._own(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self.has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_view_permission(request, obj)

    def has_add_permission(self, request) -> bool:
        return self.has_module_permission(request) and not UserPreferences.objects.filter(user=request.user).exists()

    def get_initial_form_data(self, request):
        return {"time_zone": settings.TIME_ZONE}

    def get_changeform_initial_data(self, request):
        return {"time_zone": settings.TIME_ZONE}

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # One set of preferences per person: "Save and add another" would only lead to a refusal.
        context["show_save_and_add_another"] = False
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.user = request.user
        obj.full_clean(exclude=["user"])
        super().save_model(request, obj, form, change)
        if obj.user_id == request.user.pk:
            viewer_time_zone_remember(request, obj.time_zone)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        if obj.user_id == request.user.pk:
            viewer_time_zone_remember(request, "")

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, f"Times are now shown in {obj.time_zone}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:index"))

    def response_change(self, request, obj):
        self.message_user(request, f"Times are now shown in {obj.time_zone}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:index"))


def system_beat_entry_names() -> set[str]:
    return set(settings.CELERY_BEAT_SCHEDULE)


class SuperusersOnly:
    """Beat's models: not on the admin home, their pages refused, unless the person is a superuser."""

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser


class PeriodicTaskAdmin(SuperusersOnly, beat_admin.PeriodicTaskAdmin):
    """The system's own entries are read-only; the bulk actions leave them alone."""

    def _is_system(self, obj) -> bool:
        return obj is not None and obj.name in system_beat_entry_names()

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and not self._is_system(obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and not self._is_system(obj)

    def _without_system(self, request, queryset):
        names = system_beat_entry_names()
        skipped = list(queryset.filter(name__in=names).values_list("name", flat=True))
        if skipped:
            self.message_user(
                request, "Left alone (the system's own upkeep, set in settings): " + ", ".join(sorted(skipped)),
                messages.WARNING,
            )
        return queryset.exclude(name__in=names)

    def enable_tasks(self, request, queryset):
        return super().enable_tasks(request, self._without_system(request, queryset))

    def disable_tasks(self, request, queryset):
        return super().disable_tasks(request, self._without_system(request, queryset))

    def toggle_tasks(self, request, queryset):
        return super().toggle_tasks(request, self._without_system(request, queryset))

    def delete_queryset(self, request, queryset):
        return super().delete_queryset(request, self._without_system(request, queryset))


class SystemScheduleGuard(SuperusersOnly):
    """An interval or crontab that a system entry uses is read-only (editing it moves the tick)."""

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.periodictask_set.filter(name__in=system_beat_entry_names()).exists():
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_change_permission(request, obj)


_BEAT_ADMINS = {
    PeriodicTask: PeriodicTaskAdmin,
    IntervalSchedule: type("IntervalScheduleAdmin", (SystemScheduleGuard, beat_admin.IntervalScheduleAdmin), {}),
    CrontabSchedule: type("CrontabScheduleAdmin", (SystemScheduleGuard, beat_admin.CrontabScheduleAdmin), {}),
    SolarSchedule: type("SolarScheduleAdmin", (SystemScheduleGuard, beat_admin.SolarScheduleAdmin), {}),
    ClockedSchedule: type("ClockedScheduleAdmin", (SystemScheduleGuard, beat_admin.ClockedScheduleAdmin), {}),
}
for _model, _admin_class in _BEAT_ADMINS.items():
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin_class)

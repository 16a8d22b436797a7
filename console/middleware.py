"""Activates the signed-in person's time zone for the request, so the admin shows times and
reads date filters in it (Django converts aware datetimes to the active zone)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

# The zone is kept in the session so that a page costs no extra query; saving the preferences
# in the admin refreshes it (console.admin), other sessions pick it up at their next sign-in.
SESSION_KEY = "console_time_zone"


def viewer_time_zone_remember(request, zone_name: str) -> None:
    if hasattr(request, "session"):
        request.session[SESSION_KEY] = zone_name


def _viewer_time_zone_name(request) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    session = getattr(request, "session", None)
    if session is not None and SESSION_KEY in session:
        return session[SESSION_KEY] or None
    from console.models import UserPreferences

    name = UserPreferences.objects.filter(user_id=user.pk).values_list("time_zone", flat=True).first() or ""
    if session is not None:
        session[SESSION_KEY] = name  # "" = no preference: the settings' TIME_ZONE
    return name or None


class ViewerTimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = _viewer_time_zone_name(request)
        zone = None
        if name:
            try:
                zone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):  # a zone removed from tzdata since it was saved
                zone = None
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

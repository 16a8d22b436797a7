"""Activates the signed-in person's time zone for the request, so the admin shows times and
reads date filters in it (Django converts aware datetimes to the active zone)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

from console.models import UserPreferences
from console.viewer import SESSION_KEY


def _viewer_time_zone_name(request) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    session = getattr(request, "session", None)
    if session is not None and SESSION_KEY in session:
        return session[SESSION_KEY] or None
    # Other sessions of the same person pick up a changed zone at their next sign-in.
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

"""Where the signed-in person's time zone is kept between requests: in their session, so a page
costs no query for it (console.middleware reads it, the preferences admin refreshes it)."""

from __future__ import annotations

SESSION_KEY = "console_time_zone"


def viewer_time_zone_remember(request, zone_name: str) -> None:
    """Remember `zone_name` for this session; "" means "no preference: the settings' TIME_ZONE"."""
    if hasattr(request, "session"):
        request.session[SESSION_KEY] = zone_name

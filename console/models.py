"""Per-person settings of the console: the time zone times are shown in."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def _default_time_zone() -> str:
    return settings.TIME_ZONE


class UserPreferences(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="console_preferences",
        verbose_name="user",
    )
    time_zone = models.CharField(
        "time zone", max_length=64, default=_default_time_zone,
        help_text="The IANA time zone the admin shows times in and date filters use, "
        "e.g. Europe/Berlin or America/New_York.",
    )

    class Meta:
        verbose_name = "my preferences"
        verbose_name_plural = "my preferences"

    def __str__(self) -> str:
        return f"Preferences of {self.user}"

    def clean(self) -> None:
        from jobs import cron

        try:
            self.time_zone = cron.validate_timezone(self.time_zone)
        except ValidationError as exc:
            raise ValidationError({"time_zone": exc.messages}) from None

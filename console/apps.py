"""The console app (dashboard, viewer settings) and the admin configuration that makes the
dashboard the admin's home page."""

from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConsoleConfig(AppConfig):
    # `console.apps` also holds ConsoleAdminConfig: this one is what "console" names.
    default = True
    name = "console"
    verbose_name = "Console"
    default_auto_field = "django.db.models.BigAutoField"


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with console.sites.ConsoleAdminSite as `admin.site`."""

    default = False
    default_site = "console.sites.ConsoleAdminSite"

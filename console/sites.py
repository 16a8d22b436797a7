"""The admin site: the stock Django admin whose home page is the operations console.

Stock admin templates rather than a theme package: people already know its look, every model
page keeps working unchanged, and there is no theme release to keep pace with. People without
permission to see runs get the stock index.
"""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path

from console import views


class ConsoleAdminSite(admin.AdminSite):
    site_header = "JobTarget Batch"
    site_title = "JobTarget Batch"
    index_title = "Operations console"

    def index(self, request, extra_context=None):
        if not views.can_see_dashboard(request.user):
            return super().index(request, extra_context)
        context = {
            **self.each_context(request),
            "title": self.index_title,
            "subtitle": None,
            "app_list": self.get_app_list(request),
            **views.dashboard_context(request),
            **(extra_context or {}),
        }
        request.current_app = self.name
        return TemplateResponse(request, "console/dashboard.html", context)

    def get_urls(self):
        return [
            path("console/live/", self.admin_view(views.dashboard_live), name="console_live"),
            path("console/rerun/<int:process_id>/", self.admin_view(views.dashboard_rerun), name="console_rerun"),
            *super().get_urls(),
        ]

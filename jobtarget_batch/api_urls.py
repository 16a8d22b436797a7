"""URLs of the REST API: the resources under /api/v1/, and the OpenAPI schema with its viewers."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from jobs.api import JobViewSet, ScheduleViewSet
from jobtarget_batch.api.auth import AuthTokenView
from processes.api import ProcessViewSet, RunsView

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.include_format_suffixes = False
router.register("jobs", JobViewSet, basename="job")
router.register("schedules", ScheduleViewSet, basename="schedule")
router.register("processes", ProcessViewSet, basename="process")

v1 = [
    path("auth/token/", AuthTokenView.as_view(), name="auth-token"),
    path("runs/", RunsView.as_view(), name="runs"),
    *router.urls,
]

urlpatterns = [
    path("v1/", include((v1, "api"), namespace="v1")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Served with the page's own template: drf-spectacular's links Google Fonts (the docs work offline).
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema", template_name="console/api_redoc.html"),
         name="api-redoc"),
]

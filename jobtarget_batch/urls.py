"""Top-level URLs: the admin at /admin/ (and /), the REST API under /api/, Prometheus at /metrics.

/healthz and /readyz are answered by monitoring.health.HealthCheckMiddleware before routing."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from console.views import favicon
from monitoring.views import metrics

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", include("jobtarget_batch.api_urls")),
    path("metrics", metrics, name="metrics"),
    path("favicon.ico", favicon, name="favicon"),
]

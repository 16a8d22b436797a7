"""The /metrics endpoint: Prometheus text format, behind a scrape token and/or network list."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from monitoring.metrics import DatabaseCollector, text_format


def scrape_refusal(request) -> tuple[int, str] | None:
    """(status, reason) when this request may not read the metrics, else None."""
    networks = settings.JTB_METRICS_ALLOWED_NETWORKS
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return 403, "Scrapes are accepted from the networks in JTB_METRICS_ALLOWED_NETWORKS only.\n"
        if not any(address in ipaddress.ip_network(network, strict=False) for network in networks):
            return 403, "Scrapes are accepted from the networks in JTB_METRICS_ALLOWED_NETWORKS only.\n"
    token = settings.JTB_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return 401, "Send the scrape token as: Authorization: Bearer <JTB_METRICS_TOKEN>.\n"
    return None


@require_GET
def metrics(request):
    refusal = scrape_refusal(request)
    if refusal is not None:
        status, reason = refusal
        response = HttpResponse(reason, status=status, content_type="text/plain; charset=utf-8")
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(text_format(DatabaseCollector()), content_type=CONTENT_TYPE_LATEST)

"""`/api/v1/processes/` over a long history: creation filters read in (created_at, id) order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from processes.models import Process
from processes.tests.history import make_history

pytestmark = pytest.mark.django_db

URL = "/api/v1/processes/"


def follow(api, params: dict) -> list[int]:
    """Every id of the list, following `next` page by page."""
    ids, url = [], URL
    while url:
        response = api.get(url, params if url == URL else None)
        assert response.status_code == 200, response.json()
        ids += [item["id"] for item in response.json()["results"]]
        url = response.json()["next"]
    return ids


@pytest.fixture
def history(make_job):
    job = make_job()
    now = timezone.now()
    runs = []
    # Several runs per instant, so pages split ties in created_at; ids out of creation order too.
    for days in (40, 3, 30, 20, 10, 2, 1):
        batch = make_history(job, 3, tasks=0)
        Process.objects.filter(pk__in=[run.pk for run in batch]).update(created_at=now - timedelta(days=days))
        runs += [(now - timedelta(days=days), run.pk) for run in batch]
    return sorted(runs, reverse=True)


def test_created_before_pages_newest_first_through_ties_without_gaps_or_repeats(api, history):
    cutoff = timezone.now() - timedelta(days=15)
    expected = [pk for created, pk in history if created < cutoff]

    assert follow(api, {"created_before": cutoff.isoformat(), "page_size": 2}) == expected


def test_created_after_pages_newest_first(api, history):
    cutoff = timezone.now() - timedelta(days=25)
    expected = [pk for created, pk in history if created >= cutoff]

    assert follow(api, {"created_after": cutoff.isoformat(), "page_size": 4}) == expected


def test_creation_filters_order_by_creation_time_then_id(api, history):
    with CaptureQueriesContext(connection) as queries:
        api.get(URL, {"created_before": timezone.now().isoformat()})
    page = [q["sql"] for q in queries if "processes_process" in q["sql"]]
    assert len(page) == 1
    sql = page[0].upper().replace('"', "")
    # The list reads values(): Django may name the ORDER BY columns by their place in the SELECT.
    selected = [column.split(" AS ")[0] for column in sql.split(" FROM ")[0].removeprefix("SELECT ").split(", ")]
    order, limit = sql.rsplit("ORDER BY ", 1)[1].split(" LIMIT ")
    terms = [term.split() for term in order.split(", ")]
    resolved = [(selected[int(name) - 1] if name.isdigit() else name, direction) for name, direction in terms]
    assert resolved == [("PROCESSES_PROCESS.CREATED_AT", "DESC"), ("PROCESSES_PROCESS.ID", "DESC")]
    assert limit == "51"


def test_a_crafted_cursor_position_is_a_400(api, history):
    import base64

    for ordering_filter, position in [({}, "2026-01-01"), ({"created_before": "2030-01-01T00:00:00Z"}, "123abc")]:
        cursor = base64.b64encode(f"p={position}".encode()).decode()
        response = api.get(URL, {**ordering_filter, "cursor": cursor})
        assert response.status_code == 400, response.json()
        assert "cursor" in response.json()["errors"]

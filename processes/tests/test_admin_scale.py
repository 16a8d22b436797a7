"""Admin lists over a long history: queries do not grow with the page, and no count reads it all.

The SQL of each list is captured: any COUNT over the history tables must be capped (it counts a
sub-select with LIMIT), and no query may group the history (a full-table aggregate).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs.models import Schedule
from processes.models import ProcessStatus, Trigger
from processes.tests.history import make_history

pytestmark = pytest.mark.django_db

HISTORY_TABLES = ("processes_process", "processes_task")

LISTS = [
    ("admin:processes_process_changelist", {}),
    ("admin:processes_process_changelist", {"q": "nightly"}),
    ("admin:processes_process_changelist", {"q": "pid:12"}),
    ("admin:processes_process_changelist", {"trigger__exact": "rerun"}),
    ("admin:processes_process_changelist", {"status__exact": "failed"}),
    ("admin:processes_task_changelist", {}),
    ("admin:processes_task_changelist", {"status__exact": "running"}),
    ("admin:processes_task_changelist", {"q": "step"}),
    ("admin:jobs_schedule_changelist", {}),
    ("admin:jobs_job_changelist", {}),
]


@pytest.fixture
def history(make_job):
    jobs = [make_job(name=f"nightly {i}") for i in range(3)]
    for job in jobs:
        schedule = Schedule.objects.create(job=job, cron="* * * * *", timezone="UTC")
        runs = make_history(job, 4, trigger=Trigger.SCHEDULE, schedule=schedule)
        for minute, run in enumerate(runs):
            type(run).objects.filter(pk=run.pk).update(scheduled_for=run.created_at.replace(minute=minute))
        make_history(job, 1, status=ProcessStatus.FAILED, trigger=Trigger.RERUN, failure_reason="boom")
    return jobs


def list_sql(client, name: str, params: dict) -> list[str]:
    client.get(reverse(name), params)  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(name), params)
    assert response.status_code == 200
    return [query["sql"] for query in queries]


def reads_history(sql: str) -> bool:
    return any(f'"{table}"' in sql or f"`{table}`" in sql or f" {table} " in sql for table in HISTORY_TABLES)


@pytest.mark.parametrize(("name", "params"), LISTS)
def test_no_admin_list_counts_or_groups_the_whole_history(admin_client, history, name, params):
    for sql in filter(reads_history, list_sql(admin_client, name, params)):
        upper = sql.upper()
        # A group is allowed only over the page's own jobs within a time window (the jobs list's
        # 7-day columns): never over the whole history.
        page_window = '"JOB_ID" IN (' in upper and (
            '"CREATED_AT" >=' in upper or "\"STATUS\" IN ('QUEUED', 'SUBMITTED', 'RUNNING')" in upper
        )
        assert "GROUP BY" not in upper or page_window, sql
        if page_window:
            continue
        for count in re.finditer(r"COUNT\(", upper):
            # Every COUNT over the history counts a capped sub-select: "(SELECT ... LIMIT n)".
            assert "LIMIT" in upper[count.start():], sql


@pytest.mark.parametrize(("name", "params"), LISTS)
def test_admin_list_queries_stay_flat_with_the_page_size(admin_client, history, name, params, monkeypatch):
    from django.contrib import admin

    from jobs.models import Job
    from processes.models import Process, Task

    model = {"processes_process": Process, "processes_task": Task, "jobs_schedule": Schedule, "jobs_job": Job}[name.split(":")[1].rsplit("_", 1)[0]]
    model_admin = admin.site._registry[model]
    monkeypatch.setattr(model_admin, "list_per_page", 2)
    few = len(list_sql(admin_client, name, params))
    monkeypatch.setattr(model_admin, "list_per_page", 100)
    many = len(list_sql(admin_client, name, params))
    assert few == many


def test_schedule_list_caps_its_run_counts(admin_client, history, monkeypatch):
    import jobs.admin
    import jobs.models

    monkeypatch.setattr(jobs.models, "RUN_COUNT_CAP", 3)
    monkeypatch.setattr(jobs.admin, "RUN_COUNT_CAP", 3)
    body = admin_client.get(reverse("admin:jobs_schedule_changelist")).content.decode()
    assert body.count("more than 3") == 3

    monkeypatch.setattr(jobs.models, "RUN_COUNT_CAP", 10)
    monkeypatch.setattr(jobs.admin, "RUN_COUNT_CAP", 10)
    response = admin_client.get(reverse("admin:jobs_schedule_changelist"))
    assert [s.runs_started_count for s in response.context["cl"].result_list] == [4, 4, 4]


def test_schedule_page_lists_its_runs_newest_tick_first(admin_client, history):
    schedule = Schedule.objects.first()
    runs = list(schedule.runs_started)
    assert [run.scheduled_for for run in runs] == sorted((run.scheduled_for for run in runs), reverse=True)
    body = admin_client.get(reverse("admin:jobs_schedule_change", args=[schedule.pk])).content.decode()
    assert all(f"#{run.pk}" in body for run in runs)


def test_task_list_shows_the_newest_tasks_first(admin_client, history):
    response = admin_client.get(reverse("admin:processes_task_changelist"))
    shown = [task.pk for task in response.context["cl"].result_list]
    assert shown == sorted(shown, reverse=True)


# The console's pages and /metrics: what the history benchmark times at a million runs.
CONSOLE_PAGES = [
    ("admin:index", {"range": "24h"}),
    ("admin:index", {"range": "7d"}),
    ("admin:index", {"range": "30d"}),
    ("admin:console_live", {}),
    ("admin:jobs_job_changelist", {}),
    ("admin:jobs_job_change", "job"),
    ("metrics", {}),
]
AGGREGATE = re.compile(r"\b(COUNT|SUM|AVG|MAX|MIN)\(|GROUP BY")
# What bounds an aggregate over the history: a time window, the few active runs, one job or the
# jobs of a page, or a capped sub-select.
BOUNDS = ('"CREATED_AT" >=', '"FINISHED_AT" >=', "IN ('QUEUED', 'SUBMITTED', 'RUNNING')", "\"STATUS\" = 'RUNNING'",
          '"JOB_ID" = ', '"JOB_ID" IN (')


@pytest.mark.parametrize(("name", "params"), CONSOLE_PAGES)
def test_console_pages_and_metrics_aggregate_no_unbounded_history(admin_client, history, name, params, settings):
    settings.JTB_CONSOLE_TRENDS_CACHE_SECONDS = 0  # every view computes its trends
    settings.JTB_METRICS_TOKEN = ""
    if params == "job":
        url, params = reverse(name, args=[history[0].pk]), {}
    else:
        url = "/metrics" if name == "metrics" else reverse(name)
    admin_client.get(url, params)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url, params)
    assert response.status_code == 200
    history_aggregates = [q["sql"] for q in queries if reads_history(q["sql"]) and AGGREGATE.search(q["sql"].upper())]
    for sql in history_aggregates:
        upper = sql.upper()
        assert any(bound in upper for bound in BOUNDS) or re.search(r"COUNT\(.*LIMIT", upper), sql
    if name == "metrics" or params.get("range") in ("7d", "30d"):
        # Counters and the long trends come from the rollups: over the history only the active runs
        # are counted, and (dashboard) the live figures of the last 24 hours.
        day_ago = timezone.now() - timedelta(hours=25)
        for sql in history_aggregates:
            upper = sql.upper()
            if "IN ('QUEUED', 'SUBMITTED', 'RUNNING')" in upper or "\"STATUS\" = 'RUNNING'" in upper:
                continue
            since = re.findall(r'"(?:FINISHED_AT|CREATED_AT)" >= \'([^\']+)\'', upper)
            assert name != "metrics" and since, sql
            assert all(datetime.fromisoformat(value).replace(tzinfo=UTC) >= day_ago for value in since), sql

"""The dashboard's reads: stages of active runs, windows in the viewer's zone, concurrency, and
that each query can be served by an index (PostgreSQL's plans with sequential scans turned off)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import require_service
from console import selectors
from jobs.models import Schedule
from processes.models import Process, ProcessStatus, Task, TaskStatus, Trigger

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


def _run(job, status, *, created=None, started=None, finished=None, **fields) -> Process:
    process = Process.objects.create(job=job, status=status, trigger=Trigger.MANUAL, snapshot={}, **fields)
    Process.objects.filter(pk=process.pk).update(
        created_at=created or started or NOW, started_at=started, finished_at=finished
    )
    process.refresh_from_db()
    return process


@pytest.mark.parametrize(("status", "fields", "task", "stage"), [
    (ProcessStatus.QUEUED, {"held": True}, None, "Waiting for the job's active run to end"),
    (ProcessStatus.SUBMITTED, {"executor": "local"}, None, "Waiting for a free local slot"),
    (ProcessStatus.SUBMITTED, {"executor": "aws_batch", "executor_state": "RUNNABLE"}, None,
     "Waiting for capacity (AWS Batch: RUNNABLE)"),
    (ProcessStatus.SUBMITTED, {"executor": "aws_batch", "executor_state": "STARTING"}, None, "Starting the container"),
    (ProcessStatus.RUNNING, {}, None, "Starting"),
    (ProcessStatus.RUNNING, {}, {"name": "install modules", "sequence": 1, "status": TaskStatus.RUNNING},
     "Installing modules"),
    (ProcessStatus.RUNNING, {}, {"name": "load", "sequence": 3, "status": TaskStatus.RUNNING}, "Running step 3: load"),
])
def test_stage_says_where_an_active_run_is(status, fields, task, stage):
    process = Process(status=status, **fields)
    assert selectors.run_stage(process=process, latest_task=task) == stage


def test_active_runs_split_running_from_waiting_and_name_the_latest_step(make_job):
    job = make_job()
    running = _run(job, ProcessStatus.RUNNING, started=NOW)
    for sequence, name, status in [(1, "extract", TaskStatus.SUCCEEDED), (2, "transform", TaskStatus.RUNNING)]:
        Task.objects.create(process=running, sequence=sequence, name=name, status=status, started_at=NOW)
    starting = _run(job, ProcessStatus.SUBMITTED, executor="aws_batch", executor_state="STARTING")
    runnable = _run(job, ProcessStatus.SUBMITTED, executor="aws_batch", executor_state="RUNNABLE")
    _run(job, ProcessStatus.SUCCEEDED, started=NOW, finished=NOW)

    active = selectors.active_runs()

    assert [run.id for run in active.running] == [starting.pk, running.pk]
    assert [run.id for run in active.waiting] == [runnable.pk]
    assert (active.running_count, active.waiting_count) == (2, 1)
    assert active.running[1].stage == "Running step 2: transform"


def test_recent_failures_are_the_last_24_hours_newest_first_with_the_failed_step(make_job):
    job = make_job()
    old = _run(job, ProcessStatus.FAILED, started=NOW - timedelta(days=2), finished=NOW - timedelta(hours=25))
    first = _run(job, ProcessStatus.FAILED, started=NOW - timedelta(hours=3), finished=NOW - timedelta(hours=2))
    second = _run(job, ProcessStatus.FAILED, started=NOW - timedelta(hours=2), finished=NOW - timedelta(hours=1),
                  failure_reason="boom")
    Task.objects.create(process=second, sequence=2, name="load", status=TaskStatus.FAILED, started_at=NOW)
    rerun = _run(job, ProcessStatus.QUEUED, rerun_of=first)

    failures, total = selectors.recent_failures(now=NOW)

    assert total == 2 and [f.id for f in failures] == [second.pk, first.pk]
    assert failures[0].failed_step == "step 2: load" and failures[0].reason == "boom"
    assert failures[1].rerun_id == rerun.pk and failures[1].reason == "No reason was recorded."
    assert old.pk not in [f.id for f in failures]


@pytest.mark.parametrize("reason, shown", [
    ("Task 'load' failed: ValueError: no rows", "ValueError: no rows"),  # the step is shown beside it
    ("Task 'extract' failed: ValueError: no rows", "Task 'extract' failed: ValueError: no rows"),  # another step
    ("Timed out after 300 s", "Timed out after 300 s"),
    ("", "No reason was recorded."),
])
def test_a_failure_names_its_step_once(make_job, reason, shown):
    failed = _run(make_job(), ProcessStatus.FAILED, started=NOW - timedelta(hours=2), finished=NOW - timedelta(hours=1),
                  failure_reason=reason)
    Task.objects.create(process=failed, sequence=2, name="load", status=TaskStatus.FAILED, started_at=NOW)
    [failure], _ = selectors.recent_failures(now=NOW)
    assert (failure.failed_step, failure.reason) == ("step 2: load", shown)


def test_day_buckets_follow_the_viewers_calendar_across_a_dst_change():
    berlin = ZoneInfo("Europe/Berlin")
    starts = selectors.window_buckets(
        window=selectors.CHART_WINDOWS["30d"], now=datetime(2026, 4, 2, 10, tzinfo=UTC), zone=berlin
    )
    assert len(starts) == 30
    assert all(start.astimezone(berlin).hour == 0 for start in starts)
    assert starts[-1] == datetime(2026, 4, 2, tzinfo=berlin)


def test_runs_are_counted_in_the_viewers_hour_by_status(make_job):
    job = make_job()
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30: hours do not line up with UTC hours
    _run(job, ProcessStatus.SUCCEEDED, created=datetime(2026, 3, 10, 11, 20, tzinfo=UTC))  # 16:50 local
    _run(job, ProcessStatus.FAILED, created=datetime(2026, 3, 10, 11, 40, tzinfo=UTC))  # 17:10 local
    _run(job, ProcessStatus.FAILED, created=datetime(2026, 3, 9, 11, 0, tzinfo=UTC))  # before the window

    buckets = selectors.runs_by_status(window=selectors.CHART_WINDOWS["24h"], now=NOW, zone=kolkata)

    counted = {b.start.astimezone(kolkata).strftime("%H:%M"): b.counts for b in buckets if b.counts}
    assert counted == {"16:00": {"succeeded": 1}, "17:00": {"failed": 1}}


def test_concurrency_is_the_most_runs_executing_at_once_in_each_hour(make_job):
    job = make_job()
    hour = NOW.replace(minute=0)
    # 10:00-10:40 and 10:20-11:10 overlap: two at once in the 10:00 bucket; one at 11:00.
    _run(job, ProcessStatus.SUCCEEDED, started=hour - timedelta(hours=2), finished=hour - timedelta(hours=1, minutes=20))
    _run(job, ProcessStatus.FAILED, started=hour - timedelta(hours=1, minutes=40), finished=hour - timedelta(minutes=50))
    _run(job, ProcessStatus.RUNNING, started=hour + timedelta(minutes=5))
    # Ended before the window: not read.
    _run(job, ProcessStatus.SUCCEEDED, started=hour - timedelta(days=3), finished=hour - timedelta(days=2))

    result = selectors.concurrency(window=selectors.CHART_WINDOWS["24h"], now=NOW, zone=UTC)

    peaks = {start.strftime("%H:%M"): peak for start, peak in result.peaks if peak}
    assert peaks == {"10:00": 2, "11:00": 1, "12:00": 1}
    assert (result.peak, result.now) == (2, 1)


def test_slowest_and_most_failing_jobs(make_job):
    quick, slow = make_job(name="quick"), make_job(name="slow")
    _run(quick, ProcessStatus.SUCCEEDED, started=NOW - timedelta(minutes=10), finished=NOW - timedelta(minutes=9))
    _run(slow, ProcessStatus.SUCCEEDED, started=NOW - timedelta(hours=2), finished=NOW - timedelta(hours=1))
    _run(quick, ProcessStatus.FAILED, started=NOW - timedelta(minutes=5), finished=NOW - timedelta(minutes=4))
    window = selectors.CHART_WINDOWS["24h"]

    slowest = selectors.slowest_jobs(window=window, now=NOW)
    failing = selectors.most_failing_jobs(window=window, now=NOW)

    assert [(j.job_name, j.value) for j in slowest] == [("slow", 3600.0), ("quick", 60.0)]
    assert [(j.job_name, j.value, j.runs, j.extra) for j in failing] == [("quick", 1, 2, 0.5)]


@pytest.mark.postgres
def test_every_dashboard_query_on_processes_can_use_an_index(make_job, client, django_user_model, settings):
    require_service("PostgreSQL", "127.0.0.1", 5432)
    if connection.vendor != "postgresql":
        pytest.skip("plans are PostgreSQL's (run with DATABASE_URL=postgres://...)")
    job = make_job()
    _run(job, ProcessStatus.FAILED, started=NOW, finished=NOW)
    Schedule.objects.create(job=job, cron="* * * * *", next_fire_at=NOW)
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    for window in selectors.CHART_WINDOWS:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/admin/?range={window}").status_code == 200
        reads = [q["sql"] for q in captured.captured_queries
                 if q["sql"].startswith("SELECT") and ('FROM "processes_process"' in q["sql"]
                                                        or 'FROM "processes_processhourly"' in q["sql"]
                                                        or 'FROM "jobs_schedule"' in q["sql"])]
        assert len(reads) >= 8
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
            try:
                for sql in reads:
                    cursor.execute("EXPLAIN " + sql)
                    plan = "\n".join(row[0] for row in cursor.fetchall())
                    assert "Seq Scan on processes_process" not in plan, f"{sql}\n{plan}"
                    assert "Seq Scan on jobs_schedule" not in plan, f"{sql}\n{plan}"
                    assert "Seq Scan on processes_processhourly" not in plan, f"{sql}\n{plan}"
            finally:
                cursor.execute("SET enable_seqscan = on")


def test_concurrency_with_too_many_runs_shows_only_the_buckets_it_could_count(make_job, monkeypatch):
    monkeypatch.setattr(selectors, "CONCURRENCY_ROWS_LIMIT", 2)
    job = make_job()
    hour = NOW.replace(minute=0)
    _run(job, ProcessStatus.SUCCEEDED, started=hour - timedelta(hours=5), finished=hour - timedelta(hours=5) + timedelta(minutes=9))
    _run(job, ProcessStatus.SUCCEEDED, started=hour - timedelta(hours=3), finished=hour - timedelta(hours=2, minutes=30))
    _run(job, ProcessStatus.SUCCEEDED, started=hour - timedelta(minutes=50), finished=hour - timedelta(minutes=10))

    result = selectors.concurrency(window=selectors.CHART_WINDOWS["24h"], now=NOW, zone=UTC)

    assert result.exact_since == hour - timedelta(hours=2)
    assert [start for start, _ in result.peaks][0] == hour - timedelta(hours=2)
    assert {start.strftime("%H:%M"): peak for start, peak in result.peaks if peak} == {"11:00": 1}


def _ended(job, status, *, started, finished) -> Process:
    """A finished run counted in the rollups, as the control plane's finalize counts it."""
    from tests.support import count_finished

    process = _run(job, status, started=started, finished=finished)
    count_finished(process)
    return process


def test_week_and_month_charts_read_the_hourly_rollup_not_the_runs(make_job):
    quick, slow = make_job(name="quick"), make_job(name="slow")
    day = timedelta(days=1)
    # Two runs of `slow` at once for two hours, three days ago; quick runs that fail now and then.
    for _ in range(2):
        _ended(slow, ProcessStatus.SUCCEEDED, started=NOW - 3 * day - timedelta(hours=2), finished=NOW - 3 * day)
    _ended(quick, ProcessStatus.SUCCEEDED, started=NOW - 2 * day, finished=NOW - 2 * day + timedelta(minutes=1))
    _ended(quick, ProcessStatus.FAILED, started=NOW - day, finished=NOW - day + timedelta(minutes=3))
    _ended(quick, ProcessStatus.FAILED, started=NOW - 40 * day, finished=NOW - 40 * day)  # before both windows
    _run(quick, ProcessStatus.RUNNING, started=NOW - timedelta(minutes=5))
    week = selectors.CHART_WINDOWS["7d"]

    with CaptureQueriesContext(connection) as queries:
        trends = selectors.trends(window=week, now=NOW, zone=UTC)
    history_reads = [q["sql"] for q in queries if '"processes_process"' in q["sql"]]
    # Over the runs only the active ones are read (the running one), never the finished history.
    assert history_reads and all("'running'" in sql for sql in history_reads), history_reads

    totals = {}
    for bucket in trends.buckets:
        for status, n in bucket.counts.items():
            totals[status] = totals.get(status, 0) + n
    assert totals == {"succeeded": 3, "failed": 1, "running": 1}
    assert [(j.job_name, j.value, j.runs) for j in trends.slowest] == [("slow", 7200.0, 2), ("quick", 60.0, 1)]
    assert [(j.job_name, j.value, j.runs, j.extra) for j in trends.failing] == [("quick", 1, 2, 0.5)]
    # Two runs at once through two hours: each of those hours averages two; the last bucket holds
    # the run executing now.
    peaks = dict(trends.concurrency.peaks)
    assert max(peaks.values()) == 2 and trends.concurrency.now == 1 and list(peaks.values())[-1] >= 1
    assert trends.concurrency.measure == "busiest hour's average"
    # The month sees the same runs; its separate functions agree with trends().
    month = selectors.CHART_WINDOWS["30d"]
    assert selectors.most_failing_jobs(window=month, now=NOW) == trends.failing
    assert selectors.slowest_jobs(window=month, now=NOW) == trends.slowest
    assert sum(b.total for b in selectors.runs_by_status(window=month, now=NOW, zone=UTC)) == 5

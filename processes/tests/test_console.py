"""The console's reads and endpoints: timeline, grid, list columns, live state, log follow and download."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs.models import Schedule
from processes import services
from processes.models import Process, ProcessStatus, Task, TaskStatus, Trigger
from processes.run_history import job_run_grid, jobs_list_rows, percentile
from processes.timeline import process_timeline
from processes.tracebacks import traceback_without_runner_frames
from runner.executors.local.executor import local_log_path
from tests.support import count_finished

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]

TRACEBACK = """Traceback (most recent call last):
  File "/tmp/jtb-run-7/jtb_child.py", line 66, in task
    yield
  File "/tmp/jtb-run-7/template.py", line 9, in main
    total = sum(float(row["amount"]) for row in rows)
            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/app/runner/child.py", line 12, in helper
    raise
ValueError: could not convert string to float: 'oops'
"""


def test_traceback_keeps_the_templates_frames_and_drops_the_runners():
    text = traceback_without_runner_frames(TRACEBACK)
    assert "jtb_child.py" not in text and "runner/child.py" not in text and "yield" not in text
    assert 'File "/tmp/jtb-run-7/template.py", line 9, in main' in text
    assert "^^^^" in text and text.startswith("Traceback (most recent call last):")
    assert text.rstrip().endswith("ValueError: could not convert string to float: 'oops'")
    assert traceback_without_runner_frames("not a traceback") == "not a traceback"


def run_with_steps(job, status, steps, *, hours_ago=1):
    created = timezone.now() - timedelta(hours=hours_ago)
    process = Process.objects.create(job=job, status=status, trigger=Trigger.MANUAL)
    finished = created + timedelta(seconds=10 * (len(steps) + 1)) if status != ProcessStatus.RUNNING else None
    Process.objects.filter(pk=process.pk).update(
        created_at=created, started_at=created + timedelta(seconds=3), finished_at=finished,
    )
    count_finished(process)
    for sequence, (name, task_status) in enumerate(steps, start=1):
        begin = created + timedelta(seconds=3 + 10 * (sequence - 1))
        Task.objects.create(process=process, name=name, sequence=sequence, status=task_status, started_at=begin,
                            finished_at=None if task_status == TaskStatus.RUNNING else begin + timedelta(seconds=8))
    process.refresh_from_db()
    return process


def test_timeline_shows_waiting_each_step_and_steps_the_last_success_had_as_not_reached(make_job):
    job = make_job()
    ok = [("install modules", TaskStatus.SUCCEEDED), ("extract", TaskStatus.SUCCEEDED),
          ("transform", TaskStatus.SUCCEEDED), ("load", TaskStatus.SUCCEEDED)]
    run_with_steps(job, ProcessStatus.SUCCEEDED, ok, hours_ago=3)
    failed = run_with_steps(job, ProcessStatus.FAILED, [ok[0], ok[1], ("transform", TaskStatus.FAILED)])
    bars = process_timeline(process=failed).bars
    assert [bar.label for bar in bars] == ["waiting for capacity", "installing modules", "extract", "transform", "load"]
    assert [bar.state for bar in bars] == ["done", "succeeded", "succeeded", "failed", "not_reached"]
    assert bars[-1].left is None and bars[1].left is not None
    assert all(0 <= bar.left <= 100 and bar.left + bar.width <= 100.001 for bar in bars if bar.left is not None)


def test_timeline_of_a_running_process_says_later_steps_are_not_started_yet(make_job):
    job = make_job()
    run_with_steps(job, ProcessStatus.SUCCEEDED, [("a", TaskStatus.SUCCEEDED), ("b", TaskStatus.SUCCEEDED)], hours_ago=3)
    running = run_with_steps(job, ProcessStatus.RUNNING, [("a", TaskStatus.RUNNING)])
    timeline = process_timeline(process=running)
    assert timeline.live
    assert [(bar.label, bar.state) for bar in timeline.bars] == [
        ("waiting for capacity", "done"), ("a", "running"), ("b", "pending")]


def test_cancelling_a_running_process_marks_its_running_step_cancelled_not_failed(make_job):
    job = make_job()
    process = services.process_start(job=job, trigger=Trigger.MANUAL)
    services.process_mark_running(process_id=process.pk)
    services.task_start(process_id=process.pk, sequence=1, name="slow step")
    services.process_finish(process_id=process.pk, status=ProcessStatus.CANCELLED, failure_reason="Cancelled by ada.")
    assert Task.objects.get(process=process).status == TaskStatus.CANCELLED
    other = services.process_start(job=job, trigger=Trigger.MANUAL)
    services.process_mark_running(process_id=other.pk)
    services.task_start(process_id=other.pk, sequence=1, name="slow step")
    services.process_finish(process_id=other.pk, status=ProcessStatus.FAILED, failure_reason="boom")
    assert Task.objects.get(process=other).status == TaskStatus.FAILED


def test_grid_has_one_cell_per_run_and_step_in_run_order(make_job):
    job = make_job()
    first = run_with_steps(job, ProcessStatus.SUCCEEDED, [("a", TaskStatus.SUCCEEDED), ("b", TaskStatus.SUCCEEDED)])
    second = run_with_steps(job, ProcessStatus.FAILED, [("a", TaskStatus.FAILED)])
    grid = job_run_grid(job=job)
    assert [run.pk for run in grid.runs] == [first.pk, second.pk]
    assert grid.steps == ["a", "b"]
    assert [[cell.state for cell in row] for row in grid.rows] == [["succeeded", "failed"], ["succeeded", "none"]]


def test_percentile_is_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([3, 1, 2], 0.5) == 2
    assert percentile(list(range(1, 101)), 0.95) == 95


def test_jobs_list_columns_cost_the_same_queries_for_one_job_or_many(make_job):
    jobs = [make_job() for _ in range(6)]
    for job in jobs:
        run_with_steps(job, ProcessStatus.SUCCEEDED, [("a", TaskStatus.SUCCEEDED)], hours_ago=2)
        run_with_steps(job, ProcessStatus.FAILED, [("a", TaskStatus.FAILED)], hours_ago=1)
    Schedule.objects.create(job=jobs[0], cron="0 6 * * *", timezone="UTC")
    with CaptureQueriesContext(connection) as one:
        jobs_list_rows(job_ids=[jobs[0].pk])
    with CaptureQueriesContext(connection) as many:
        rows = jobs_list_rows(job_ids=[job.pk for job in jobs])
    assert len(one) == len(many) == 5
    row = rows[jobs[0].pk]
    assert (row.runs, row.succeeded, row.finished, row.last_status) == (2, 1, 2, ProcessStatus.FAILED)
    assert row.success_rate == 0.5 and row.median_seconds == 17.0 and row.running == 0
    assert row.next_run is not None and rows[jobs[1].pk].next_run is None


def test_jobs_list_shows_last_run_success_rate_and_median(admin_client, make_job):
    job = make_job(name="Nightly sales export")
    run_with_steps(job, ProcessStatus.SUCCEEDED, [("a", TaskStatus.SUCCEEDED)], hours_ago=2)
    run_with_steps(job, ProcessStatus.FAILED, [("a", TaskStatus.FAILED)], hours_ago=1)
    page = admin_client.get(reverse("admin:jobs_job_changelist")).content.decode()
    assert "Nightly sales export" in page and "Failed" in page and "50 %" in page and "17.0 s" in page


def test_live_state_changes_version_when_a_step_finishes(admin_client, make_job):
    job = make_job()
    process = run_with_steps(job, ProcessStatus.RUNNING, [("a", TaskStatus.RUNNING)])
    url = reverse("admin:processes_process_live", args=[process.pk])
    before = admin_client.get(url).json()
    assert before["active"] is True and before["status"] == "running"
    services.task_finish(process_id=process.pk, sequence=1, status=TaskStatus.SUCCEEDED)
    after = admin_client.get(url).json()
    assert after["version"] != before["version"]
    listing = admin_client.get(reverse("admin:processes_process_live_list") + f"?ids={process.pk}").json()
    assert listing["active"] is True and listing["processes"][0]["id"] == process.pk
    assert admin_client.get(reverse("admin:processes_process_live_list") + "?ids=1;drop").status_code == 400


def test_running_process_shows_its_elapsed_time_not_a_dash(admin_client, make_job):
    process = run_with_steps(make_job(), ProcessStatus.RUNNING, [("a", TaskStatus.RUNNING)])
    page = admin_client.get(reverse("admin:processes_process_change", args=[process.pk])).content.decode()
    assert "data-elapsed-since" in page and 'data-live-active="true"' in page
    listing = admin_client.get(reverse("admin:processes_process_changelist")).content.decode()
    assert "data-elapsed-since" in listing and 'data-live-active="true"' in listing


def test_log_follows_by_offset_and_downloads_whole(admin_client, make_job, run_dirs):
    process = run_with_steps(make_job(), ProcessStatus.RUNNING, [("a", TaskStatus.RUNNING)])
    process.executor = "local"
    process.save(update_fields=["executor"])
    path = local_log_path(process.pk)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("line 1\n")
    follow = reverse("admin:processes_process_log", args=[process.pk])
    first = admin_client.get(follow + "?offset=0").json()
    assert first["text"] == "line 1\n" and first["next_offset"] == 7 and first["active"] is True
    with path.open("a") as log:
        log.write("line 2\n" + "x" * 600_000 + "\n")
    second = admin_client.get(follow + f"?offset={first['next_offset']}").json()
    assert second["text"].startswith("line 2\n") and second["more"] is True
    assert admin_client.get(follow + "?offset=abc").status_code == 400

    download = admin_client.get(reverse("admin:processes_process_log_all", args=[process.pk]) + "?download=1")
    assert download.streaming
    assert download["Content-Disposition"] == f'attachment; filename="process-{process.pk}.log"'
    body = b"".join(download.streaming_content).decode()
    assert body == path.read_text() and len(body) > 600_000


def test_log_endpoints_need_the_view_permission(client, django_user_model, make_job):
    process = run_with_steps(make_job(), ProcessStatus.RUNNING, [])
    client.force_login(django_user_model.objects.create_user("clerk", password="pw", is_staff=True))
    for name in ("processes_process_live", "processes_process_log", "processes_process_log_all"):
        assert client.get(reverse(f"admin:{name}", args=[process.pk])).status_code == 403


def test_process_page_has_confirmed_cancel_and_a_timeline(admin_client, make_job):
    process = run_with_steps(make_job(), ProcessStatus.RUNNING, [("a", TaskStatus.RUNNING)])
    page = admin_client.get(reverse("admin:processes_process_change", args=[process.pk])).content.decode()
    assert 'id="cancel-button"' in page and "data-confirm=" in page
    assert page.count('class="jtb-gantt-row"') == 2


def test_job_page_shows_grid_chart_and_success_rate(admin_client, make_job):
    job = make_job()
    run_with_steps(job, ProcessStatus.SUCCEEDED, [("a", TaskStatus.SUCCEEDED), ("b", TaskStatus.SUCCEEDED)], hours_ago=2)
    run_with_steps(job, ProcessStatus.FAILED, [("a", TaskStatus.FAILED)], hours_ago=1)
    page = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    assert page.count('class="jtb-grid-cell"') == 3 and page.count('class="jtb-grid-empty"') == 1
    assert page.count('class="jtb-bar ') == 2 and "50 %" in page
    assert json.dumps("p50")[1:-1] in page


def test_jobs_list_filters_by_last_run_from_the_url(admin_client, make_job):
    failing, fine, _never = make_job(name="failing job"), make_job(name="fine job"), make_job(name="new job")
    run_with_steps(failing, ProcessStatus.SUCCEEDED, [], hours_ago=2)
    run_with_steps(failing, ProcessStatus.FAILED, [], hours_ago=1)
    run_with_steps(fine, ProcessStatus.SUCCEEDED, [], hours_ago=1)
    url = reverse("admin:jobs_job_changelist")
    shown = {job.name for job in admin_client.get(url + "?last_run=failed").context["cl"].result_list}
    assert shown == {"failing job"}
    shown = {job.name for job in admin_client.get(url + "?last_run=never").context["cl"].result_list}
    assert shown == {"new job"}


def test_jobs_list_page_costs_the_same_queries_for_two_jobs_or_eight(admin_client, make_job):
    def listing_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(reverse("admin:jobs_job_changelist")).status_code == 200
        return len(queries)

    for _ in range(2):
        run_with_steps(make_job(), ProcessStatus.SUCCEEDED, [("a", TaskStatus.SUCCEEDED)])
    listing_queries()  # the first page of a session also stores the viewer's time zone in it
    two = listing_queries()
    for _ in range(6):
        job = make_job()
        run_with_steps(job, ProcessStatus.FAILED, [("a", TaskStatus.FAILED)])
        Schedule.objects.create(job=job, cron="0 6 * * *", timezone="UTC")
    assert listing_queries() == two


def test_timeline_names_the_time_before_the_first_step_and_where_a_run_stopped_before_any_step(make_job):
    job = make_job()
    # The runner started 3 s after creation; its first step began 12 s later (fetching, environment).
    slow_start = run_with_steps(job, ProcessStatus.SUCCEEDED, [("extract", TaskStatus.SUCCEEDED)])
    Task.objects.filter(process=slow_start).update(started_at=slow_start.started_at + timedelta(seconds=12))
    bars = process_timeline(process=slow_start).bars
    assert [(bar.label, bar.state) for bar in bars] == [
        ("waiting for capacity", "done"), ("preparing the run", "done"), ("extract", "succeeded")]
    assert bars[1].duration == timedelta(seconds=12)
    assert bars[1].left + bars[1].width <= bars[2].left + 0.001

    # Failed before its first step (say, a template that cannot be fetched): the row says so.
    no_step = run_with_steps(job, ProcessStatus.FAILED, [])
    assert [(bar.label, bar.state_label) for bar in process_timeline(process=no_step).bars][:2] == [
        ("waiting for capacity", "Done"), ("preparing the run", "Failed")]

    # Still preparing: the row is open and grows.
    preparing = run_with_steps(job, ProcessStatus.RUNNING, [])
    bar = process_timeline(process=preparing).bars[1]
    assert (bar.label, bar.state, bar.state_label) == ("preparing the run", "running", "In progress")

    # A first step that starts at once gets no row of its own.
    prompt = run_with_steps(job, ProcessStatus.SUCCEEDED, [("extract", TaskStatus.SUCCEEDED)])
    assert "preparing the run" not in [bar.label for bar in process_timeline(process=prompt).bars]

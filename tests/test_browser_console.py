"""The console as an operator sees it, in headless Chromium with every request off this machine blocked.

A process page follows its run live (status, steps, log) without a reload; the job page's grid and
the process page's timeline show one cell or bar per run-step; no page scrolls sideways at 1280×800.
Screenshots of every page are written to var/test-output/screenshots/ (JTB_SCREENSHOT_DIR) for a
person to look at.
"""

from __future__ import annotations

import os
import shutil
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.utils import timezone

from jobs.models import Job, Schedule
from processes.models import Process, ProcessStatus, Task, TaskStatus, Trigger
from processes.rollup import rollup_record_run
from processes.services import process_start
from tests.support import admin_sign_in, wait_for, write_template

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
PASSWORD = "correct horse battery"


def screenshot_dir() -> Path:
    folder = Path(os.environ.get("JTB_SCREENSHOT_DIR") or settings.DATA_DIR / "test-output" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(monkeypatch):
    """A 1280×800 page; requests to any host but this machine are aborted and remembered."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is not installed (CI=true: .ci/run installs it)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are plain sync.
    # Set for this test only: left in os.environ, it reached later tests' subprocesses (a deploy
    # check then failed with async.E001 in whichever xdist worker had run a browser test first).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    blocked: list[str] = []

    def only_local(route):
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = chromium.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(60_000)
        context.route("**/*", only_local)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        yield page
        chromium.close()
    assert not blocked, f"the pages asked for something off this machine: {blocked}"


def log_in(page, live_server, django_user_model, next_path: str) -> None:
    django_user_model.objects.create_superuser("ada", "ada@example.com", PASSWORD)
    admin_sign_in(page, live_server.url, "ada", PASSWORD, next_path)


def sideways_scrollers(page) -> list[str]:
    """The page, and every box inside it (the admin's result table, an inline), wider than its window."""
    return page.evaluate("""() => {
        const found = [];
        const root = document.documentElement;
        if (root.scrollWidth > root.clientWidth) found.push("page: " + root.scrollWidth + " px");
        for (const el of document.querySelectorAll("body *")) {
            const style = getComputedStyle(el);
            if (!["auto", "scroll"].includes(style.overflowX) || el.clientWidth === 0) continue;
            if (el.scrollWidth > el.clientWidth + 1) {
                found.push((el.id || el.className || el.tagName) + ": " + el.scrollWidth + " > " + el.clientWidth);
            }
        }
        return found;
    }""")


def shoot(page, name: str) -> Path:
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    # What a person sees first, at 1280×800 (the README's tour uses these).
    page.screenshot(path=str(screenshot_dir() / f"{name}-window.png"))
    return path


WAITING_TEMPLATE = """
import time
from pathlib import Path

def main(ctx):
    flag = Path(ctx.params["flag"])
    with ctx.task("wait for the signal"):
        tick = 0
        while not flag.exists():
            tick += 1
            print(f"tick {tick}", flush=True)
            time.sleep(0.3)
    with ctx.task("finish"):
        print("all done", flush=True)
"""


def test_process_page_follows_its_run_to_succeeded_and_its_log_grows_without_a_reload(
    live_server, django_user_model, browser, local_templates, tmp_path, no_dispatch,
):
    from runner.executors.local.watch import local_run

    write_template(local_templates, "waiting.py", WAITING_TEMPLATE)
    job = Job.objects.create(name="Live report", template="waiting.py", memory_mib=512)
    flag = tmp_path / "flag"
    process = process_start(job=job, trigger=Trigger.MANUAL, parameters={"flag": str(flag)})
    runner = threading.Thread(target=local_run, kwargs={"process_id": process.pk}, daemon=True)
    runner.start()
    try:
        follow_the_run(page=browser, live_server=live_server, django_user_model=django_user_model, process=process,
                       flag=flag)
    finally:
        flag.write_text("go")  # the run ends whatever happened, before the test database goes
        runner.join(timeout=120)


def follow_the_run(*, page, live_server, django_user_model, process, flag) -> None:
    wait_for(lambda: Task.objects.filter(process=process, name="wait for the signal").exists(), timeout=120)

    log_in(page, live_server, django_user_model, f"/admin/processes/process/{process.pk}/change/")
    page.wait_for_selector("#jtb-live[data-live-active=true]", state="attached")
    assert "Running" in page.locator("div.field-status_badge").inner_text()
    # The page itself is never reloaded: a marker set now must still be there at the end.
    page.evaluate("window.__sameDocument = true")
    log = page.locator("#process-log")
    page.wait_for_function("document.getElementById('process-log').textContent.includes('tick')")
    first = len(log.inner_text())
    page.wait_for_function(f"document.getElementById('process-log').textContent.length > {first + 10}")
    elapsed = page.locator(".field-run_duration [data-elapsed-since]")
    assert elapsed.count() == 1, "a running process shows its elapsed time"
    before = elapsed.inner_text()
    page.wait_for_function(
        "(before) => document.querySelector('.field-run_duration [data-elapsed-since]').textContent !== before", arg=before,
    )
    shoot(page, "process-running")
    # The list, open in a second tab, follows the same run.
    listing = page.context.new_page()
    listing.goto(f"{live_server.url}/admin/processes/process/")
    listing.wait_for_selector("#jtb-live[data-live-active=true]", state="attached")
    listing.evaluate("window.__sameDocument = true")
    assert "Running" in listing.locator("#result_list td.field-status_badge").inner_text()
    shoot(listing, "process-list-running")

    flag.write_text("go")
    page.wait_for_function(
        "document.querySelector('div.field-status_badge').textContent.includes('Succeeded')", timeout=120_000,
    )
    page.wait_for_function("document.getElementById('process-log').textContent.includes('all done')")
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#jtb-live").get_attribute("data-live-active") == "false"
    tasks = page.locator("#tasks-group").inner_text()
    assert "wait for the signal" in tasks and "finish" in tasks
    assert page.locator("#jtb-timeline .jtb-gantt-bar.jtb-s-succeeded").count() == 2
    listing.wait_for_function(
        "document.querySelector('#result_list td.field-status_badge').textContent.includes('Succeeded')")
    assert listing.evaluate("window.__sameDocument") is True
    assert "data-elapsed-since" not in listing.locator("#result_list td.field-run_duration").inner_html()
    shoot(page, "process-succeeded")

    # The whole log opens as text.
    whole = page.request.get(f"{live_server.url}/admin/processes/process/{process.pk}/log/all/")
    assert whole.ok and "tick 1\n" in whole.text() and "all done" in whole.text()


FAILING_TRACEBACK = """Traceback (most recent call last):
  File "/tmp/run/jtb_child.py", line 66, in task
    yield
  File "/tmp/run/template.py", line 9, in main
    total = sum(float(row["amount"]) for row in rows)
ValueError: could not convert string to float: 'oops'
"""


def seeded_history() -> tuple[Job, dict[str, Process]]:
    """A scheduled job with twelve runs a day apart: mostly three steps that succeed, two failures at
    "transform", one run cancelled in "extract"; the newest run failed."""
    job = Job.objects.create(name="Nightly sales export", template="examples/hello.py", memory_mib=512)
    Schedule.objects.create(job=job, cron="30 1 * * MON-FRI", timezone="Europe/Paris",
                            description="Before the morning meeting")
    reason = "Task 'transform' failed: ValueError: could not convert string to float: 'oops' (row 1,204 of orders.csv)"
    plans = ["ok", "ok", "ok", "failed", "ok", "ok", "cancelled", "ok", "ok", "ok", "ok", "failed"]
    now = timezone.now()
    notable: dict[str, Process] = {}
    for number, plan in enumerate(plans):
        created = now - timedelta(days=len(plans) - number, minutes=-number)
        steps = {"ok": [TaskStatus.SUCCEEDED] * 3, "failed": [TaskStatus.SUCCEEDED, TaskStatus.FAILED],
                 "cancelled": [TaskStatus.CANCELLED]}[plan]
        status = {"ok": ProcessStatus.SUCCEEDED, "failed": ProcessStatus.FAILED, "cancelled": ProcessStatus.CANCELLED}[plan]
        process = Process.objects.create(
            job=job, status=status, trigger=Trigger.SCHEDULE, executor="local",
            failure_reason={"ok": "", "failed": reason, "cancelled": "Cancelled by ada."}[plan],
        )
        step_seconds = [20 + (number * 7) % 30, 45 + (number * 11) % 40, 15 + (number * 5) % 10]
        begin = created + timedelta(seconds=4 + number % 3 * 6)
        Process.objects.filter(pk=process.pk).update(created_at=created, submitted_at=created, started_at=begin)
        for sequence, (name, task_status) in enumerate(zip(["extract", "transform", "load"], steps, strict=False), start=1):
            end = begin + timedelta(seconds=step_seconds[sequence - 1])
            Task.objects.create(
                process=process, name=name, sequence=sequence, status=task_status, started_at=begin, finished_at=end,
                error=reason if task_status == TaskStatus.FAILED else "",
                traceback=FAILING_TRACEBACK if task_status == TaskStatus.FAILED else "",
            )
            begin = end + timedelta(seconds=1)
        Process.objects.filter(pk=process.pk).update(finished_at=begin)
        rollup_record_run(process_id=process.pk)  # as process_finalize does for every finished run
        notable[plan] = process
    other_jobs()
    return job, notable


def other_jobs() -> None:
    """Neighbours on the lists: a job running now, a disabled one that never ran."""
    hourly = Job.objects.create(name="Hourly stock sync", template="examples/hello.py", memory_mib=512)
    Schedule.objects.create(job=hourly, cron="0 * * * *", timezone="UTC")
    now = timezone.now()
    for hours_ago, status in ((3, ProcessStatus.SUCCEEDED), (2, ProcessStatus.SUCCEEDED), (0, ProcessStatus.RUNNING)):
        process = Process.objects.create(job=hourly, status=status, trigger=Trigger.SCHEDULE, executor="local")
        begin = now - timedelta(hours=hours_ago, minutes=1)
        Process.objects.filter(pk=process.pk).update(
            created_at=begin, started_at=begin + timedelta(seconds=2),
            finished_at=None if status == ProcessStatus.RUNNING else begin + timedelta(seconds=95),
        )
        if status != ProcessStatus.RUNNING:
            rollup_record_run(process_id=process.pk)
    Job.objects.create(name="Weekly cleanup", template="examples/hello.py", memory_mib=512, enabled=False)


def test_job_grid_and_process_timeline_show_one_cell_and_one_bar_per_run_step(live_server, django_user_model, browser):
    job, runs = seeded_history()
    failed, cancelled = runs["failed"], runs["cancelled"]
    page = browser
    log_in(page, live_server, django_user_model, f"/admin/jobs/job/{job.pk}/change/")

    grid = page.locator("#jtb-run-grid")
    tasks = Task.objects.filter(process__job=job).count()
    assert grid.locator(".jtb-grid-cell").count() == tasks == 9 * 3 + 2 * 2 + 1
    # Steps a run never had are drawn as empty cells: 12 runs × 3 steps in all.
    assert grid.locator(".jtb-grid-empty").count() == 12 * 3 - tasks
    assert grid.locator(".jtb-grid-cell[data-state=cancelled]").count() == 1
    assert grid.locator(".jtb-grid-cell[data-state=failed]").count() == 2
    assert page.locator("#jtb-success-rate").inner_text().startswith("75 %")
    assert page.locator("#jtb-duration-chart rect.jtb-bar").count() == 12
    assert "next run\n" in page.locator("#jtb-job-history").inner_text().lower()
    shoot(page, "job-page")

    grid.locator(f".jtb-grid-cell[data-state=failed] a[href*='/{failed.pk}/']").click()
    page.wait_for_selector("#jtb-timeline")
    rows = page.locator("#jtb-timeline .jtb-gantt-row")
    # Waiting for capacity, extract, transform, and load (which the last success had) not reached.
    assert rows.count() == 4
    assert rows.nth(3).get_attribute("data-state") == "not_reached"
    assert "load" in rows.nth(3).inner_text() and "Not reached" in rows.nth(3).inner_text()
    traceback = page.locator("#jtb-tracebacks").inner_text()
    assert "template.py" in traceback and "ValueError" in traceback
    assert "jtb_child.py" not in traceback
    shoot(page, "process-failed")

    page.goto(f"{live_server.url}/admin/processes/process/{cancelled.pk}/change/")
    assert "Cancelled" in page.locator("#tasks-group").inner_text()
    assert page.locator("#jtb-timeline .jtb-gantt-bar.jtb-s-cancelled").count() == 1


@pytest.mark.parametrize("path, name", [
    ("/admin/jobs/job/", "jobs-list"),
    ("/admin/jobs/job/{job}/change/", "job-page-wide"),
    ("/admin/jobs/job/add/", "job-add"),
    ("/admin/processes/process/", "process-list"),
    ("/admin/processes/process/{failed}/change/", "process-page-wide"),
    ("/admin/jobs/schedule/", "schedule-list"),
])
def test_no_page_scrolls_sideways_at_1280_by_800(live_server, django_user_model, browser, path, name):
    job, runs = seeded_history()
    failed = runs["failed"]
    page = browser
    log_in(page, live_server, django_user_model, path.format(job=job.pk, failed=failed.pk))
    page.wait_for_selector("#content")
    shoot(page, name)
    assert sideways_scrollers(page) == [], f"{path} scrolls sideways at 1280×800"
    if name == "process-list":
        # The reason fits without scrolling and is still read, not guessed: the step and the
        # error's first words are in view (one clipped line showed "Task 'tra…").
        reason = page.locator("#result_list td.field-short_reason span.jtb-reason", has_text="ValueError").first
        assert reason.inner_text().startswith("transform: ValueError: could not convert"), reason.inner_text()
        lines = reason.evaluate("el => el.clientHeight / parseFloat(getComputedStyle(el).lineHeight)")
        assert lines >= 2.9, f"the reason shows {lines:.1f} lines"

"""The operations console and the API docs in a real browser, with the internet cut off.

Headless Debian Chromium through Playwright; every request to a host other than the live
server (127.0.0.1) is aborted and recorded, so a page that still needs a CDN fails here.
Screenshots go to var/screenshots/ (JTB_SCREENSHOT_DIR), for people to look at.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.utils import timezone

from tests.support import admin_sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PASSWORD = "correct horse battery"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def screenshot_dir() -> Path:
    folder = Path(os.environ.get("JTB_SCREENSHOT_DIR", settings.BASE_DIR / "var" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wait_until(condition, *, timeout: float = 60, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def offline_browser(monkeypatch):
    """A 1280×800 page whose requests outside 127.0.0.1 are aborted (their URLs are in `.blocked`)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is not installed (CI=true)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are plain sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        blocked: list[str] = []

        def only_loopback(route):
            if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", only_loopback)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.blocked = blocked
        yield page
        browser.close()


def sign_in(page, live_server, username: str, next_url: str = "/admin/") -> None:
    admin_sign_in(page, live_server.url, username, PASSWORD, next_url)


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def _history(make_job):
    """A small, known history: what the dashboard must count."""
    from jobs.models import Schedule
    from processes.models import Process, ProcessStatus, Task, TaskStatus, Trigger
    from processes.rollup import rollup_record_run

    now = timezone.now()
    sales = make_job(name="Nightly sales export")
    etl = make_job(name="Warehouse ETL with a rather long name that must wrap instead of widening the page")

    def run(job, status, *, ago, took=None, **fields):
        process = Process.objects.create(job=job, status=status, trigger=Trigger.SCHEDULE, snapshot={}, **fields)
        started = now - ago
        finished = started + took if took is not None else None
        Process.objects.filter(pk=process.pk).update(created_at=started, started_at=started, finished_at=finished)
        if finished is not None:
            rollup_record_run(process_id=process.pk)  # as process_finalize does for every finished run
        return process

    for hours in range(1, 6):
        run(sales, ProcessStatus.SUCCEEDED, ago=timedelta(hours=hours), took=timedelta(minutes=4),
            estimated_cost=Decimal("0.125"))
    for hours in (2, 5):
        run(etl, ProcessStatus.FAILED, ago=timedelta(hours=hours), took=timedelta(minutes=1),
            failure_reason="Task 'load' failed: psycopg.errors.UniqueViolation: duplicate key value violates "
            "unique constraint \"orders_pkey\" DETAIL: Key (id)=(4711) already exists.",
            estimated_cost=Decimal("0.01"))
    run(etl, ProcessStatus.FAILED, ago=timedelta(days=3), took=timedelta(minutes=1), failure_reason="old failure")
    running = run(sales, ProcessStatus.RUNNING, ago=timedelta(minutes=2))
    Task.objects.create(process=running, sequence=1, name="extract", status=TaskStatus.RUNNING, started_at=now)
    Process.objects.create(job=etl, status=ProcessStatus.SUBMITTED, trigger=Trigger.MANUAL, snapshot={},
                           executor="aws_batch", executor_state="RUNNABLE")
    Process.objects.create(job=etl, status=ProcessStatus.QUEUED, held=True, trigger=Trigger.MANUAL, snapshot={})
    Schedule.objects.create(job=sales, cron="30 1 * * *", timezone="Europe/Berlin",
                            next_fire_at=now + timedelta(hours=3))
    return running


def figures(page) -> dict[str, str]:
    return page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('[data-figure]')]"
        ".map(e => [e.dataset.figure, e.textContent.replace(/[()]/g, '').trim()]))"
    )


def test_dashboard_numbers_match_the_database_and_fit_a_laptop_screen(
    live_server, django_user_model, make_job, offline_browser
):
    from processes.models import ACTIVE_STATUSES, Process, ProcessStatus

    django_user_model.objects.create_superuser("ada", "ada@example.com", PASSWORD)
    _history(make_job)
    page = offline_browser
    sign_in(page, live_server, "ada")
    page.wait_for_selector("#console")

    now = timezone.now()
    day_ago = now - timedelta(hours=24)
    shown = figures(page)
    running = Process.objects.filter(status=ProcessStatus.RUNNING).count()
    assert shown["running"] == str(running) == "1"
    assert shown["waiting"] == str(Process.objects.filter(status__in=ACTIVE_STATUSES).count() - running) == "2"
    assert shown["failed-24h"] == str(
        Process.objects.filter(status=ProcessStatus.FAILED, finished_at__gte=day_ago).count()) == "2"
    assert shown["succeeded-24h"] == str(
        Process.objects.filter(status=ProcessStatus.SUCCEEDED, finished_at__gte=day_ago).count()) == "5"
    assert shown["cost-24h"].startswith("0.65")  # 5 × 0.125 + 2 × 0.01; the 3-day-old failure is not counted
    assert shown["concurrent-now"] == "1"
    assert shown["runs-window"] == str(Process.objects.filter(created_at__gte=day_ago - timedelta(hours=1)).count())
    body = page.inner_text("#console")
    assert "Running step 1: extract" in body
    assert "Waiting for capacity (AWS Batch: RUNNABLE)" in body
    assert "Waiting for the job's active run to end" in body
    assert "old failure" not in body and "duplicate key value" in body
    assert page.locator("#console-slowest td.job").first.inner_text() == "Nightly sales export"
    assert page.locator("#console-next td.job").first.inner_text() == "Nightly sales export"
    assert len(page.locator("svg.console-chart rect.series-succeeded").all()) == 5
    assert no_horizontal_scroll(page), "the dashboard scrolls sideways at 1280×800"
    page.screenshot(path=str(screenshot_dir() / "console-dashboard.png"), full_page=True)

    for window in ("7d", "30d"):
        page.goto(f"{live_server.url}/admin/?range={window}")
        assert figures(page)["runs-window"] == str(Process.objects.count())
        assert no_horizontal_scroll(page), f"the {window} dashboard scrolls sideways"
    page.screenshot(path=str(screenshot_dir() / "console-dashboard-30d.png"), full_page=True)
    assert page.blocked == []


def test_dashboard_updates_itself_while_a_run_is_active_then_stops(
    live_server, django_user_model, make_job, offline_browser
):
    from processes.models import Process, ProcessStatus
    from processes.services import process_finish

    django_user_model.objects.create_superuser("ada", "ada@example.com", PASSWORD)
    running = _history(make_job)
    page = offline_browser
    sign_in(page, live_server, "ada")
    page.wait_for_selector("#console-live.is-live")
    elapsed = page.locator(f'[data-live-part="running"] tr[data-process="{running.pk}"] time.elapsed')
    first = elapsed.inner_text()
    wait_until(lambda: elapsed.inner_text() != first, timeout=10, what="the elapsed time to tick")

    process_finish(process_id=running.pk, status=ProcessStatus.SUCCEEDED)
    Process.objects.filter(status__in=[ProcessStatus.QUEUED, ProcessStatus.SUBMITTED]).update(
        status=ProcessStatus.CANCELLED, finished_at=timezone.now())

    page.wait_for_selector('[data-live-part="running"] >> text=Nothing is running.', timeout=30_000)
    assert figures(page)["succeeded-24h"] == "6"
    page.wait_for_selector("#console-live:not(.is-live)")
    assert "not updating" in page.inner_text("#console-live")
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.wait_for_timeout(5000)  # polling has stopped: nothing is fetched any more
    assert [url for url in requests if "/console/live/" in url] == []


def test_rerun_button_asks_first_and_starts_a_linked_run(live_server, django_user_model, make_job, offline_browser):
    from processes.models import Process, ProcessStatus

    django_user_model.objects.create_superuser("ada", "ada@example.com", PASSWORD)
    _history(make_job)
    failed = Process.objects.filter(status=ProcessStatus.FAILED).order_by("-finished_at").first()
    page = offline_browser
    sign_in(page, live_server, "ada")
    button = page.locator(f'tr[data-process="{failed.pk}"] button.rerun-button')

    page.once("dialog", lambda dialog: dialog.dismiss())
    button.click()
    page.wait_for_timeout(500)
    assert not Process.objects.filter(rerun_of=failed).exists()

    page.once("dialog", lambda dialog: dialog.accept())
    button.click()
    page.wait_for_selector("text=Started rerun")
    rerun = Process.objects.get(rerun_of=failed)
    assert page.locator(f'tr[data-process="{failed.pk}"] >> text=Rerun #{rerun.pk}').count() == 1
    page.screenshot(path=str(screenshot_dir() / "console-rerun.png"))


def test_swagger_ui_and_redoc_render_offline_and_try_it_out_runs_a_job(
    live_server, django_user_model, make_job, offline_browser
):
    from rest_framework.authtoken.models import Token

    from processes.models import Process

    user = django_user_model.objects.create_superuser("ada", "ada@example.com", PASSWORD)
    token = Token.objects.create(user=user)
    job = make_job(name="API hello")
    page = offline_browser

    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title >> text=JobTarget Batch API")
    page.click(".swagger-ui .auth-wrapper .authorize")
    schemes = page.locator(".swagger-ui .auth-container h4")
    assert "tokenAuth" in schemes.first.inner_text()
    page.locator(".swagger-ui .auth-container").first.locator("input").fill(f"Token {token.key}")
    page.locator(".swagger-ui .auth-container").first.locator("button.authorize").click()
    page.click(".swagger-ui .dialog-ux .close-modal")
    operation = page.locator("#operations-jobs-jobs_run_create")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("input[placeholder='id']").fill(str(job.pk))
    operation.locator("textarea.body-param__text").fill('{"parameters": {"name": "docs"}}')
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table tbody td.response-col_status").first
    wait_until(lambda: status.inner_text().strip().isdigit(), what="the Try it out response")
    assert status.inner_text().strip() == "202"  # the run endpoint accepts the run; it starts in the background
    assert Process.objects.get(job=job).parameters == {"name": "docs"}
    assert no_horizontal_scroll(page), "Swagger UI scrolls sideways at 1280×800"
    status.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir() / "api-docs-swagger.png"))

    page.goto(f"{live_server.url}/api/redoc/")
    page.wait_for_selector("h1 >> text=JobTarget Batch API")
    page.locator("h2", has_text="Run the job now").first.wait_for()
    page.screenshot(path=str(screenshot_dir() / "api-docs-redoc.png"))
    # ReDoc's "API docs by Redocly" logo is the one request out; it hides itself when it fails.
    asked = [url for url in page.blocked if url != REDOC_LOGO]
    assert asked == [], f"the docs asked the internet for {asked}"

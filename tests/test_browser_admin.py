"""A person in a browser: log into the admin, create a job, run it, see its tasks.

Drives Debian's Chromium (headless) with Playwright; no browser is downloaded.
"""

from __future__ import annotations

import os
import shutil

import pytest

from jobtarget_batch.celery import app as celery_app
from tests.support import admin_sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def browser_page():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is not installed (CI=true: .ci/run installs it)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(60_000)
        yield page
        browser.close()


@pytest.fixture
def runs_inline(subprocess_env, monkeypatch):
    """Runs execute inside the request, through the real dispatch and local executor paths."""
    for name, value in subprocess_env.items():
        monkeypatch.setenv(name, value)
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are plain sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_admin_user_creates_a_job_runs_it_and_sees_its_tasks(live_server, django_user_model, browser_page, runs_inline):
    django_user_model.objects.create_superuser("ada", "ada@example.com", "correct horse battery")
    page = browser_page

    admin_sign_in(page, live_server.url, "ada", "correct horse battery")
    page.wait_for_selector("text=Operations console")

    page.goto(f"{live_server.url}/admin/jobs/job/add/")
    page.fill("#id_name", "Browser hello")
    page.fill("#id_template", "examples/hello.py")
    page.fill("#id_memory_mib", "512")
    page.fill("#id_parameters", '{"name": "browser"}')
    page.click("input[name=_continue]")
    page.wait_for_selector("text=was added successfully")

    page.click("a.runlink")
    page.wait_for_selector("text=Start a run of")
    page.click("input[name=_run]")

    page.wait_for_selector("text=Started process")
    page.reload()
    content = page.content()
    assert "Succeeded" in content
    tasks = page.locator("#tasks-group")
    assert tasks.locator("text=prepare").count() >= 1
    assert tasks.locator("text=greet").count() >= 1
    assert "Hello, browser!" in page.locator("#process-log").inner_text()


def test_admin_shows_a_failed_task_with_its_traceback(live_server, django_user_model, browser_page, runs_inline):
    from jobs.models import Job

    django_user_model.objects.create_superuser("ada", "ada@example.com", "correct horse battery")
    job = Job.objects.create(name="ETL", template="examples/etl_fails.py", memory_mib=512)
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/job/{job.pk}/run/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.click("input[name=_run]")
    page.wait_for_selector("text=Started process")
    page.reload()
    assert "Failed" in page.content()
    assert "Task &#x27;transform&#x27; failed" in page.content() or "Task 'transform' failed" in page.inner_text("body")
    tasks_text = page.locator("#tasks-group").inner_text()
    assert "extract" in tasks_text and "transform" in tasks_text
    assert "load" not in tasks_text
    # The traceback is shown full width under the steps, without the runner's own frames.
    traceback = page.locator("#jtb-tracebacks").inner_text()
    assert "ValueError" in traceback and "jtb_child.py" not in traceback

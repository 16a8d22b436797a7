"""Clean shutdown: SIGTERM/SIGINT are recorded within the grace period; SIGKILL is caught by the reaper."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from django.utils import timezone

from processes.models import Process, ProcessStatus, TaskStatus
from processes.services import processes_reap_lost
from tests.support import make_job, runner_popen, start, template_outbox, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

GRACE = 5
# What the runner itself must take is well under GRACE; the test's own wall clock also counts
# process start-up and a busy 2-core CI machine running tests in parallel.
SCHEDULING_SLACK = 5
# Writes its pid, then waits in a task; with "stubborn" it ignores SIGTERM.
WAITS = """
import os, signal, time
def main(ctx):
    if ctx.params.get("stubborn"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with ctx.task("prepare"):
        open(ctx.params["pid_file"], "w").write(str(os.getpid()))
    with ctx.task("wait"):
        time.sleep(300)
"""


@pytest.fixture
def running(tmp_path, settings, subprocess_env):
    """Start a runner on the WAITS template; returns (process, runner, template pid) once it waits."""
    root = tmp_path / "templates"
    root.mkdir()
    settings.JTB_TEMPLATE_ROOT = root
    env = {**subprocess_env, "JTB_TEMPLATE_ROOT": str(root), "JTB_KILL_GRACE_SECONDS": str(GRACE),
           "JTB_HEARTBEAT_SECONDS": "60"}
    job = make_job(root=root, source=WAITS)

    def begin(**parameters):
        outbox = template_outbox(tmp_path)
        pid_file = outbox / f"template-{len(list(outbox.glob('template-*')))}.pid"
        process = start(job, {"pid_file": str(pid_file), **parameters})
        runner = runner_popen(process, env)
        wait_for(lambda: process.tasks.filter(name="wait").exists(), timeout=60)
        return process, runner, int(pid_file.read_text())

    return begin


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def stop(runner, sig: int) -> float:
    """Send `sig` to the runner; seconds until it exited."""
    sent = time.monotonic()
    runner.send_signal(sig)
    runner.communicate(timeout=60)
    return time.monotonic() - sent


def test_sigterm_records_the_task_and_the_process_as_interrupted_within_the_grace_period(running):
    process, runner, template = running()
    took = stop(runner, signal.SIGTERM)
    process.refresh_from_db()
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason == "Interrupted (SIGTERM)."
    assert process.tasks.get(name="wait").status == TaskStatus.FAILED
    assert process.tasks.get(name="prepare").status == TaskStatus.SUCCEEDED
    assert took < GRACE + SCHEDULING_SLACK
    assert gone(template)


def test_a_template_ignoring_sigterm_is_killed_and_still_recorded_within_the_grace_period(running):
    process, runner, template = running(stubborn=True)
    took = stop(runner, signal.SIGTERM)
    process.refresh_from_db()
    assert process.status == ProcessStatus.FAILED
    assert "interrupted" in process.failure_reason.lower()
    assert took < GRACE + SCHEDULING_SLACK
    assert gone(template)


def test_sigint_after_a_users_cancel_records_cancelled(running):
    process, runner, template = running()
    # What process_cancel writes before the executor stops the run.
    Process.objects.filter(pk=process.pk).update(cancel_requested_at=timezone.now(), failure_reason="Cancelled by ann.")
    stop(runner, signal.SIGINT)
    process.refresh_from_db()
    assert process.status == ProcessStatus.CANCELLED
    assert process.failure_reason == "Cancelled by ann."
    assert process.tasks.get(name="wait").status == TaskStatus.CANCELLED
    assert gone(template)


def test_sigkilled_runner_takes_its_template_along_and_the_reaper_fails_the_run_as_runner_lost(running):
    process, runner, template = running()
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=30)
    wait_for(lambda: gone(template), timeout=10)
    process.refresh_from_db()
    assert process.status == ProcessStatus.RUNNING  # nobody could record it

    time.sleep(1.2)
    assert processes_reap_lost(older_than_seconds=1) == [process.pk]
    process.refresh_from_db()
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason.startswith("Runner lost: no heartbeat since ")
    assert process.tasks.get(name="wait").status == TaskStatus.FAILED


@pytest.mark.django_db(transaction=True)
def test_a_runner_without_a_watcher_stops_on_a_cancel_request_and_records_cancelled(tmp_path, settings, subprocess_env):
    """After a worker restart nobody passes a cancel on as a signal: the runner finds it itself."""
    from processes.services import process_cancel

    root = tmp_path / "templates"
    root.mkdir()
    settings.JTB_TEMPLATE_ROOT = root
    job = make_job(root=root, source="""
        import time
        def main(ctx):
            with ctx.task("wait"):
                time.sleep(300)
    """)
    process = start(job)
    runner = runner_popen(process, {**subprocess_env, "JTB_TEMPLATE_ROOT": str(root), "JTB_CANCEL_CHECK_SECONDS": "1"})
    try:
        wait_for(lambda: process.tasks.filter(name="wait").exists(), timeout=120)
        process_cancel(process=Process.objects.get(pk=process.pk))
        output, _ = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
    process.refresh_from_db()
    assert process.status == ProcessStatus.CANCELLED, output
    assert process.failure_reason == "Cancelled."
    assert process.tasks.get(name="wait").status == "cancelled"

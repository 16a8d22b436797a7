"""The local executor end to end: the worker-side watcher starts the runner, follows it, stops it."""

import os
import signal
import threading
from pathlib import Path

import psutil
import pytest

from jobs.models import ConcurrencyPolicy
from processes.models import Process, ProcessStatus, TaskStatus, Trigger
from processes.selectors import process_log_read
from processes.services import process_cancel, process_start
from runner.executors.local.watch import local_run
from tests.support import make_job, template_outbox, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = """
import os, time
def main(ctx):
    with ctx.task("wait"):
        # Written inside the step, so a test that has seen the pid knows the step has begun.
        open(ctx.params["pid_file"], "w").write(str(os.getpid()))
        time.sleep(120)
"""


@pytest.fixture
def local(local_templates, settings, monkeypatch):
    """The watcher runs in this test process and starts runners with this environment."""
    settings.JTB_KILL_GRACE_SECONDS = 3
    monkeypatch.setenv("JTB_KILL_GRACE_SECONDS", "3")
    return local_templates


def in_thread(process_id: int) -> threading.Thread:
    thread = threading.Thread(target=local_run, kwargs={"process_id": process_id}, daemon=True)
    thread.start()
    return thread


def slow_run_started(root: Path, tmp_path: Path) -> tuple[Process, threading.Thread, int]:
    """Run the SLOW template through the watcher in a thread; returns once it is in its "wait" step,
    with the template's pid."""
    pid_file = template_outbox(tmp_path) / "template.pid"
    job = make_job(root=root, source=SLOW)
    process = process_start(job=job, trigger=Trigger.MANUAL, parameters={"pid_file": str(pid_file)})
    thread = in_thread(process.pk)
    pid = wait_for(lambda: pid_file.exists() and pid_file.read_text() and int(pid_file.read_text()), timeout=120)
    # The template starts before its runner loads Django: wait until the runner has recorded the step.
    wait_for(lambda: process.tasks.filter(name="wait").exists(), timeout=120)
    return process, thread, pid


def test_local_run_records_success_and_its_log_is_readable(local):
    job = make_job(root=local, source="def main(ctx):\n    with ctx.task('say'):\n        print('hello from the template')\n")
    process = process_start(job=job, trigger=Trigger.MANUAL)
    local_run(process_id=process.pk)
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUCCEEDED, process.failure_reason + process_log_read(process=process).text
    assert process.executor == "local"
    assert process.submitted_at <= process.started_at <= process.finished_at
    log = process_log_read(process=process)
    assert "hello from the template" in log.text
    # Tailing from the returned offset gives nothing new once the run is over.
    assert process_log_read(process=process, offset=log.next_offset).text == ""


def test_a_second_delivery_of_the_same_run_does_nothing(local):
    job = make_job(root=local, source="def main(ctx):\n    print('once')\n")
    process = process_start(job=job, trigger=Trigger.MANUAL)
    local_run(process_id=process.pk)
    local_run(process_id=process.pk)
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUCCEEDED
    assert process_log_read(process=process).text.count("once") == 1


def test_cancelling_a_running_local_process_stops_its_tree_and_records_cancelled(local, tmp_path):
    process, thread, pid = slow_run_started(local, tmp_path)
    process_cancel(process=Process.objects.get(pk=process.pk))
    thread.join(timeout=30)
    assert not thread.is_alive()
    process.refresh_from_db()
    assert process.status == ProcessStatus.CANCELLED
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    wait_task = process.tasks.get(name="wait")
    assert wait_task.status == TaskStatus.CANCELLED


def test_runner_killed_with_sigkill_ends_failed_with_a_reason_and_no_orphan(local, tmp_path):
    process, thread, pid = slow_run_started(local, tmp_path)
    # The template starts before the runner has loaded Django; kill it once the step is recorded.
    wait_for(lambda: process.tasks.filter(name="wait").exists())
    runner_pid = int(Process.objects.get(pk=process.pk).external_id.removeprefix("pid:"))
    os.kill(runner_pid, signal.SIGKILL)
    thread.join(timeout=30)
    process.refresh_from_db()
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason == "The runner was killed by SIGKILL before it recorded a result."
    assert process.tasks.get(name="wait").status == TaskStatus.FAILED
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 10)


def test_queue_policy_runs_one_after_the_other(local):
    job = make_job(root=local, source="import time\ndef main(ctx):\n    time.sleep(0.5)\n", concurrency_policy=ConcurrencyPolicy.QUEUE)
    first = process_start(job=job, trigger=Trigger.MANUAL)
    second = process_start(job=job, trigger=Trigger.MANUAL)
    local_run(process_id=second.pk)  # a message for a held run starts nothing
    second.refresh_from_db()
    assert second.held and second.status == ProcessStatus.QUEUED
    local_run(process_id=first.pk)
    # The runner released the waiting run as it finished the first.
    second.refresh_from_db()
    assert not second.held
    local_run(process_id=second.pk)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == ProcessStatus.SUCCEEDED
    assert second.started_at >= first.finished_at


def test_reaper_spares_a_live_local_runner_whose_heartbeat_is_late(local, tmp_path):
    from datetime import timedelta

    from django.utils import timezone

    from processes.services import processes_reap_lost
    from runner.executors.local import LocalExecutor

    process, thread, _ = slow_run_started(local, tmp_path)
    Process.objects.filter(pk=process.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    process.refresh_from_db()
    assert LocalExecutor().reconcile(process)
    assert processes_reap_lost(older_than_seconds=60) == []
    assert Process.objects.get(pk=process.pk).status == ProcessStatus.RUNNING
    process_cancel(process=process)
    thread.join(timeout=30)
    process.refresh_from_db()
    assert process.status == ProcessStatus.CANCELLED
    # Once the runner is gone, the executor says so.
    assert not LocalExecutor().reconcile(process)

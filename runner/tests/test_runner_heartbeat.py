"""Heartbeats from a running runner, and the reaper that fails runs whose runner went silent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from jobs.models import Job
from processes.models import Process, ProcessStatus, Task, TaskStatus, Trigger
from processes.services import processes_reap_lost
from processes.tasks import reap_lost_processes
from runner.executors.local import LocalExecutor
from tests.support import make_job, runner_popen, start, wait_for


def running_process(job: Job, *, beat_seconds_ago: int) -> Process:
    now = timezone.now()
    process = Process.objects.create(
        job=job, status=ProcessStatus.RUNNING, trigger=Trigger.MANUAL, executor="local",
        snapshot={"timeout_seconds": 60}, started_at=now - timedelta(hours=1),
        heartbeat_at=now - timedelta(seconds=beat_seconds_ago),
    )
    Task.objects.create(process=process, sequence=1, name="load", status=TaskStatus.RUNNING, started_at=now)
    return process


@pytest.mark.django_db(transaction=True)
def test_a_running_runner_beats_every_few_seconds(tmp_path, settings, subprocess_env):
    root = tmp_path / "templates"
    root.mkdir()
    settings.JTB_TEMPLATE_ROOT = root
    stop = tmp_path / "stop"
    job = make_job(root=root, source="""
        import os, time
        def main(ctx):
            with ctx.task("work"):
                deadline = time.monotonic() + 120
                while not os.path.exists(ctx.params["stop"]) and time.monotonic() < deadline:
                    time.sleep(0.1)
    """)
    process = start(job, {"stop": str(stop)})
    runner = runner_popen(process, {**subprocess_env, "JTB_TEMPLATE_ROOT": str(root), "JTB_HEARTBEAT_SECONDS": "1"})
    wait_for(lambda: process.tasks.exists(), timeout=120)
    beats = set()

    def three_beats() -> bool:
        beats.add(Process.objects.values_list("heartbeat_at", flat=True).get(pk=process.pk))
        return len(beats) >= 3

    # The claim's beat, then one a second while the template works.
    wait_for(three_beats, timeout=120, interval=0.3)
    stop.touch()
    runner.communicate(timeout=120)
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUCCEEDED


@pytest.mark.django_db
def test_reaper_fails_a_run_whose_runner_went_silent_and_its_open_task():
    job = Job.objects.create(name="silent", template="x.py")
    lost = running_process(job, beat_seconds_ago=600)
    assert processes_reap_lost(older_than_seconds=120) == [lost.pk]
    lost.refresh_from_db()
    assert lost.status == ProcessStatus.FAILED
    assert lost.failure_reason.startswith("Runner lost: no heartbeat since ")
    assert lost.tasks.get().status == TaskStatus.FAILED


@pytest.mark.django_db
def test_reaper_leaves_runs_that_beat_recently_or_that_the_executor_still_sees(monkeypatch):
    job = Job.objects.create(name="busy", template="x.py")
    recent = running_process(job, beat_seconds_ago=30)
    seen = running_process(job, beat_seconds_ago=600)
    monkeypatch.setattr(LocalExecutor, "reconcile", lambda self, process: process.pk == seen.pk)
    assert processes_reap_lost(older_than_seconds=120) == []
    assert set(Process.objects.filter(pk__in=[recent.pk, seen.pk]).values_list("status", flat=True)) == {
        ProcessStatus.RUNNING
    }


@pytest.mark.django_db
def test_reaper_does_not_fail_a_run_when_the_executor_cannot_answer(monkeypatch):
    job = Job.objects.create(name="unknown", template="x.py")
    process = running_process(job, beat_seconds_ago=600)

    def unreachable(self, process):
        raise ConnectionError("AWS is unreachable")

    monkeypatch.setattr(LocalExecutor, "reconcile", unreachable)
    assert processes_reap_lost(older_than_seconds=120) == []
    process.refresh_from_db()
    assert process.status == ProcessStatus.RUNNING


@pytest.mark.django_db
def test_the_periodic_reaper_uses_the_heartbeat_timeout_from_settings(settings):
    job = Job.objects.create(name="periodic", template="x.py")
    settings.JTB_HEARTBEAT_TIMEOUT_SECONDS = 300
    older = running_process(job, beat_seconds_ago=400)
    newer = running_process(job, beat_seconds_ago=200)
    assert reap_lost_processes() == [older.pk]
    assert Process.objects.get(pk=newer.pk).status == ProcessStatus.RUNNING
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    assert any(entry["task"] == "processes.tasks.reap_lost_processes" for entry in schedule.values())

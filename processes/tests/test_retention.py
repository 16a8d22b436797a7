"""Retention: old finished runs go with their tasks and logs; active runs and each job's latest stay."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from processes.models import Process, ProcessStatus, Task, Trigger
from processes.retention import history_purge
from processes.tests.history import make_history
from runner.log_retention import process_logs_delete

pytestmark = pytest.mark.django_db

OLD = timedelta(days=100)
NEW = timedelta(days=10)


def ids(runs) -> set[int]:
    return {run.pk for run in runs}


def write_logs(settings, runs) -> None:
    settings.JTB_LOG_DIR.mkdir(parents=True, exist_ok=True)
    for run in runs:
        (settings.JTB_LOG_DIR / f"process-{run.pk}.log").write_text("hello\n")


def logs_left(settings) -> set[int]:
    return {int(path.stem.removeprefix("process-")) for path in settings.JTB_LOG_DIR.glob("process-*.log")}


@pytest.fixture
def history(make_job, run_dirs):
    job, quiet = make_job(), make_job()
    old = make_history(job, 6, age=OLD)
    old_failed = make_history(job, 2, age=OLD, status=ProcessStatus.FAILED, failure_reason="boom")
    old_running = make_history(job, 1, age=OLD, status=ProcessStatus.RUNNING)
    old_queued = make_history(job, 1, age=OLD, status=ProcessStatus.QUEUED, tasks=0)
    # Finished, but the control plane has not sent its e-mail nor released queued runs yet.
    unfinalized = make_history(job, 1, age=OLD, status=ProcessStatus.FAILED, finalized_at=None)
    new = make_history(job, 3, age=NEW)
    # The only runs of this job are old: the newest one must stay (the job page and policy read it).
    quiet_runs = make_history(quiet, 3, age=OLD)
    return {"old": old, "old_failed": old_failed, "active": old_running + old_queued + unfinalized, "new": new,
            "quiet_old": quiet_runs[:-1], "quiet_latest": quiet_runs[-1:]}


def test_purge_deletes_old_finished_runs_with_their_tasks_and_logs(history, settings):
    every = [run for runs in history.values() for run in runs]
    write_logs(settings, every)
    gone = ids(history["old"] + history["old_failed"] + history["quiet_old"])

    report = history_purge(older_than=timedelta(days=90), batch_size=3, remove_logs=process_logs_delete)

    kept = set(Process.objects.values_list("pk", flat=True))
    assert kept == ids(every) - gone
    assert not Task.objects.filter(process_id__in=gone).exists()
    assert logs_left(settings) == kept
    assert (report.processes, report.tasks, report.logs) == (len(gone), 2 * len(gone), len(gone))
    assert report.batches >= len(gone) // 3


def test_active_runs_and_the_latest_run_of_each_job_survive(history):
    history_purge(older_than=timedelta(days=1))

    kept = set(Process.objects.values_list("pk", flat=True))
    assert ids(history["active"]) <= kept
    assert ids(history["quiet_latest"]) <= kept
    assert Task.objects.filter(process__in=history["active"]).count() == 4  # the running and unfinalized ones' steps
    assert not kept & ids(history["old"] + history["quiet_old"])


def test_failed_runs_can_be_kept_longer(history):
    history_purge(older_than=timedelta(days=90), keep_failed=timedelta(days=365))

    kept = set(Process.objects.values_list("pk", flat=True))
    assert ids(history["old_failed"]) <= kept
    assert not kept & ids(history["old"])


def test_dry_run_counts_and_changes_nothing(history, settings):
    write_logs(settings, history["old"])
    before = (Process.objects.count(), Task.objects.count())

    report = history_purge(older_than=timedelta(days=90), dry_run=True, remove_logs=process_logs_delete)

    assert (report.processes, report.tasks) == (10, 20)
    assert (Process.objects.count(), Task.objects.count()) == before
    assert logs_left(settings) == ids(history["old"])


def test_a_rerun_outlives_the_purged_run_it_repeated(make_job, run_dirs):
    job = make_job()
    original = make_history(job, 1, age=OLD, status=ProcessStatus.FAILED)[0]
    rerun = make_history(job, 1, age=NEW, trigger=Trigger.RERUN, rerun_of=original)[0]

    history_purge(older_than=timedelta(days=90))

    rerun.refresh_from_db()
    assert rerun.rerun_of is None
    assert not Process.objects.filter(pk=original.pk).exists()


def test_nothing_old_enough_deletes_nothing(history):
    report = history_purge(older_than=timedelta(days=1000))
    assert report.processes == report.tasks == 0
    assert Process.objects.count() == sum(len(runs) for runs in history.values())


def test_command_reports_counts_and_honours_dry_run(history):
    out = io.StringIO()
    call_command("purge_history", "--older-than", "90d", "--dry-run", stdout=out)
    assert "Would delete 10 runs and 20 tasks." in out.getvalue()
    assert Process.objects.filter(pk__in=ids(history["old"])).count() == 6

    out = io.StringIO()
    call_command("purge_history", "--older-than", "90d", "--keep-failed", "52w", "--batch-size", "2", stdout=out)
    assert out.getvalue().startswith("Deleted 8 runs and 16 tasks and 0 logs in ")
    assert Process.objects.filter(pk__in=ids(history["old_failed"])).count() == 2


@pytest.mark.parametrize(("arguments", "message"), [
    (["--older-than", "ninety"], "takes an age such as 90d"),
    (["--older-than", "0d"], "takes an age such as 90d"),
    (["--older-than", "90d", "--keep-failed", "30d"], "--keep-failed must be at least --older-than"),
])
def test_command_refuses_bad_ages_and_deletes_nothing(history, arguments, message):
    before = Process.objects.count()
    with pytest.raises(CommandError, match=message):
        call_command("purge_history", *arguments)
    assert Process.objects.count() == before


def test_command_draws_a_progress_bar_on_a_terminal(history):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    call_command("purge_history", "--older-than", "90d", "--batch-size", "4", stdout=out)
    text = out.getvalue()
    assert "\r[" in text and "100% 10/10 runs" in text
    assert "Deleted 10 runs" in text


def test_daily_task_purges_with_the_settings_and_is_off_by_default(history, settings):
    from processes.tasks import purge_history

    settings.JTB_PURGE_OLDER_THAN_DAYS = 0
    assert purge_history() == {}
    assert Process.objects.filter(pk__in=ids(history["old"])).count() == 6

    settings.JTB_PURGE_OLDER_THAN_DAYS = 90
    settings.JTB_PURGE_KEEP_FAILED_DAYS = 365
    assert purge_history() == {"processes": 8, "tasks": 16, "logs": 0}


def test_beat_sends_the_purge_daily_when_retention_is_set():
    import os
    import subprocess
    import sys

    from django.conf import settings

    code = ("import django; django.setup(); from django.conf import settings as s; "
            "e = s.CELERY_BEAT_SCHEDULE.get('jtb-purge-history'); "
            "print(e and (e['task'], sorted(e['schedule'].hour), sorted(e['schedule'].minute)))")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "jobtarget_batch.settings"}
    off = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True,
                         text=True, timeout=120)
    on = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True,
                        env={**env, "JTB_PURGE_OLDER_THAN_DAYS": "90", "JTB_PURGE_HOUR_UTC": "4"}, timeout=120)
    assert off.stdout.strip() == "None", off.stderr
    assert on.stdout.strip() == "('processes.tasks.purge_history', [4], [17])", on.stderr

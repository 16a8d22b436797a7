"""The run rollups (processes.rollup): counted once per run at finalize, equal to a recount of the
history after a mix of runs, kept through a purge, safe when two workers insert the same row."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError
from django.utils import timezone

from processes import rollup, services
from processes.models import (
    FINISHED_STATUSES,
    Process,
    ProcessHourly,
    ProcessStatus,
    ProcessTotal,
    Trigger,
)
from processes.retention import history_purge

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]


def finish(process: Process, status: str, *, ran: bool = True) -> None:
    if ran:
        assert services.process_mark_running(process_id=process.pk)
    assert services.process_finish(process_id=process.pk, status=status, finalize_later=False,
                                   failure_reason="boom" if status == ProcessStatus.FAILED else "")


def hourly_rows() -> dict:
    return {
        (row.hour, row.job_id, row.status, row.trigger): (
            row.runs, row.timed_runs, round(row.duration_seconds, 3), round(row.longest_seconds, 3),
            round(row.busy_seconds, 3), row.estimated_cost,
        )
        for row in ProcessHourly.objects.all()
    }


def total_rows() -> dict:
    fields = [field.attname for field in ProcessTotal._meta.concrete_fields if field.attname not in ("id",)]
    return {
        (row["job_id"], row["status"], row["trigger"]): {
            name: round(value, 3) if isinstance(value, float) else value for name, value in row.items()
        }
        for row in ProcessTotal.objects.values(*fields)
    }


@pytest.fixture
def mixed_runs(make_job):
    """Succeeded, failed then rerun, cancelled while queued, cancelled while running, still running."""
    etl, report = make_job(name="etl"), make_job(name="report")
    for _ in range(3):
        finish(services.process_start(job=etl, trigger=Trigger.API), ProcessStatus.SUCCEEDED)
    failed = services.process_start(job=etl, trigger=Trigger.MANUAL)
    finish(failed, ProcessStatus.FAILED)
    rerun = services.process_rerun(process=Process.objects.get(pk=failed.pk))
    finish(rerun, ProcessStatus.SUCCEEDED)
    queued = services.process_start(job=report, trigger=Trigger.API)
    services.process_cancel(process=queued)  # cancelled before it started: no run time
    running = services.process_start(job=report, trigger=Trigger.API)
    finish(running, ProcessStatus.CANCELLED)
    services.process_start(job=report, trigger=Trigger.API)
    assert services.process_mark_running(process_id=Process.objects.order_by("-pk").first().pk)
    services.processes_finalize_pending()
    return etl, report


def test_each_finalized_run_is_counted_once_and_matches_a_recount_of_the_history(mixed_runs):
    etl, report = mixed_runs
    live_hourly, live_totals = hourly_rows(), total_rows()
    # Finalizing again counts nothing more: the claim is taken.
    assert services.processes_finalize(process_ids=Process.objects.values_list("pk", flat=True)) == []
    assert (hourly_rows(), total_rows()) == (live_hourly, live_totals)

    finished = Counter(
        (job_id, status, trigger)
        for job_id, status, trigger in Process.objects.filter(status__in=FINISHED_STATUSES)
        .values_list("job_id", "status", "trigger")
    )
    assert {key: row["runs"] for key, row in live_totals.items()} == dict(finished)
    assert finished[(etl.pk, ProcessStatus.SUCCEEDED, Trigger.RERUN)] == 1
    assert live_totals[(report.pk, ProcessStatus.CANCELLED, Trigger.API)]["timed_runs"] == 1  # one never ran
    assert sum(row[0] for row in live_hourly.values()) == sum(finished.values())

    call_command("rebuild_rollups", verbosity=0)
    assert hourly_rows() == live_hourly
    assert total_rows() == live_totals


def test_a_purge_leaves_the_rollups_as_the_long_term_record(mixed_runs):
    Process.objects.update(created_at=timezone.now() - timedelta(days=100))
    before_hourly, before_totals = hourly_rows(), total_rows()
    report = history_purge(older_than=timedelta(days=90))
    assert report.processes > 0
    assert (hourly_rows(), total_rows()) == (before_hourly, before_totals)
    # A rebuild after a purge can only recount what is left.
    rollup.rollups_rebuild()
    assert sum(row["runs"] for row in total_rows().values()) < sum(row["runs"] for row in before_totals.values())


def test_a_run_over_several_hours_adds_its_run_time_to_each_hour(make_job):
    job = make_job()
    process = services.process_start(job=job, trigger=Trigger.MANUAL)
    started = datetime(2026, 3, 10, 9, 40, tzinfo=UTC)
    Process.objects.filter(pk=process.pk).update(
        status=ProcessStatus.SUCCEEDED, created_at=started - timedelta(minutes=5), started_at=started,
        finished_at=started + timedelta(hours=2),  # 09:40 to 11:40
    )
    assert services.process_finalize(process_id=process.pk)
    busy = {row.hour.hour: (row.runs, row.busy_seconds) for row in ProcessHourly.objects.all()}
    assert busy == {9: (0, 1200.0), 10: (0, 3600.0), 11: (1, 2400.0)}
    longest = ProcessHourly.objects.get(runs=1)
    assert (longest.duration_seconds, longest.longest_seconds, longest.timed_runs) == (7200.0, 7200.0, 1)
    total = ProcessTotal.objects.get()
    assert (total.wait_seconds, total.wait_le_300, total.wait_le_60, total.duration_le_7200) == (300.0, 1, 0, 1)

    live = hourly_rows()
    rollup.rollups_rebuild()
    assert hourly_rows() == live


def test_a_row_another_worker_inserted_first_is_added_to(make_job, monkeypatch):
    """The insert race: the UPDATE found no row, another worker inserted it, our INSERT fails on the
    unique constraint; the count must still go up by one, not be lost or raise."""
    job = make_job()
    key = {"job_id": job.pk, "status": ProcessStatus.SUCCEEDED, "trigger": Trigger.API}
    manager = ProcessTotal.objects
    manager.create(**key, runs=1)  # the other worker's row, committed after our UPDATE looked
    real_filter = manager.filter
    missed = []

    class UpdateBeforeTheOtherInsert:
        def __init__(self, queryset):
            self.queryset = queryset

        def update(self, **fields):
            if not missed:
                missed.append(True)
                return 0
            return self.queryset.update(**fields)

    monkeypatch.setattr(manager, "filter", lambda **kw: UpdateBeforeTheOtherInsert(real_filter(**kw)))
    rollup._add(ProcessTotal, key, {"runs": 1})
    monkeypatch.undo()
    assert missed and ProcessTotal.objects.get(**key).runs == 2

    monkeypatch.setattr(manager, "create", lambda **fields: (_ for _ in ()).throw(IntegrityError("always")))
    monkeypatch.setattr(manager, "filter", lambda **kw: ProcessTotal.objects.none())
    with pytest.raises(IntegrityError):
        rollup._add(ProcessTotal, {**key, "trigger": Trigger.MANUAL}, {"runs": 1})

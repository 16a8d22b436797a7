"""The container runner's claim before Django (runner/runtime/direct_db.py) follows the services' rule."""

from __future__ import annotations

import pytest
from django.utils import timezone

from processes.models import Process, ProcessStatus, Trigger
from processes.services import RUNNER_CLAIMS_FROM, process_finish, process_start
from runner.runtime.direct_db import CLAIMABLE_STATUSES, RUNNING, claim_direct

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_direct_claim_moves_the_same_statuses_as_the_service():
    assert set(CLAIMABLE_STATUSES) == {str(status) for status in RUNNER_CLAIMS_FROM}
    assert RUNNING == ProcessStatus.RUNNING


def test_direct_claim_takes_a_queued_run_once_and_reads_what_the_runner_needs(make_job, no_dispatch):
    job = make_job(name="direct", parameters={"since": "monday"})
    process = process_start(job=job, trigger=Trigger.MANUAL, parameters={"region": "eu"})

    first = claim_direct(process.pk)
    second = claim_direct(process.pk)

    assert first.claimed and not second.claimed and second.status == ProcessStatus.RUNNING
    assert first.job == "direct" and first.attempt == 1
    assert first.snapshot["template"] == job.template
    assert first.parameters == {"since": "monday", "region": "eu"}
    process.refresh_from_db()
    assert process.status == ProcessStatus.RUNNING
    assert abs((timezone.now() - process.started_at).total_seconds()) < 120
    assert process.heartbeat_at == process.started_at


def test_direct_claim_leaves_a_finished_run_alone_and_tells_a_missing_one(make_job, no_dispatch):
    process = process_start(job=make_job(), trigger=Trigger.MANUAL)
    process_finish(process_id=process.pk, status=ProcessStatus.CANCELLED, failure_reason="Cancelled.")
    answer = claim_direct(process.pk)
    assert not answer.claimed and answer.status == ProcessStatus.CANCELLED
    assert Process.objects.get(pk=process.pk).status == ProcessStatus.CANCELLED
    assert claim_direct(10**12).status is None

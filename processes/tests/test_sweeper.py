"""The sweeper hands runs nobody works on to the executor again, without doubling any."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from processes import services
from processes.models import Process, ProcessStatus, Trigger

pytestmark = pytest.mark.django_db

LIMITS = {"queued_seconds": 300, "submitted_seconds": 120}


def sent_ids(delay) -> list[int]:
    return [pk for call in delay.call_args_list for pk in call.args[0]]


def test_a_queued_run_whose_message_was_lost_is_sent_again_with_growing_pauses(
    make_job, no_dispatch, django_capture_on_commit_callbacks
):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        lost = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
    no_dispatch.reset_mock()
    for minutes, expected in [(4, []), (6, [lost.pk]), (8, []), (16, [lost.pk]), (20, []), (36, [lost.pk])]:
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False), \
                django_capture_on_commit_callbacks(execute=True):
            services.processes_sweep_stuck(**LIMITS)
        assert sent_ids(no_dispatch) == expected, minutes
        no_dispatch.reset_mock()
    assert Process.objects.get(pk=lost.pk).executor_details["resends"] == 3


def test_held_and_fresh_runs_are_left_alone(make_job, no_dispatch, django_capture_on_commit_callbacks):
    from jobs.models import ConcurrencyPolicy

    start = timezone.now()
    job = make_job(concurrency_policy=ConcurrencyPolicy.QUEUE)
    with time_machine.travel(start, tick=False):
        active = services.process_start(job=job, trigger=Trigger.MANUAL)
        held = services.process_start(job=job, trigger=Trigger.MANUAL)
    services.process_mark_submitted(process_id=active.pk, executor="local")
    services.process_mark_running(process_id=active.pk)
    no_dispatch.reset_mock()
    with time_machine.travel(start + timedelta(hours=1), tick=False):
        fresh = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
        with django_capture_on_commit_callbacks(execute=True):
            services.processes_sweep_stuck(**LIMITS)
    assert held.pk not in sent_ids(no_dispatch) and fresh.pk not in sent_ids(no_dispatch)
    assert sent_ids(no_dispatch) == []


def test_a_local_run_whose_worker_died_between_its_claims_is_queued_again(
    make_job, no_dispatch, django_capture_on_commit_callbacks
):
    start = timezone.now()
    process = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
    with time_machine.travel(start, tick=False):
        assert services.process_mark_submitted(process_id=process.pk, executor="local")
    no_dispatch.reset_mock()
    with time_machine.travel(start + timedelta(minutes=1), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert services.processes_sweep_stuck(**LIMITS) == {"requeued": 0, "resent": 0}
    with time_machine.travel(start + timedelta(minutes=3), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert services.processes_sweep_stuck(**LIMITS) == {"requeued": 1, "resent": 0}
    process.refresh_from_db()
    assert process.status == ProcessStatus.QUEUED and process.executor == ""
    assert sent_ids(no_dispatch) == [process.pk]
    # The worker that comes next claims it once, as ever.
    assert services.process_mark_submitted(process_id=process.pk, executor="local")
    assert not services.process_mark_submitted(process_id=process.pk, executor="local")

from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobs.models import ConcurrencyPolicy, Job
from processes import services
from processes.models import Process, ProcessStatus, Task, TaskStatus, Trigger
from tests.support import make_job as make_shared_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued():
    """Submit messages the services send, captured instead of going to the broker; finalize messages
    run at once, as the control worker would run them."""
    with mock.patch("processes.tasks.submit_processes.delay") as delay, mock.patch(
        "processes.tasks.finalize_processes.delay", side_effect=lambda ids: services.processes_finalize(process_ids=ids)
    ):
        yield delay


def make_job(**fields) -> Job:
    """The shared factory with this module's defaults: a nightly export with a default parameter."""
    return make_shared_job(**{"name": "nightly export", "parameters": {"since": "yesterday"}, **fields})


def finish(process, status=ProcessStatus.SUCCEEDED, reason=""):
    assert services.process_finish(process_id=process.pk, status=status, failure_reason=reason)
    process.refresh_from_db()
    return process


def sent_ids(delay) -> list[int]:
    return [pk for call in delay.call_args_list for pk in call.args[0]]


def test_start_creates_a_queued_process_with_merged_parameters_and_a_snapshot(enqueued, django_capture_on_commit_callbacks):
    job = make_job(python_modules=["six==1.16.0"], memory_mib=700)
    with django_capture_on_commit_callbacks(execute=True):
        process = services.process_start(job=job, trigger=Trigger.MANUAL, parameters={"limit": 5})
    assert process.status == ProcessStatus.QUEUED
    assert process.parameters == {"since": "yesterday", "limit": 5}
    assert process.snapshot["python_modules"] == ["six==1.16.0"]
    assert process.snapshot["memory_mib"] == 700
    assert sent_ids(enqueued) == [process.pk]


def test_later_job_edits_do_not_rewrite_a_runs_snapshot(enqueued):
    job = make_job(timeout_seconds=60)
    process = services.process_start(job=job, trigger=Trigger.MANUAL)
    job.timeout_seconds = 999
    job.save()
    process.refresh_from_db()
    assert process.snapshot["timeout_seconds"] == 60


def test_nothing_is_dispatched_when_the_transaction_rolls_back(enqueued, django_capture_on_commit_callbacks):
    job = make_job()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.process_start(job=job, trigger=Trigger.MANUAL)
    assert enqueued.call_count == 0  # only sent once the row is committed
    assert len(callbacks) == 1


def test_disabled_job_is_refused_with_a_reason(enqueued):
    job = make_job(enabled=False)
    with pytest.raises(services.ProcessRefused, match="disabled"):
        services.process_start(job=job, trigger=Trigger.API)
    assert Process.objects.count() == 0


@pytest.mark.parametrize("bad", [[1, 2], "text", {"x": object()}])
def test_parameters_that_are_not_a_json_object_are_refused(enqueued, bad):
    with pytest.raises(ValidationError):
        services.process_start(job=make_job(), trigger=Trigger.API, parameters=bad)
    assert Process.objects.count() == 0


def test_allow_policy_starts_every_run(enqueued, django_capture_on_commit_callbacks):
    job = make_job(concurrency_policy=ConcurrencyPolicy.ALLOW)
    with django_capture_on_commit_callbacks(execute=True):
        first = services.process_start(job=job, trigger=Trigger.MANUAL)
        second = services.process_start(job=job, trigger=Trigger.MANUAL)
    assert not first.held and not second.held
    assert sorted(sent_ids(enqueued)) == [first.pk, second.pk]


def test_skip_policy_refuses_while_a_run_is_active_and_allows_after(enqueued):
    job = make_job(concurrency_policy=ConcurrencyPolicy.SKIP)
    first = services.process_start(job=job, trigger=Trigger.MANUAL)
    with pytest.raises(services.ProcessRefused, match="already has an active run"):
        services.process_start(job=job, trigger=Trigger.SCHEDULE)
    finish(first)
    assert services.process_start(job=job, trigger=Trigger.MANUAL).status == ProcessStatus.QUEUED


def test_queue_policy_holds_the_next_run_and_starts_it_when_the_active_one_ends(
    enqueued, django_capture_on_commit_callbacks
):
    job = make_job(concurrency_policy=ConcurrencyPolicy.QUEUE)
    with django_capture_on_commit_callbacks(execute=True):
        first = services.process_start(job=job, trigger=Trigger.MANUAL)
        second = services.process_start(job=job, trigger=Trigger.MANUAL)
        third = services.process_start(job=job, trigger=Trigger.MANUAL)
    assert second.held and third.held
    assert sent_ids(enqueued) == [first.pk]

    with django_capture_on_commit_callbacks(execute=True):
        finish(first, ProcessStatus.FAILED, "boom")
    second.refresh_from_db()
    third.refresh_from_db()
    assert not second.held and third.held
    assert sent_ids(enqueued) == [first.pk, second.pk]


def test_cancelling_a_held_run_does_not_start_it_later(enqueued, django_capture_on_commit_callbacks):
    job = make_job(concurrency_policy=ConcurrencyPolicy.QUEUE)
    first = services.process_start(job=job, trigger=Trigger.MANUAL)
    held = services.process_start(job=job, trigger=Trigger.MANUAL)
    services.process_cancel(process=held)
    with django_capture_on_commit_callbacks(execute=True):
        finish(first)
    held.refresh_from_db()
    assert held.status == ProcessStatus.CANCELLED
    assert held.pk not in sent_ids(enqueued)


def test_finish_counts_only_once_and_never_moves_backwards(enqueued):
    process = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
    assert services.process_finish(process_id=process.pk, status=ProcessStatus.SUCCEEDED)
    assert not services.process_finish(process_id=process.pk, status=ProcessStatus.FAILED, failure_reason="late")
    assert not services.process_mark_running(process_id=process.pk)
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUCCEEDED
    assert process.failure_reason == ""


def test_second_runner_for_the_same_process_is_refused(enqueued):
    process = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
    assert services.process_mark_running(process_id=process.pk)
    assert not services.process_mark_running(process_id=process.pk)


def test_finishing_closes_tasks_left_running_with_the_reason(enqueued):
    process = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
    services.process_mark_running(process_id=process.pk)
    services.task_start(process_id=process.pk, sequence=1, name="extract")
    finish(process, ProcessStatus.FAILED, "Interrupted (SIGTERM).")
    task = Task.objects.get(process=process)
    assert task.status == TaskStatus.FAILED
    assert task.error == "Interrupted (SIGTERM)."


def test_task_start_retried_after_a_lost_write_adds_no_second_row(enqueued):
    process = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
    services.task_start(process_id=process.pk, sequence=1, name="extract")
    services.task_start(process_id=process.pk, sequence=1, name="extract")
    assert Task.objects.filter(process=process).count() == 1


def test_rerun_of_a_failed_process_creates_a_linked_run_with_the_same_parameters(enqueued):
    user = get_user_model().objects.create_user("ops")
    original = services.process_start(job=make_job(), trigger=Trigger.API, parameters={"day": "2024-05-01"})
    finish(original, ProcessStatus.FAILED, "boom")
    rerun = services.process_rerun(process=original, user=user)
    assert rerun.rerun_of == original
    assert rerun.trigger == Trigger.RERUN
    assert rerun.triggered_by == user
    assert rerun.parameters == original.parameters


@pytest.mark.parametrize("status", [ProcessStatus.SUCCEEDED, ProcessStatus.QUEUED])
def test_rerun_of_a_succeeded_or_active_process_is_refused(enqueued, status):
    process = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
    if status == ProcessStatus.SUCCEEDED:
        finish(process)
    with pytest.raises(services.ProcessRefused, match="Only failed or cancelled"):
        services.process_rerun(process=process)
    assert Process.objects.count() == 1


def test_cancel_of_a_queued_process_ends_it_at_once(enqueued):
    user = get_user_model().objects.create_user("ops")
    process = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
    services.process_cancel(process=process, user=user)
    process.refresh_from_db()
    assert process.status == ProcessStatus.CANCELLED
    assert "by ops" in process.failure_reason
    # A dispatch message still in flight finds nothing to do.
    with mock.patch("runner.executors.local.executor.LocalExecutor.submit") as submit:
        services.processes_submit(process_ids=[process.pk])
    submit.assert_not_called()


def test_cancel_of_a_running_process_asks_the_executor(enqueued, django_capture_on_commit_callbacks):
    process = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
    services.process_mark_submitted(process_id=process.pk, executor="local")
    services.process_mark_running(process_id=process.pk)
    with mock.patch("runner.executors.local.LocalExecutor.cancel") as cancel, django_capture_on_commit_callbacks(
        execute=True
    ):
        services.process_cancel(process=process)
    process.refresh_from_db()
    assert process.status == ProcessStatus.RUNNING  # the runner records `cancelled` when it stops
    assert process.cancel_requested_at is not None
    cancel.assert_called_once()


def test_cancel_of_a_finished_process_is_refused(enqueued):
    process = services.process_start(job=make_job(), trigger=Trigger.MANUAL)
    finish(process)
    with pytest.raises(services.ProcessRefused, match="nothing to cancel"):
        services.process_cancel(process=process)


def send_due_alerts() -> None:
    """The alerts sweeper beat runs: the failure e-mail goes out through alerts (alerts/)."""
    from alerts.tasks import send_due_deliveries

    send_due_deliveries()


def test_failure_emails_the_job_with_task_reason_and_link(
    enqueued, settings, django_capture_on_commit_callbacks, celery_eager
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.JTB_ALERT_GROUP_SECONDS = 0
    settings.JTB_BASE_URL = "https://batch.example.com"
    job = make_job(notify_emails=["data@example.com", "ops@example.com"])
    process = services.process_start(job=job, trigger=Trigger.SCHEDULE)
    services.process_mark_running(process_id=process.pk)
    services.task_start(process_id=process.pk, sequence=1, name="extract")
    services.task_finish(process_id=process.pk, sequence=1, status=TaskStatus.FAILED, error="KeyError: 'id'")
    with django_capture_on_commit_callbacks(execute=True):
        finish(process, ProcessStatus.FAILED, "Task 'extract' failed: KeyError: 'id'")
    send_due_alerts()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["data@example.com", "ops@example.com"]
    assert "nightly export" in message.subject
    assert "Failed task: extract" in message.body
    assert "KeyError: 'id'" in message.body
    assert f"https://batch.example.com/admin/processes/process/{process.pk}/change/" in message.body


def test_success_sends_no_email(enqueued, settings, django_capture_on_commit_callbacks, celery_eager):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.JTB_ALERT_GROUP_SECONDS = 0
    process = services.process_start(job=make_job(notify_emails=["data@example.com"]), trigger=Trigger.MANUAL)
    with django_capture_on_commit_callbacks(execute=True):
        finish(process)
    send_due_alerts()
    assert mail.outbox == []


def test_bulk_start_is_all_or_nothing_and_names_bad_entries(enqueued):
    job = make_job()
    requests = [
        services.RunRequest(job=job, parameters={"a": 1}),
        services.RunRequest(job=job, parameters=["not", "an", "object"]),
        services.RunRequest(job=job, parameters={"b": 2}),
    ]
    with pytest.raises(ValidationError) as error:
        services.process_start_many(requests=requests, trigger=Trigger.API)
    assert list(error.value.message_dict) == ["1"]
    assert Process.objects.count() == 0


def test_bulk_start_creates_runs_in_order_and_dispatches_in_chunks(enqueued, django_capture_on_commit_callbacks):
    job = make_job()
    requests = [services.RunRequest(job=job, parameters={"n": n}) for n in range(120)]
    with django_capture_on_commit_callbacks(execute=True):
        processes = services.process_start_many(requests=requests, trigger=Trigger.API)
    assert [p.parameters["n"] for p in processes] == list(range(120))
    assert all(p.pk for p in processes)
    assert enqueued.call_count == 3  # 50 + 50 + 20
    assert sorted(sent_ids(enqueued)) == sorted(p.pk for p in processes)


def test_reaper_fails_runs_whose_heartbeat_stopped_and_spares_fresh_ones(enqueued):
    job = make_job()
    stale = services.process_start(job=job, trigger=Trigger.MANUAL)
    fresh = services.process_start(job=job, trigger=Trigger.MANUAL)
    for process in (stale, fresh):
        services.process_mark_running(process_id=process.pk)
    Process.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    assert services.processes_reap_lost(older_than_seconds=120) == [stale.pk]
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == ProcessStatus.FAILED
    assert stale.failure_reason.startswith("Runner lost")
    assert fresh.status == ProcessStatus.RUNNING

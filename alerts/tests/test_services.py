"""Alerts end to end inside the project: a run finishes or drags, the alert is raised once, grouped,
and delivered to a real HTTP receiver on 127.0.0.1 (webhook, Slack) or by e-mail."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from alerts import services, tasks
from alerts.models import (
    Alert,
    Channel,
    ChannelKind,
    Delivery,
    DeliveryStatus,
    Event,
    JobAlertPolicy,
    JobAlertRule,
)
from alerts.tests.receiver import Receiver
from jobs.models import Schedule
from processes import services as process_services
from processes.models import Process, ProcessStatus, TaskStatus, Trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def alert_settings(settings, celery_eager, no_dispatch):
    settings.JTB_ALERT_GROUP_SECONDS = 0
    settings.JTB_BASE_URL = "https://batch.example.com"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.JTB_ALERT_SLOW_P95_FACTOR = 0
    return settings


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Run a job through the real services: start, running, one task, finish (alerts hook included)."""

    def run(job, status=ProcessStatus.FAILED, *, reason="boom", seconds: float | None = None) -> Process:
        process = process_services.process_start(job=job, trigger=Trigger.MANUAL)
        process_services.process_mark_running(process_id=process.pk)
        if seconds is not None:
            Process.objects.filter(pk=process.pk).update(started_at=timezone.now() - timedelta(seconds=seconds))
        process_services.task_start(process_id=process.pk, sequence=1, name="extract")
        task_status = TaskStatus.FAILED if status == ProcessStatus.FAILED else TaskStatus.SUCCEEDED
        process_services.task_finish(process_id=process.pk, sequence=1, status=task_status, error=reason)
        with django_capture_on_commit_callbacks(execute=True):
            assert process_services.process_finish(process_id=process.pk, status=status, failure_reason=reason)
        process.refresh_from_db()
        return process

    return run


def send_due() -> int:
    return tasks.send_due_deliveries()


def webhook(url: str, **fields) -> Channel:
    return Channel.objects.create(name=fields.pop("name", "ops webhook"), kind=ChannelKind.WEBHOOK, url=url,
                                  is_default=fields.pop("is_default", True), **fields)


def test_failing_run_sends_exactly_one_signed_webhook_post(alert_settings, make_job, run):
    job = make_job(name="nightly export")
    with Receiver() as receiver:
        channel = webhook(receiver.url + "/hook", secret="s3cr3t")
        process = run(job, reason="KeyError: 'id'")
        send_due()
        # A second sweep, and the hook called again for the same run, send nothing more.
        services.alerts_on_process_finished(process_id=process.pk)
        send_due()
    assert len(receiver.requests) == 1
    post = receiver.requests[0]
    expected = "sha256=" + hmac.new(channel.secret.encode(), post.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(post.headers["X-JTB-Signature"], expected)
    assert post.path == "/hook"
    assert post.headers["X-JTB-Event"] == "failed"
    payload = post.json
    assert payload["event"] == "failed" and payload["job"]["name"] == "nightly export"
    assert [alert["process_id"] for alert in payload["alerts"]] == [process.pk]
    assert "Failed task: extract" in payload["text"] and "KeyError: 'id'" in payload["text"]
    assert payload["alerts"][0]["url"] == f"https://batch.example.com/admin/processes/process/{process.pk}/change/"
    assert Delivery.objects.get().status == DeliveryStatus.SENT


def test_signature_does_not_verify_with_another_secret(alert_settings, make_job, run):
    with Receiver() as receiver:
        webhook(receiver.url, secret="right")
        run(make_job())
        send_due()
    post = receiver.requests[0]
    wrong = "sha256=" + hmac.new(b"wrong", post.body, hashlib.sha256).hexdigest()
    assert post.headers["X-JTB-Signature"] != wrong


def test_slack_channel_gets_readable_text_with_a_link_to_the_process(alert_settings, make_job, run):
    job = make_job(name="sales <export> & co")
    with Receiver() as receiver:
        Channel.objects.create(name="team slack", kind=ChannelKind.SLACK, url=receiver.url, is_default=True)
        process = run(job)
        send_due()
    assert len(receiver.requests) == 1
    payload = receiver.requests[0].json
    assert set(payload) == {"text"}
    link = f"<https://batch.example.com/admin/processes/process/{process.pk}/change/|Process #{process.pk}>"
    assert link in payload["text"]
    assert payload["text"].startswith("*sales &lt;export&gt; &amp; co failed")


def test_webhook_is_retried_after_a_receiver_error_and_the_attempts_are_logged(alert_settings, make_job, run):
    with Receiver(statuses=[500, 503]) as receiver:
        webhook(receiver.url)
        run(make_job())
        send_due()
    assert len(receiver.requests) == 3
    assert len({post.headers["X-JTB-Delivery"] for post in receiver.requests}) == 1
    assert len({post.body for post in receiver.requests}) == 1
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.SENT and delivery.attempts == 3
    log = list(delivery.attempt_log.values_list("number", "ok", "status_code"))
    assert log == [(1, False, 500), (2, False, 503), (3, True, 200)]


def test_webhook_gives_up_after_the_last_attempt_and_on_a_client_error(alert_settings, make_job, run):
    alert_settings.JTB_ALERT_DELIVERY_ATTEMPTS = 2
    with Receiver(statuses=[500, 500, 404]) as receiver:
        webhook(receiver.url, name="down")
        run(make_job())
        send_due()
        first = Delivery.objects.get()
        assert (first.status, first.attempts) == (DeliveryStatus.FAILED, 2)
        run(make_job())
        send_due()
    # 404 is not retried: the request itself is wrong.
    second = Delivery.objects.exclude(pk=first.pk).get()
    assert (second.status, second.attempts) == (DeliveryStatus.FAILED, 1)
    assert "HTTP 404" in second.last_error
    assert len(receiver.requests) == 3


def test_backoff_doubles_and_is_capped(settings):
    settings.JTB_ALERT_RETRY_BASE_SECONDS = 10
    settings.JTB_ALERT_RETRY_MAX_SECONDS = 60
    assert [services.delivery_backoff_seconds(attempt=n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]


def test_twenty_failures_in_a_minute_make_one_grouped_message(alert_settings, make_job, run):
    alert_settings.JTB_ALERT_GROUP_SECONDS = 60
    job = make_job(name="flaky")
    with Receiver() as receiver:
        webhook(receiver.url)
        processes = [run(job) for _ in range(20)]
        assert send_due() == 0  # the window is still open
        with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
            send_due()
        send_due()
    failed_posts = [post for post in receiver.requests if post.json["event"] == "failed"]
    assert len(failed_posts) == 1
    payload = failed_posts[0].json
    assert payload["count"] == 20
    assert sorted(alert["process_id"] for alert in payload["alerts"]) == [p.pk for p in processes]
    assert "flaky failed: 20 alerts" in payload["title"]
    # The streak alert of the third failure is its own event, sent once.
    assert [post.json["event"] for post in receiver.requests].count("failure_streak") == 1


def test_a_failure_after_the_window_closed_opens_a_new_message(alert_settings, make_job, run):
    alert_settings.JTB_ALERT_GROUP_SECONDS = 60
    job = make_job()
    with Receiver() as receiver:
        webhook(receiver.url)
        run(job)
        later = timezone.now() + timedelta(seconds=61)
        with time_machine.travel(later, tick=False):
            send_due()
        run(job)
        with time_machine.travel(later + timedelta(seconds=61), tick=False):
            send_due()
    assert [post.json["count"] for post in receiver.requests] == [1, 1]


def test_slow_running_run_raises_its_alert_once(alert_settings, make_job, run):
    job = make_job(name="etl")
    JobAlertPolicy.objects.create(job=job, slow_after_seconds=600)
    process = process_services.process_start(job=job, trigger=Trigger.MANUAL)
    process_services.process_mark_running(process_id=process.pk)
    with Receiver() as receiver:
        webhook(receiver.url)
        assert services.alerts_check().slow == []  # just started
        Process.objects.filter(pk=process.pk).update(started_at=timezone.now() - timedelta(seconds=700))
        assert services.alerts_check().slow == [process.pk]
        assert services.alerts_check().slow == []
        send_due()
        send_due()
    assert [post.json["event"] for post in receiver.requests] == ["slow"]
    assert "has been running 11 min" in receiver.requests[0].json["text"]
    assert Alert.objects.filter(event=Event.SLOW).count() == 1


def test_finished_run_over_k_times_its_p95_is_slow(alert_settings, make_job, run):
    alert_settings.JTB_ALERT_SLOW_P95_FACTOR = 3
    alert_settings.JTB_ALERT_SLOW_MIN_RUNS = 10
    alert_settings.JTB_ALERT_SLOW_MIN_SECONDS = 0
    job = make_job()
    for _ in range(20):
        run(job, ProcessStatus.SUCCEEDED, seconds=10)
    assert not Alert.objects.filter(event=Event.SLOW).exists()
    # p95 of 20 runs of 10 s is 10 s; k = 3 makes the limit 30 s.
    within = run(job, ProcessStatus.SUCCEEDED, seconds=29)
    slow = run(job, ProcessStatus.SUCCEEDED, seconds=45)
    slow_alerts = Alert.objects.filter(event=Event.SLOW)
    assert list(slow_alerts.values_list("process_id", flat=True)) == [slow.pk]
    assert within.pk not in slow_alerts.values_list("process_id", flat=True)


def test_run_stuck_waiting_to_start_raises_its_alert_once(alert_settings, make_job):
    job = make_job(name="spot job")
    JobAlertPolicy.objects.create(job=job, waiting_after_seconds=1800)
    process = process_services.process_start(job=job, trigger=Trigger.MANUAL)
    process_services.process_mark_submitted(process_id=process.pk, executor="aws_batch", external_id="j-1")
    Process.objects.filter(pk=process.pk).update(executor_state="RUNNABLE")
    fresh = process_services.process_start(job=job, trigger=Trigger.MANUAL)
    with Receiver() as receiver:
        webhook(receiver.url)
        Process.objects.filter(pk=process.pk).update(created_at=timezone.now() - timedelta(hours=2))
        assert services.alerts_check().waiting == [process.pk]
        assert services.alerts_check().waiting == []
        send_due()
    assert len(receiver.requests) == 1
    text = receiver.requests[0].json["text"]
    assert "waited 2 h 0 min to start (executor state RUNNABLE)" in text
    assert not Alert.objects.filter(process=fresh).exists()


def test_missed_schedule_raises_its_alert_once_per_due_tick(alert_settings, make_job):
    job = make_job(name="hourly")
    schedule = Schedule.objects.create(job=job, cron="0 * * * *", timezone="UTC")
    due = timezone.now() - timedelta(hours=1)
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=due)
    with Receiver() as receiver:
        webhook(receiver.url)
        assert services.alerts_check().schedules_missed == [schedule.pk]
        assert services.alerts_check().schedules_missed == []
        send_due()
    assert len(receiver.requests) == 1
    payload = receiver.requests[0].json
    assert payload["event"] == "schedule_missed"
    assert payload["alerts"][0]["schedule_id"] == schedule.pk
    assert "has not fired for 1 h 0 min" in payload["text"]
    # A disabled schedule, or one on time, raises nothing.
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=timezone.now() - timedelta(hours=3), enabled=False)
    assert services.alerts_check().schedules_missed == []


def test_failures_in_a_row_alert_once_per_streak_and_recovery_is_announced(alert_settings, make_job, run):
    job = make_job()
    JobAlertPolicy.objects.create(job=job, failures_in_row=3)
    outcomes = ["failed", "failed", "failed", "failed", "succeeded", "failed", "failed", "failed"]
    processes = [run(job, status) for status in outcomes]
    streaks = list(Alert.objects.filter(event=Event.FAILURE_STREAK).order_by("pk").values_list("process_id", flat=True))
    assert streaks == [processes[2].pk, processes[7].pk]
    recovered = list(Alert.objects.filter(event=Event.RECOVERED).values_list("process_id", flat=True))
    assert recovered == [processes[4].pk]


def test_cancelled_runs_neither_break_nor_extend_a_streak(alert_settings, make_job, run):
    job = make_job()
    JobAlertPolicy.objects.create(job=job, failures_in_row=2)
    first = run(job)
    run(job, ProcessStatus.CANCELLED)
    second = run(job)
    assert list(Alert.objects.filter(event=Event.FAILURE_STREAK).values_list("process_id", flat=True)) == [second.pk]
    assert first.pk != second.pk


def test_job_notification_emails_still_get_the_failure(alert_settings, make_job, run):
    job = make_job(name="nightly export", notify_emails=["data@example.com", "ops@example.com"])
    process = run(job, reason="Task 'extract' failed: KeyError: 'id'")
    run(job, ProcessStatus.SUCCEEDED)  # recovered: no channel, and notify_emails are for failures only
    send_due()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["data@example.com", "ops@example.com"]
    assert "nightly export failed" in message.subject and f"#{process.pk}" in message.subject
    assert "Failed task: extract" in message.body and "KeyError: 'id'" in message.body
    assert f"https://batch.example.com/admin/processes/process/{process.pk}/change/" in message.body


def test_a_job_with_rules_uses_only_its_channels_per_event(alert_settings, make_job, run):
    job = make_job()
    with Receiver() as default_receiver, Receiver() as team_receiver:
        webhook(default_receiver.url, name="default")
        team = webhook(team_receiver.url, name="team", is_default=False)
        JobAlertRule.objects.create(job=job, event=Event.RECOVERED, channel=team)
        other_job = make_job()
        run(job)
        run(job, ProcessStatus.SUCCEEDED)
        run(other_job)
        send_due()
    assert [post.json["event"] for post in team_receiver.requests] == ["recovered"]
    assert [post.json["job"]["id"] for post in default_receiver.requests] == [other_job.pk]


def test_an_e_mail_channel_gets_the_alert(alert_settings, make_job, run):
    Channel.objects.create(name="oncall", kind=ChannelKind.EMAIL, emails=["oncall@example.com"], is_default=True)
    run(make_job(name="billing"))
    send_due()
    assert [message.to for message in mail.outbox] == [["oncall@example.com"]]


def test_a_disabled_channel_gets_nothing_and_a_redelivered_attempt_sends_nothing(alert_settings, make_job, run):
    with Receiver() as receiver:
        channel = webhook(receiver.url)
        run(make_job())
        delivery = Delivery.objects.get()
        assert services.delivery_attempt(delivery_id=delivery.pk, attempt=1).claimed
        assert not services.delivery_attempt(delivery_id=delivery.pk, attempt=1).claimed
        Channel.objects.filter(pk=channel.pk).update(enabled=False)
        run(make_job())
        send_due()
    assert len(receiver.requests) == 1
    assert Delivery.objects.filter(status=DeliveryStatus.SENT).count() == 1
    assert not Delivery.objects.exclude(status=DeliveryStatus.SENT).exists()  # disabled: no route at all


def test_a_failure_whose_finish_hook_was_lost_is_alerted_by_the_check(alert_settings, make_job):
    job = make_job()
    old = process_services.process_start(job=job, trigger=Trigger.MANUAL)
    lost = process_services.process_start(job=job, trigger=Trigger.MANUAL)
    for process in (old, lost):  # no on_commit callbacks run: the hook is "lost"
        assert process_services.process_finish(process_id=process.pk, status=ProcessStatus.FAILED)
    Process.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=2))
    with Receiver() as receiver:
        webhook(receiver.url)
        assert services.alerts_check().failed == [lost.pk]
        assert services.alerts_check().failed == []
        send_due()
    assert [post.json["alerts"][0]["process_id"] for post in receiver.requests] == [lost.pk]

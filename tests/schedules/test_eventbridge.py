"""The EventBridge driver against a moto server: what AWS is told on create, update, disable and
delete, `schedules_sync` repairing drift both ways, and `run_job` starting each tick once."""

import json
import sys
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs.models import Schedule, ScheduleDriver
from jobs.services import job_delete, job_save, schedule_delete, schedule_save
from processes.models import Process, ProcessStatus, Trigger
from runner.aws.client import aws_client

ROLE = "arn:aws:iam::123456789012:role/jtb-scheduler"
GROUP = "jtb-test-group"


@pytest.fixture
def eventbridge(moto_server, settings, monkeypatch, django_capture_on_commit_callbacks):
    """Schedules sync to moto; the sync task runs at once instead of in a worker."""
    from jobs import tasks

    settings.JTB_SCHEDULER_ROLE_ARN = ROLE
    settings.JTB_SCHEDULER_GROUP = GROUP
    settings.JTB_BATCH_JOB_QUEUE = "jtb-default"
    settings.JTB_BATCH_JOB_DEFINITION = "jtb-runner"
    settings.JTB_BATCH_FARGATE_QUEUES = []
    settings.JTB_BATCH_NAME_PREFIX = "jtb"
    monkeypatch.setattr(tasks.sync_schedules, "delay", lambda ids: tasks.sync_schedules(ids))

    def committed(call, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(**kwargs)

    return committed


def remote(schedule_id):
    return aws_client("scheduler").get_schedule(Name=f"jtb-schedule-{schedule_id}", GroupName=GROUP)


def remote_names():
    answer = aws_client("scheduler").list_schedules(GroupName=GROUP)
    return sorted(item["Name"] for item in answer["Schedules"])


def expected_input(job, schedule, *, memory="2048", vcpus="1"):
    return {
        "JobName": f"jtb-job{job.pk}-schedule{schedule.pk}",
        "JobQueue": "jtb-default",
        "JobDefinition": "jtb-runner",
        "ContainerOverrides": {
            "Command": [
                "python", "manage.py", "run_job", "--job", str(job.pk), "--schedule", str(schedule.pk),
                "--scheduled-for", "<aws.scheduler.scheduled-time>",
            ],
            "ResourceRequirements": [{"Type": "VCPU", "Value": vcpus}, {"Type": "MEMORY", "Value": memory}],
        },
        "Timeout": {"AttemptDurationSeconds": 3900},
        "RetryStrategy": {"Attempts": 1, "EvaluateOnExit": [
            {"OnStatusReason": "Host EC2*", "Action": "RETRY"}, {"OnReason": "*", "Action": "EXIT"},
        ]},
        "Tags": {"jtb:job-id": str(job.pk), "jtb:schedule-id": str(schedule.pk)},
        "PropagateTags": True,
    }


def make_remote(eventbridge, make_job, cron="30 2 * * MON-FRI", name="Nightly export", **fields):
    job = make_job(name=name)
    schedule = Schedule(job=job, cron=cron, timezone="America/New_York", driver=ScheduleDriver.EVENTBRIDGE,
                        description="before the 9am meeting", **fields)
    return eventbridge(schedule_save, schedule=schedule)


def test_creating_an_eventbridge_schedule_creates_the_remote_one_exactly(eventbridge, make_job):
    schedule = make_remote(eventbridge, make_job)
    answer = remote(schedule.pk)
    assert answer["ScheduleExpression"] == "cron(30 2 ? * MON-FRI *)"
    assert answer["ScheduleExpressionTimezone"] == "America/New_York"
    assert answer["State"] == "ENABLED"
    assert answer["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert answer["Description"] == "Nightly export: before the 9am meeting"
    assert answer["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:batch:submitJob"
    assert answer["Target"]["RoleArn"] == ROLE
    assert json.loads(answer["Target"]["Input"]) == expected_input(schedule.job, schedule)
    schedule.refresh_from_db()
    assert schedule.remote_synced_at is not None and schedule.remote_error == ""
    assert schedule.next_fire_at is None  # beat leaves it to AWS


def test_start_and_end_dates_are_sent(eventbridge, make_job):
    start, end = datetime(2031, 1, 1, tzinfo=UTC), datetime(2031, 6, 30, tzinfo=UTC)
    schedule = make_remote(eventbridge, make_job, start_at=start, end_at=end)
    answer = remote(schedule.pk)
    assert (answer["StartDate"], answer["EndDate"]) == (start, end)


def test_changing_the_jobs_resources_updates_the_remote_input(eventbridge, make_job):
    schedule = make_remote(eventbridge, make_job)
    job = schedule.job
    job.memory_mib, job.vcpus = 8192, 2
    eventbridge(job_save, job=job)
    assert json.loads(remote(schedule.pk)["Target"]["Input"]) == expected_input(job, schedule, memory="8192", vcpus="2")


def test_changing_the_cron_and_zone_updates_the_remote_expression(eventbridge, make_job):
    schedule = make_remote(eventbridge, make_job)
    schedule.cron, schedule.timezone = "*/15 * * * *", "Europe/Paris"
    eventbridge(schedule_save, schedule=schedule)
    answer = remote(schedule.pk)
    assert (answer["ScheduleExpression"], answer["ScheduleExpressionTimezone"]) == (
        "cron(0/15 * * * ? *)", "Europe/Paris")


def test_disabling_the_schedule_or_its_job_disables_the_remote_one(eventbridge, make_job):
    schedule = make_remote(eventbridge, make_job)
    schedule.enabled = False
    eventbridge(schedule_save, schedule=schedule)
    assert remote(schedule.pk)["State"] == "DISABLED"
    schedule.enabled = True
    eventbridge(schedule_save, schedule=schedule)
    assert remote(schedule.pk)["State"] == "ENABLED"
    job = schedule.job
    job.enabled = False
    eventbridge(job_save, job=job)
    assert remote(schedule.pk)["State"] == "DISABLED"


def test_deleting_the_schedule_or_its_job_deletes_the_remote_one(eventbridge, make_job):
    first = make_remote(eventbridge, make_job)
    eventbridge(schedule_delete, schedule=first)
    assert remote_names() == []
    second = make_remote(eventbridge, make_job, name="Weekly export")
    assert remote_names() == [f"jtb-schedule-{second.pk}"]
    eventbridge(job_delete, job=second.job)
    assert remote_names() == []


def test_switching_to_beat_deletes_the_remote_schedule_and_beat_takes_over(eventbridge, make_job):
    schedule = make_remote(eventbridge, make_job)
    schedule.driver = ScheduleDriver.BEAT
    eventbridge(schedule_save, schedule=schedule)
    assert remote_names() == []
    assert Schedule.objects.get(pk=schedule.pk).next_fire_at is not None


def test_a_sync_failure_is_recorded_on_the_schedule(eventbridge, make_job, settings):
    settings.JTB_SCHEDULER_ROLE_ARN = ""
    schedule = make_remote(eventbridge, make_job)
    schedule.refresh_from_db()
    assert "JTB_SCHEDULER_ROLE_ARN" in schedule.remote_error
    with pytest.raises(CommandError, match="1 schedule"):
        call_command("schedules_sync")


def test_schedules_sync_removes_an_orphan_and_recreates_a_missing_one(eventbridge, make_job, capsys):
    kept = make_remote(eventbridge, make_job)
    lost = make_remote(eventbridge, make_job, cron="0 6 * * *", name="Morning import")
    client = aws_client("scheduler")
    client.delete_schedule(Name=f"jtb-schedule-{lost.pk}", GroupName=GROUP)
    orphan_spec = {key: value for key, value in client.get_schedule(Name=f"jtb-schedule-{kept.pk}", GroupName=GROUP).items()
                   if key in ("ScheduleExpression", "FlexibleTimeWindow", "Target")}
    client.create_schedule(Name="jtb-schedule-999999", GroupName=GROUP, **orphan_spec)
    client.create_schedule(Name="someone-elses", GroupName=GROUP, **orphan_spec)
    # Drift on the kept one: someone edited it in the console.
    client.update_schedule(Name=f"jtb-schedule-{kept.pk}", GroupName=GROUP, ScheduleExpression="cron(0 0 * * ? *)",
                           FlexibleTimeWindow={"Mode": "OFF"}, Target=orphan_spec["Target"])

    call_command("schedules_sync")

    assert remote_names() == sorted([f"jtb-schedule-{kept.pk}", f"jtb-schedule-{lost.pk}", "someone-elses"])
    assert remote(lost.pk)["ScheduleExpression"] == "cron(0 6 * * ? *)"
    assert remote(kept.pk)["ScheduleExpression"] == "cron(30 2 ? * MON-FRI *)"
    out = capsys.readouterr().out
    assert "deleted: 1 (999999)" in out and f"created: 1 ({lost.pk})" in out and f"updated: 1 ({kept.pk})" in out
    call_command("schedules_sync")
    assert "unchanged: 2" in capsys.readouterr().out


# --- run_job: what the remote schedule runs ---------------------------------------------------
def test_run_job_starts_each_tick_once_even_when_delivered_twice(make_job, monkeypatch, settings, capsys):
    from processes.services import process_mark_running
    from runner.management.commands import run_job

    ran: list[int] = []

    def fake_run(process_id):
        ran.append(process_id)
        process_mark_running(process_id=process_id)
        return 0

    monkeypatch.setattr(run_job, "run", fake_run)
    monkeypatch.setenv("AWS_BATCH_JOB_ID", "batch-job-1")
    job = make_job()
    schedule = schedule_save(schedule=Schedule(job=job, cron="0 7 * * *", timezone="UTC",
                                               driver=ScheduleDriver.EVENTBRIDGE))
    args = ["--job", str(job.pk), "--schedule", str(schedule.pk), "--scheduled-for", "2025-03-09T07:00:00Z"]
    call_command("run_job", *args)
    call_command("run_job", *args)  # at-least-once delivery
    process = Process.objects.get(schedule=schedule)
    assert ran == [process.pk]
    assert (process.trigger, process.scheduled_for, process.status) == (
        Trigger.SCHEDULE, datetime(2025, 3, 9, 7, tzinfo=UTC), ProcessStatus.RUNNING)
    assert (process.executor, process.external_id) == ("aws_batch", "batch-job-1")
    assert Schedule.objects.get(pk=schedule.pk).last_fired_at == datetime(2025, 3, 9, 7, tzinfo=UTC)
    assert "already running" in capsys.readouterr().out


def test_run_job_for_a_deleted_or_disabled_schedule_runs_nothing(make_job, capsys):
    job = make_job()
    call_command("run_job", "--job", str(job.pk), "--schedule", "424242", "--scheduled-for", "2025-03-09T07:00:00Z")
    assert "does not exist" in capsys.readouterr().out
    schedule = schedule_save(schedule=Schedule(job=job, cron="0 7 * * *", timezone="UTC", enabled=False))
    call_command("run_job", "--job", str(job.pk), "--schedule", str(schedule.pk), "--scheduled-for",
                 "2025-03-09T07:00:00Z")
    assert "disabled" in capsys.readouterr().out
    assert Process.objects.count() == 0


def test_run_job_refuses_a_time_without_a_zone(make_schedule):
    schedule = make_schedule("0 7 * * *")
    with pytest.raises(CommandError, match="needs a time zone"):
        call_command("run_job", "--job", str(schedule.job_id), "--schedule", str(schedule.pk),
                     "--scheduled-for", "2025-03-09T07:00:00")


@pytest.mark.slow
def test_run_job_subprocess_runs_the_template_once_for_two_deliveries(make_job, subprocess_env):
    import subprocess

    from django.conf import settings as django_settings

    job = make_job(template="examples/hello.py")
    schedule = schedule_save(schedule=Schedule(job=job, cron="0 7 * * *", timezone="UTC",
                                               driver=ScheduleDriver.EVENTBRIDGE))
    command = [sys.executable, "manage.py", "run_job", "--job", str(job.pk), "--schedule", str(schedule.pk),
               "--scheduled-for", "2025-03-09T07:00:00Z"]
    for _ in range(2):
        done = subprocess.run(command, env=subprocess_env, cwd=django_settings.BASE_DIR, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stderr
    process = Process.objects.get(schedule=schedule)
    assert process.status == ProcessStatus.SUCCEEDED

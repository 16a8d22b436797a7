from unittest import mock

import pytest
from django.urls import reverse

from jobs.models import Job, Schedule

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_dispatch():
    with mock.patch("processes.tasks.dispatch_processes.delay"):
        yield


@pytest.fixture
def job():
    return Job.objects.create(name="nightly", template="examples/hello.py")


def inline_form(job, **schedule):
    data = {
        "name": job.name, "description": "", "enabled": "on", "template": job.template, "python_modules": "",
        "vcpus": "1", "memory_mib": "512", "gpus": "0", "timeout_seconds": "60", "retry_attempts": "1",
        "queue": "", "parameters": "{}", "environment": "{}", "concurrency_policy": "allow", "notify_emails": "",
        "tags": "{}", "schedules-TOTAL_FORMS": "1", "schedules-INITIAL_FORMS": "0",
        "schedules-0-cron": "30 1 * * MON-FRI", "schedules-0-timezone": "America/New_York",
        "schedules-0-driver": "beat", "schedules-0-enabled": "on",
    }
    data.update({f"schedules-0-{key}": value for key, value in schedule.items()})
    return data


def test_schedule_added_inline_on_the_job_page_gets_its_next_fire_time(admin_client, job):
    response = admin_client.post(reverse("admin:jobs_job_change", args=[job.pk]), inline_form(job))
    assert response.status_code == 302
    schedule = Schedule.objects.get(job=job)
    assert schedule.cron == "30 1 * * MON-FRI"
    assert schedule.next_fire_at is not None
    page = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    assert "01:30 AM, Monday through Friday" in page


@pytest.mark.parametrize(
    "field, value, message",
    [("cron", "61 * * * *", "cron"), ("cron", "* * *", "five fields"), ("timezone", "Mars/Olympus", "time zone")],
)
def test_bad_schedule_inline_is_refused_with_a_message_and_nothing_saved(admin_client, job, field, value, message):
    response = admin_client.post(reverse("admin:jobs_job_change", args=[job.pk]), inline_form(job, **{field: value}))
    assert response.status_code == 200
    errors = str(response.context["inline_admin_formsets"][0].formset.errors)
    assert message in errors.lower() or message in errors
    assert not Schedule.objects.exists()


def test_schedule_page_shows_words_next_runs_and_runs_started(admin_client, job):
    admin_client.post(reverse("admin:jobs_job_change", args=[job.pk]), inline_form(job))
    schedule = Schedule.objects.get()
    page = admin_client.get(reverse("admin:jobs_schedule_change", args=[schedule.pk])).content.decode()
    assert "Monday through Friday" in page
    assert "EST" in page or "EDT" in page
    listing = admin_client.get(reverse("admin:jobs_schedule_changelist")).content.decode()
    assert "nightly" in listing

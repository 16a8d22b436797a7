"""The one input gate through the admin: JSON typed with NUL, lone surrogates (`"\\udc00"` is valid
JSON) or deep nesting is a form error and nothing is written; hand-edited URLs never give a 500."""

from __future__ import annotations

import pytest
from django.urls import reverse

from jobs.models import Job, Schedule
from processes.models import Process, ProcessStatus, Trigger

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]

BAD_JSON = {
    "surrogate": '{"K": "\\udc00"}',
    "surrogate-key": '{"\\ud800": "x"}',
    "nul": '{"K": "a\\u0000b"}',
    "deep": '{"K": ' + "[" * 40 + "]" * 40 + "}",
    "very-deep": "[" * 20_000 + "]" * 20_000,
}


@pytest.fixture
def job(make_job):
    return make_job(name="nightly", environment={"REGION": "eu"})


def job_form(job: Job | None, **changes) -> dict:
    data = {
        "name": job.name if job else "new job", "description": "", "enabled": "on", "template": "examples/hello.py",
        "python_modules": "", "vcpus": "1", "memory_mib": "512", "gpus": "0", "timeout_seconds": "60",
        "retry_attempts": "1", "queue": "", "parameters": "{}", "environment": "{}", "concurrency_policy": "allow",
        "notify_emails": "", "tags": "{}", "schedules-TOTAL_FORMS": "0", "schedules-INITIAL_FORMS": "0",
    }
    data.update(changes)
    return data


def assert_pages_still_load(admin_client, job: Job) -> None:
    for url in (reverse("admin:jobs_job_changelist"), reverse("admin:jobs_job_change", args=[job.pk]),
                reverse("admin:processes_process_changelist"), reverse("admin:jobs_schedule_changelist")):
        assert admin_client.get(url).status_code == 200, url


@pytest.mark.parametrize("label", list(BAD_JSON))
@pytest.mark.parametrize("field", ["parameters", "environment", "tags"])
def test_bad_json_in_a_job_form_is_a_form_error_and_nothing_changes(admin_client, job, field, label):
    before = Job.objects.values().get(pk=job.pk)

    changed = admin_client.post(reverse("admin:jobs_job_change", args=[job.pk]), job_form(job, **{field: BAD_JSON[label]}))
    added = admin_client.post(reverse("admin:jobs_job_add"), job_form(None, **{field: BAD_JSON[label]}))

    for response in (changed, added):
        assert response.status_code == 200
        assert field in response.context["adminform"].form.errors
    assert Job.objects.count() == 1 and Job.objects.values().get(pk=job.pk) == before
    assert_pages_still_load(admin_client, job)


@pytest.mark.parametrize("label", ["surrogate", "nul", "deep", "very-deep"])
def test_bad_json_on_the_run_page_is_a_form_error_and_no_run_starts(admin_client, job, label):
    response = admin_client.post(reverse("admin:jobs_job_run", args=[job.pk]), {"parameters": BAD_JSON[label]})

    assert response.status_code == 200
    assert "parameters" in response.context["form"].errors
    assert not Process.objects.exists()


@pytest.mark.parametrize("field", ["name", "description", "template", "queue"])
def test_a_nul_posted_in_any_admin_form_field_is_refused_before_the_view(admin_client, job, field):
    before = Job.objects.values().get(pk=job.pk)

    response = admin_client.post(reverse("admin:jobs_job_change", args=[job.pk]), job_form(job, **{field: "a\x00b"}))

    assert response.status_code == 400
    assert Job.objects.values().get(pk=job.pk) == before


def test_a_schedule_with_a_nul_in_its_description_or_a_year_9999_start_is_refused(admin_client, job):
    url = reverse("admin:jobs_schedule_add")
    base = {"job": job.pk, "cron": "0 6 * * *", "timezone": "UTC", "driver": "beat", "enabled": "on",
            "description": ""}

    nul = admin_client.post(url, {**base, "description": "a\x00"})
    year = admin_client.post(url, {**base, "start_at_0": "9999-12-31", "start_at_1": "23:59:59"})

    assert nul.status_code == 400
    assert year.status_code == 200 and "start_at" in year.context["adminform"].form.errors
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("query", ["job=abc", "job=99999999999999999999999", "job=-1", "job=%00", "job=%D9%A3",
                                   "status=nope", "trigger=%00", "created_at__gte=abc", "q=%00", "o=abc"])
def test_hand_edited_process_list_urls_are_ignored_or_refused_never_a_server_error(admin_client, job, query):
    Process.objects.create(job=job, trigger=Trigger.MANUAL, status=ProcessStatus.FAILED)

    response = admin_client.get(reverse("admin:processes_process_changelist") + "?" + query)

    assert response.status_code in (200, 302, 400), response.status_code


def test_an_unknown_job_filter_value_lists_no_runs_rather_than_all(admin_client, job):
    Process.objects.create(job=job, trigger=Trigger.MANUAL, status=ProcessStatus.FAILED)

    response = admin_client.get(reverse("admin:processes_process_changelist") + "?job=abc")

    assert response.status_code == 200
    assert response.context["cl"].result_count == 0

"""The job and schedule forms catch mistakes at save: missing templates, unset AWS, numbers out of range."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jobs.models import Job, Schedule

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]


def job_form(**fields) -> dict:
    data = {
        "name": "nightly", "description": "", "enabled": "on", "template": "examples/hello.py", "python_modules": "",
        "vcpus": "1", "memory_mib": "512", "gpus": "0", "timeout_seconds": "60", "retry_attempts": "1",
        "queue": "", "parameters": "{}", "environment": "{}", "concurrency_policy": "allow", "notify_emails": "",
        "tags": "{}", "schedules-TOTAL_FORMS": "0", "schedules-INITIAL_FORMS": "0",
    }
    data.update(fields)
    return data


def test_a_local_template_that_does_not_exist_is_refused_without_showing_server_paths(admin_client, settings):
    response = admin_client.post(reverse("admin:jobs_job_add"), job_form(template="examples/nope.py"))
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors["template"])
    assert "There is no template examples/nope.py" in errors
    assert str(settings.JTB_TEMPLATE_ROOT) not in response.content.decode()
    assert not Job.objects.exists()


def test_an_s3_template_is_saved_with_a_warning(admin_client, settings):
    settings.JTB_TEMPLATE_BUCKETS = ["my-bucket"]
    response = admin_client.post(reverse("admin:jobs_job_add"), job_form(template="s3://my-bucket/jobs/report.py"),
                                 follow=True)
    assert Job.objects.get().template == "s3://my-bucket/jobs/report.py"
    warnings = [str(m) for m in response.context["messages"] if m.level_tag == "warning"]
    assert any("was not checked" in w for w in warnings)


def test_editing_a_job_whose_template_went_missing_can_still_disable_it(admin_client, make_job, settings, tmp_path):
    job = make_job(name="nightly")
    Job.objects.filter(pk=job.pk).update(template="examples/gone.py")
    response = admin_client.post(reverse("admin:jobs_job_change", args=[job.pk]),
                                 job_form(template="examples/gone.py", enabled=""))
    assert response.status_code == 302
    assert Job.objects.get(pk=job.pk).enabled is False


def test_eventbridge_schedule_is_refused_while_aws_is_not_configured(admin_client, make_job, settings):
    settings.JTB_SCHEDULER_ROLE_ARN = ""
    job = make_job(name="nightly")
    data = job_form(**{
        "schedules-TOTAL_FORMS": "1", "schedules-0-cron": "0 6 * * *", "schedules-0-timezone": "UTC",
        "schedules-0-driver": "eventbridge", "schedules-0-enabled": "on",
    })
    response = admin_client.post(reverse("admin:jobs_job_change", args=[job.pk]), data)
    assert response.status_code == 200
    assert "JTB_SCHEDULER_ROLE_ARN is empty" in str(response.context["inline_admin_formsets"][0].formset.errors)
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("field, low, high, message", [
    ("memory_mib", "5", "4000001", "Memory (MiB) must be a whole number from 6 to 4000000."),
    ("retry_attempts", "0", "11", "Attempts must be a whole number from 1 to 10."),
    ("vcpus", "0.1", "10000", "vCPUs must be a number with at most 2 decimals from 0.25 to 9999.99."),
])
def test_numbers_out_of_range_get_one_message_whichever_limit_is_crossed(admin_client, field, low, high, message):
    for value in (low, high, "abc"):
        response = admin_client.post(reverse("admin:jobs_job_add"), job_form(**{field: value}))
        assert response.context["adminform"].form.errors[field] == [message], value
    page = admin_client.get(reverse("admin:jobs_job_add")).content.decode()
    assert 'min="6"' not in page  # the browser's own range message would come first and differ


def test_run_now_is_not_offered_on_a_disabled_job(admin_client, make_job):
    job = make_job(name="nightly")
    assert "runlink" in admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    Job.objects.filter(pk=job.pk).update(enabled=False)
    assert "runlink" not in admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()


def test_the_add_form_uploads_a_template_beside_the_field_and_gets_its_path(admin_client, settings, tmp_path):
    settings.JTB_TEMPLATE_ROOT = tmp_path
    page = admin_client.get(reverse("admin:jobs_job_add")).content.decode()
    assert 'class="jtb-template-file"' in page
    upload = SimpleUploadedFile("report.py", b"def main(ctx):\n    pass\n")
    response = admin_client.post(reverse("admin:jobs_job_upload_template"), {"file": upload},
                                 HTTP_ACCEPT="application/json")
    template = response.json()["template"]
    assert template.startswith("uploads/") and (tmp_path / template).is_file()
    bad = admin_client.post(reverse("admin:jobs_job_upload_template"),
                            {"file": SimpleUploadedFile("report.txt", b"x")}, HTTP_ACCEPT="application/json")
    assert bad.status_code == 400 and "Python file" in " ".join(bad.json()["errors"])
    assert not Job.objects.exists()


def test_the_add_form_offers_empty_json_objects_not_null(admin_client):
    """A non-engineer shown "null" in Default parameters, Environment and Tags does not know what to type."""
    page = admin_client.get(reverse("admin:jobs_job_add")).content.decode()
    for field in ("parameters", "environment", "tags"):
        textarea = re.search(rf'<textarea name="{field}"[^>]*>(.*?)</textarea>', page, re.S)
        assert textarea is not None, field
        assert textarea.group(1).strip() == "{}", (field, textarea.group(1))

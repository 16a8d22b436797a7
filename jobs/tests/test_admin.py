
import pytest
from django.urls import reverse

from jobs.models import Job, Schedule

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]




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


def test_uploading_a_template_for_a_job_stores_it_and_points_the_job_at_it(admin_client, job, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.JTB_TEMPLATE_ROOT = tmp_path
    upload = SimpleUploadedFile("report.py", b"def main(ctx):\n    pass\n")
    response = admin_client.post(reverse("admin:jobs_job_upload_job_template", args=[job.pk]), {"file": upload})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.template.startswith("uploads/") and job.template.endswith("/report.py")
    assert (tmp_path / job.template).read_bytes() == b"def main(ctx):\n    pass\n"


def test_uploading_a_template_for_a_new_job_prefills_the_add_form(admin_client, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.JTB_TEMPLATE_ROOT = tmp_path
    response = admin_client.post(reverse("admin:jobs_job_upload_template"),
                                 {"file": SimpleUploadedFile("new.py", b"def main(ctx):\n    pass\n")})
    assert response.status_code == 302
    form = admin_client.get(response["Location"]).context["adminform"].form
    assert form.initial["template"].endswith("/new.py")


@pytest.mark.parametrize("name, content", [("bad name;rm.py", b"x=1"), ("notes.txt", b"hi"), ("bin.py", b"\xff\xfe")])
def test_bad_template_uploads_are_refused_with_a_message(admin_client, job, settings, tmp_path, name, content):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.JTB_TEMPLATE_ROOT = tmp_path
    before = job.template
    response = admin_client.post(reverse("admin:jobs_job_upload_job_template", args=[job.pk]),
                                 {"file": SimpleUploadedFile(name, content)})
    assert response.status_code == 200
    assert response.context["form"].errors["file"]
    job.refresh_from_db()
    assert job.template == before
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").rglob("*.py"))


def test_uploaded_file_name_with_a_path_is_stored_inside_the_upload_folder(admin_client, job, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.JTB_TEMPLATE_ROOT = tmp_path / "root"
    (tmp_path / "root").mkdir()
    admin_client.post(reverse("admin:jobs_job_upload_job_template", args=[job.pk]),
                      {"file": SimpleUploadedFile("../../evil.py", b"def main(ctx):\n    pass\n")})
    job.refresh_from_db()
    assert job.template.startswith("uploads/") and ".." not in job.template
    assert not (tmp_path / "evil.py").exists()


import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from jobs.models import Job
from processes import services
from processes.models import Process, ProcessStatus, Task, TaskStatus, Trigger

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]




@pytest.fixture
def job():
    return Job.objects.create(name="nightly", template="examples/hello.py")


def make_runs(job, count):
    for _ in range(count):
        process = services.process_start(job=job, trigger=Trigger.MANUAL)
        services.process_mark_running(process_id=process.pk)
        services.task_start(process_id=process.pk, sequence=1, name="extract")


def changelist_queries(client, django_assert_max_num_queries, url):
    # Render once to warm caches (content types, sessions), then count.
    client.get(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_process_list_runs_the_same_queries_for_5_or_40_rows(admin_client, job, django_assert_max_num_queries):
    url = reverse("admin:processes_process_changelist")
    make_runs(job, 5)
    few = changelist_queries(admin_client, django_assert_max_num_queries, url)
    make_runs(job, 35)
    many = changelist_queries(admin_client, django_assert_max_num_queries, url)
    assert few == many
    # No full COUNT(*) of the table: the paginator counts at most its cap.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        admin_client.get(url)
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts)


def test_task_list_runs_the_same_queries_for_few_or_many_rows(admin_client, job, django_assert_max_num_queries):
    url = reverse("admin:processes_task_changelist")
    make_runs(job, 3)
    few = changelist_queries(admin_client, django_assert_max_num_queries, url)
    make_runs(job, 20)
    assert changelist_queries(admin_client, django_assert_max_num_queries, url) == few


def test_process_list_filters_by_status_job_and_trigger(admin_client, job):
    other = Job.objects.create(name="other", template="examples/hello.py")
    make_runs(job, 2)
    failed = services.process_start(job=other, trigger=Trigger.API)
    services.process_finish(process_id=failed.pk, status=ProcessStatus.FAILED, failure_reason="boom")
    url = reverse("admin:processes_process_changelist")
    response = admin_client.get(url, {"status__exact": "failed", "job": other.pk, "trigger__exact": "api"})
    assert list(response.context["cl"].result_list) == [failed]


def test_process_page_shows_tasks_with_durations_reason_and_log(admin_client, job, settings, tmp_path):
    settings.JTB_LOG_DIR = tmp_path
    process = services.process_start(job=job, trigger=Trigger.MANUAL)
    Process.objects.filter(pk=process.pk).update(executor="local")
    services.process_mark_running(process_id=process.pk)
    services.task_start(process_id=process.pk, sequence=1, name="extract")
    services.task_finish(process_id=process.pk, sequence=1, status=TaskStatus.FAILED, error="KeyError: 'id'",
                         traceback="Traceback (most recent call last):\nKeyError: 'id'")
    services.process_finish(process_id=process.pk, status=ProcessStatus.FAILED, failure_reason="Task 'extract' failed: KeyError: 'id'")
    (tmp_path / f"process-{process.pk}.log").write_text("fetched 10 rows\n")
    response = admin_client.get(reverse("admin:processes_process_change", args=[process.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Task &#x27;extract&#x27; failed: KeyError: &#x27;id&#x27;" in body
    assert "extract" in body and "Traceback (most recent call last)" in body
    assert "fetched 10 rows" in body


def test_rerun_action_reruns_failed_and_refuses_succeeded(admin_client, job):
    failed = services.process_start(job=job, trigger=Trigger.MANUAL)
    services.process_finish(process_id=failed.pk, status=ProcessStatus.FAILED, failure_reason="boom")
    succeeded = services.process_start(job=job, trigger=Trigger.MANUAL)
    services.process_finish(process_id=succeeded.pk, status=ProcessStatus.SUCCEEDED)
    response = admin_client.post(
        reverse("admin:processes_process_changelist"),
        {"action": "rerun", "_selected_action": [failed.pk, succeeded.pk]}, follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    rerun = Process.objects.get(rerun_of=failed)
    assert rerun.trigger == Trigger.RERUN
    assert not Process.objects.filter(rerun_of=succeeded).exists()
    assert any(f"#{rerun.pk}" in m for m in messages)
    assert any("Only failed or cancelled" in m for m in messages)


def test_cancel_action_cancels_a_queued_process(admin_client, job):
    process = services.process_start(job=job, trigger=Trigger.MANUAL)
    admin_client.post(reverse("admin:processes_process_changelist"), {"action": "cancel", "_selected_action": [process.pk]})
    process.refresh_from_db()
    assert process.status == ProcessStatus.CANCELLED


def test_run_page_starts_a_run_with_parameters_and_opens_it(admin_client, job):
    response = admin_client.post(reverse("admin:jobs_job_run", args=[job.pk]), {"parameters": '{"name": "Ada"}'})
    process = Process.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:processes_process_change", args=[process.pk])
    assert process.parameters == {"name": "Ada"}
    assert process.trigger == Trigger.MANUAL


@pytest.mark.parametrize("bad", ["[1, 2]", "{not json", '"text"'])
def test_run_page_refuses_bad_parameters_and_starts_nothing(admin_client, job, bad):
    response = admin_client.post(reverse("admin:jobs_job_run", args=[job.pk]), {"parameters": bad})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not Process.objects.exists()


def test_run_page_of_a_disabled_job_says_why(admin_client, job):
    job.enabled = False
    job.save()
    response = admin_client.post(reverse("admin:jobs_job_run", args=[job.pk]), {"parameters": "{}"})
    assert "disabled" in response.content.decode()
    assert not Process.objects.exists()


def test_staff_without_run_permission_cannot_run(client, django_user_model, job):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(user)
    assert client.post(reverse("admin:jobs_job_run", args=[job.pk]), {"parameters": "{}"}).status_code == 403
    assert not Process.objects.exists()


def test_run_now_action_starts_runs_and_reports_skips(admin_client, job):
    skip_job = Job.objects.create(name="single", template="examples/hello.py", concurrency_policy="skip")
    services.process_start(job=skip_job, trigger=Trigger.MANUAL)
    response = admin_client.post(
        reverse("admin:jobs_job_changelist"), {"action": "run_now", "_selected_action": [job.pk, skip_job.pk]},
        follow=True,
    )
    messages = [str(m) for m in response.context["messages"]]
    assert Process.objects.filter(job=job).count() == 1
    assert Process.objects.filter(job=skip_job).count() == 1
    assert "Started 1 run(s)." in messages
    assert any("skip" in m for m in messages)


def job_form(**overrides):
    data = {
        "name": "new job", "description": "", "enabled": "on", "template": "examples/hello.py",
        "python_modules": "requests>=2.31\nsix", "vcpus": "0.25", "memory_mib": "512", "gpus": "0",
        "timeout_seconds": "60", "retry_attempts": "1", "queue": "", "parameters": "{}", "environment": "{}",
        "concurrency_policy": "allow", "notify_emails": "ops@example.com", "tags": "{}",
        "schedules-TOTAL_FORMS": "0", "schedules-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_job_form_saves_modules_and_emails_typed_one_per_line(admin_client):
    response = admin_client.post(reverse("admin:jobs_job_add"), job_form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    job = Job.objects.get(name="new job")
    assert job.python_modules == ["requests>=2.31", "six"]
    assert job.notify_emails == ["ops@example.com"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("python_modules", "--index-url http://x"),
        ("python_modules", "-e git+https://github.com/x/y"),
        ("python_modules", "pkg @ https://x/y.whl"),
        ("python_modules", "-r /etc/passwd"),
        ("python_modules", "pkg; rm -rf /"),
        ("vcpus", "0"),
        ("vcpus", "-1"),
        ("memory_mib", "0"),
        ("timeout_seconds", "0"),
        ("template", "../outside.py"),
        ("template", "/etc/passwd"),
        ("template", "ftp://host/x.py"),
        ("notify_emails", "not-an-email"),
        ("environment", '{"PATH": "/tmp"}'),
        ("parameters", "[1, 2]"),
        ("parameters", '{"a": "\\u0000"}'),
    ],
)
def test_job_form_refuses_bad_input_with_a_message_and_saves_nothing(admin_client, field, value):
    response = admin_client.post(reverse("admin:jobs_job_add"), job_form(**{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert all(message.strip() for message in errors[field])
    assert not Job.objects.exists()


def test_deleting_a_job_with_an_active_run_is_refused_in_the_admin(admin_client, job):
    services.process_start(job=job, trigger=Trigger.MANUAL)
    response = admin_client.post(reverse("admin:jobs_job_delete", args=[job.pk]), {"post": "yes"}, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert Job.objects.filter(pk=job.pk).exists()
    assert any("active run" in m for m in messages)
    assert not any("deleted" in m for m in messages)


def test_deleting_a_job_without_active_runs_deletes_it(admin_client, job):
    admin_client.post(reverse("admin:jobs_job_delete", args=[job.pk]), {"post": "yes"})
    assert not Job.objects.filter(pk=job.pk).exists()


def test_an_active_run_cannot_be_deleted_from_its_page_it_is_cancelled(admin_client, job):
    running = services.process_start(job=job, trigger=Trigger.MANUAL)
    services.process_mark_running(process_id=running.pk)
    page = admin_client.get(reverse("admin:processes_process_change", args=[running.pk])).content.decode()
    assert reverse("admin:processes_process_delete", args=[running.pk]) not in page
    assert "Cancel" in page
    response = admin_client.post(reverse("admin:processes_process_delete", args=[running.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Process.objects.filter(pk=running.pk).exists()

    services.process_finish(process_id=running.pk, status=ProcessStatus.SUCCEEDED)
    page = admin_client.get(reverse("admin:processes_process_change", args=[running.pk])).content.decode()
    assert reverse("admin:processes_process_delete", args=[running.pk]) in page


def test_the_delete_action_refuses_a_selection_with_an_active_run_and_deletes_nothing(admin_client, job):
    finished = services.process_start(job=job, trigger=Trigger.MANUAL)
    services.task_start(process_id=finished.pk, sequence=1, name="extract")
    services.process_finish(process_id=finished.pk, status=ProcessStatus.FAILED, failure_reason="boom")
    queued = services.process_start(job=job, trigger=Trigger.MANUAL)
    url = reverse("admin:processes_process_changelist")

    both = {"action": "delete_selected", "_selected_action": [finished.pk, queued.pk]}
    for answer in ({}, {"post": "yes"}):  # the confirmation page, and a forged confirmation
        response = admin_client.post(url, {**both, **answer}, follow=True)
        messages = [str(m) for m in response.context["messages"]]
        assert any(f"Nothing was deleted: #{queued.pk} is still active" in m for m in messages), messages
        assert Process.objects.filter(pk__in=[finished.pk, queued.pk]).count() == 2

    response = admin_client.post(url, {"action": "delete_selected", "_selected_action": [finished.pk]})
    assert response.status_code == 200 and "Are you sure" in response.content.decode()  # the stock confirmation
    admin_client.post(url, {"action": "delete_selected", "_selected_action": [finished.pk], "post": "yes"})
    assert not Process.objects.filter(pk=finished.pk).exists()
    assert not Task.objects.filter(process_id=finished.pk).exists()
    assert Process.objects.filter(pk=queued.pk).exists()


def test_job_page_lists_recent_runs(admin_client, job):
    make_runs(job, 3)
    response = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk]))
    body = response.content.decode()
    for process in Process.objects.filter(job=job):
        assert reverse("admin:processes_process_change", args=[process.pk]) in body
    assert Task.objects.filter(process__job=job).count() == 3


def test_rerun_button_on_a_failed_process_opens_the_new_run(admin_client, job):
    failed = services.process_start(job=job, trigger=Trigger.MANUAL)
    services.process_finish(process_id=failed.pk, status=ProcessStatus.FAILED, failure_reason="boom")
    page = admin_client.get(reverse("admin:processes_process_change", args=[failed.pk])).content.decode()
    assert 'id="rerun-button"' in page and 'id="cancel-button"' not in page
    response = admin_client.post(reverse("admin:processes_process_rerun", args=[failed.pk]))
    rerun = Process.objects.get(rerun_of=failed)
    assert response["Location"] == reverse("admin:processes_process_change", args=[rerun.pk])


def test_cancel_button_on_a_queued_process_cancels_it(admin_client, job):
    process = services.process_start(job=job, trigger=Trigger.MANUAL)
    page = admin_client.get(reverse("admin:processes_process_change", args=[process.pk])).content.decode()
    assert 'id="cancel-button"' in page and 'id="rerun-button"' not in page
    admin_client.post(reverse("admin:processes_process_cancel", args=[process.pk]))
    process.refresh_from_db()
    assert process.status == ProcessStatus.CANCELLED
    assert admin_client.get(reverse("admin:processes_process_cancel", args=[process.pk])).status_code == 405


def test_process_list_offers_no_facet_counts_over_the_whole_history(admin_client, job):
    make_runs(job, 2)
    page = admin_client.get(reverse("admin:processes_process_changelist")).content.decode()
    assert "Show counts" not in page

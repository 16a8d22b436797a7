"""The process and task search boxes: every form finds its runs, and text search stays bounded."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from processes.models import Process, ProcessStatus, Task, Trigger
from processes.search import process_search_filter, task_search_filter
from processes.tests.history import make_history

pytestmark = pytest.mark.django_db


def found(term: str) -> set[int]:
    return set(Process.objects.filter(process_search_filter(term=term)).values_list("pk", flat=True))


@pytest.fixture
def history(make_job):
    sales, billing = make_job(name="Nightly sales export"), make_job(name="Billing sync")
    ada = get_user_model().objects.create_user("ada.lovelace")
    runs = {
        "sales": make_history(sales, 3)[0],
        "billing": make_history(billing, 1, external_id="pid:4242")[0],
        "by_ada": make_history(billing, 1, trigger=Trigger.MANUAL, triggered_by=ada)[0],
        "failed": make_history(billing, 1, status=ProcessStatus.FAILED,
                               failure_reason="Step load failed: deadlock detected")[0],
        "batch": make_history(sales, 1, executor="aws_batch", external_id="8f14e45f-ceea-467a-9575-0c2b5a0b2f0e")[0],
    }
    return runs


def test_a_number_finds_the_process_with_that_id(history):
    run = history["billing"]
    assert found(str(run.pk)) == {run.pk}
    assert found(f"#{run.pk}") == {run.pk}


def test_an_executor_id_finds_its_run_exactly(history):
    assert found("pid:4242") == {history["billing"].pk}
    assert found("8f14e45f-ceea-467a-9575-0c2b5a0b2f0e") == {history["batch"].pk}
    assert found("pid:424") == set()


def test_part_of_a_job_name_finds_every_run_of_that_job(history):
    sales = Process.objects.filter(job__name="Nightly sales export").values_list("pk", flat=True)
    assert found("SALES") == set(sales)
    assert found("job:sales") == set(sales)


def test_part_of_a_username_finds_the_runs_that_user_started(history):
    assert found("lovelace") == {history["by_ada"].pk}
    assert found("user:ada") == {history["by_ada"].pk}


def test_words_of_a_failure_reason_find_the_failed_run(history):
    assert found("deadlock") == {history["failed"].pk}
    assert found("reason:Deadlock Detected") == {history["failed"].pk}


def test_a_prefix_searches_only_its_own_part(history):
    assert found("reason:sales") == set()
    assert found("user:deadlock") == set()
    assert found("job:lovelace") == set()


def test_failure_reasons_are_searched_only_among_the_newest_runs(history, settings, make_job):
    make_history(make_job(), 5)
    settings.JTB_SEARCH_TEXT_WINDOW = 3
    assert found("deadlock") == set()
    settings.JTB_SEARCH_TEXT_WINDOW = 100
    assert found("deadlock") == {history["failed"].pk}


def test_an_unknown_term_finds_nothing_and_a_huge_number_is_no_error(history):
    assert found("no such thing") == set()
    assert found("9" * 40) == set()


def test_task_search_by_process_id_lists_its_steps(history):
    run = history["sales"]
    tasks = Task.objects.filter(task_search_filter(term=str(run.pk)))
    assert [(t.process_id, t.sequence) for t in tasks.order_by("sequence")] == [(run.pk, 1), (run.pk, 2)]


def test_task_search_by_name_looks_only_at_recent_tasks(history, settings):
    newest = Task.objects.order_by("-pk").first()
    Task.objects.filter(pk=newest.pk).update(name="publish report")
    oldest = Task.objects.order_by("pk").first()
    Task.objects.filter(pk=oldest.pk).update(name="publish archive")
    settings.JTB_SEARCH_TEXT_WINDOW = 5
    assert list(Task.objects.filter(task_search_filter(term="publish")).values_list("pk", flat=True)) == [newest.pk]


def test_admin_search_box_finds_runs_by_job_name(admin_client, history):
    response = admin_client.get(reverse("admin:processes_process_changelist"), {"q": "billing"})
    shown = {run.pk for run in response.context["cl"].result_list}
    assert shown == {history["billing"].pk, history["by_ada"].pk, history["failed"].pk}


def test_an_id_shaped_term_does_not_read_failure_reasons(history):
    make_history(history["sales"].job, 1, status=ProcessStatus.FAILED, failure_reason="exit code 137 after pid:99")
    assert found("137") == set()
    assert found("pid:99") == set()
    assert len(found("reason:137")) == 1

"""List endpoints run the same number of queries whatever the page size."""

from __future__ import annotations

import pytest
from django.utils import timezone

from jobs.models import Schedule
from processes.models import Process, ProcessStatus, Task, Trigger
from tests.api.conftest import VIEW_PERMS, token_client

pytestmark = pytest.mark.django_db

# Token lookup (with its user), the user's permissions and group permissions.
AUTH_QUERIES = 3


@pytest.fixture
def reader(make_user):
    return token_client(make_user("reader", *VIEW_PERMS))


@pytest.fixture
def many(make_job, admin_user):
    jobs = [make_job(tags={"n": str(i)}) for i in range(12)]
    for job in jobs:
        Schedule.objects.create(job=job, cron="*/5 * * * *", timezone="America/New_York")
        process = Process.objects.create(job=job, trigger=Trigger.API, triggered_by=admin_user,
                                         status=ProcessStatus.FAILED)
        Task.objects.create(process=process, name="step", sequence=1, started_at=timezone.now())
    return jobs


@pytest.mark.parametrize(
    ("url", "queries"),
    [
        ("/api/v1/jobs/", AUTH_QUERIES + 2),  # COUNT and the page
        ("/api/v1/schedules/", AUTH_QUERIES + 2),  # COUNT and the page
        ("/api/v1/processes/", AUTH_QUERIES + 1),  # the page with its jobs and users; a cursor needs no COUNT
    ],
)
@pytest.mark.parametrize("page_size", [2, 12])
def test_list_query_count_does_not_grow_with_the_page(reader, many, django_assert_num_queries, url, queries,
                                                      page_size):
    with django_assert_num_queries(queries):
        response = reader.get(url, {"page_size": page_size})

    assert response.status_code == 200
    assert len(response.json()["results"]) == page_size


def test_process_detail_loads_its_tasks_in_one_query(reader, many, django_assert_num_queries):
    process = Process.objects.first()

    with django_assert_num_queries(AUTH_QUERIES + 2):  # the process with job and user, then its tasks
        body = reader.get(f"/api/v1/processes/{process.pk}/").json()

    assert [task["name"] for task in body["tasks"]] == ["step"]

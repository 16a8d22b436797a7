"""The OpenAPI schema is the contract: fuzz every operation with schemathesis, walk it anonymously
and with a view-only user."""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from jobs.models import Job
from processes.models import Process, ProcessStatus, Task, Trigger
from tests.api.conftest import VIEW_PERMS, token_client

SCHEMA_URL = "/api/schema/?format=json"
WRITE_METHODS = {"post", "put", "patch", "delete"}
MAX_EXAMPLES = int(os.environ.get("JTB_API_FUZZ_EXAMPLES", "10"))
# Semantic validation (a template must end in .py, a cron must parse) rejects data the JSON
# schema allows, so "positive data accepted" cannot hold; every other check runs.
EXCLUDED_CHECKS = [positive_data_acceptance]
EXISTING = "existing"


@pytest.fixture
def wsgi_app():
    """The project's WSGI app, with connections kept open so requests see the test transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def schema_document(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        return APIClient().get(SCHEMA_URL).json()


@pytest.fixture
def api_schema(db, wsgi_app, schema_document):
    schema = schemathesis.openapi.from_dict(schema_document)
    schema.app = wsgi_app
    return schema


@pytest.fixture
def seeded(make_job, run_dirs) -> dict[str, list[int]]:
    """Jobs, a schedule and runs in every state; the ids of each resource by path prefix."""
    from jobs.models import Schedule

    jobs = [make_job(), make_job(concurrency_policy="skip"), make_job(enabled=False)]
    schedule = Schedule.objects.create(job=jobs[0], cron="0 6 * * *", timezone="Europe/Paris")
    processes = []
    for status in (ProcessStatus.FAILED, ProcessStatus.RUNNING, ProcessStatus.SUCCEEDED, ProcessStatus.CANCELLED):
        process = Process.objects.create(job=jobs[0], trigger=Trigger.MANUAL, status=status, executor="local")
        Task.objects.create(process=process, name="load", sequence=1, started_at=process.created_at)
        processes.append(process.pk)
    return {
        "/api/v1/jobs/": [job.pk for job in jobs],
        "/api/v1/schedules/": [schedule.pk],
        "/api/v1/processes/": processes,
    }


def existing_ids(seeded: dict[str, list[int]], path: str) -> list[int]:
    return next(ids for prefix, ids in seeded.items() if path.startswith(prefix))


def _cases() -> list[tuple[str, str, GenerationMode]]:
    """Every operation with valid data, and with invalid data where it takes any input but its id."""
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator().get_schema(request=None, public=True)
    cases = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            cases.append((path, method, GenerationMode.POSITIVE))
            if "{id}" in path:
                cases.append((path, method, EXISTING))
            inputs = [p for p in operation.get("parameters", []) if p["in"] != "path"]
            if inputs or "requestBody" in operation:
                cases.append((path, method, GenerationMode.NEGATIVE))
    return cases


@pytest.mark.parametrize(("path", "method", "mode"), _cases(), ids=lambda value: str(getattr(value, "value", value)))
def test_every_operation_answers_within_its_schema_and_never_with_a_server_error(
    api_schema, api, seeded, path, method, mode
):
    operation = api_schema[path][method.upper()]
    headers = {"Authorization": api._credentials["HTTP_AUTHORIZATION"]}
    if mode == EXISTING:
        # Valid data against objects that exist (every state of a run), not only unknown ids.
        strategy = st.sampled_from(existing_ids(seeded, path)).flatmap(
            lambda pk: operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters={"id": pk})
        )
    else:
        strategy = operation.as_strategy(generation_mode=mode)

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.call_and_validate(headers=headers, excluded_checks=EXCLUDED_CHECKS)

    fuzz()


def schema_operations() -> list[tuple[str, str]]:
    client = APIClient()
    document = client.get(SCHEMA_URL).json()
    return [(path, method) for path, item in document["paths"].items() for method in item]


def concrete(path: str, seeded) -> str:
    return path.replace("{id}", str(existing_ids(seeded, path)[0])) if "{id}" in path else path


def test_every_operation_but_the_token_exchange_refuses_anonymous_callers_with_401(db, seeded):
    client = APIClient()
    operations = schema_operations()
    assert len(operations) >= 15

    for path, method in operations:
        if path == "/api/v1/auth/token/":
            continue
        response = getattr(client, method)(concrete(path, seeded), {} if method != "get" else None)
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.json()["code"] == "not_authenticated"
        assert response["WWW-Authenticate"] == "Token"


def test_a_view_only_user_reads_everything_and_gets_403_on_every_write(make_user, seeded):
    client = token_client(make_user("viewer", *VIEW_PERMS))
    jobs = Job.objects.order_by("pk")
    before = (Process.objects.count(), [job.updated_at for job in jobs])

    for path, method in schema_operations():
        if path == "/api/v1/auth/token/":
            continue
        response = getattr(client, method)(concrete(path, seeded), {} if method != "get" else None)
        if method in WRITE_METHODS:
            assert response.status_code == 403, (method, path, response.status_code)
            assert response.json()["code"] == "permission_denied"
        else:
            assert response.status_code == 200, (method, path, response.status_code)

    assert before == (Process.objects.count(), [job.updated_at for job in jobs])


def test_schema_swagger_ui_and_redoc_are_served(db):
    client = APIClient()

    document = client.get(SCHEMA_URL).json()
    assert document["openapi"].startswith("3.") and "/api/v1/runs/" in document["paths"]
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/redoc/").status_code == 200

"""The one input gate through the API: NUL, lone surrogates and deep nesting in every writable field
are a 400 in the common shape, nothing is written, and every list and detail stays readable."""

from __future__ import annotations

import pytest

from jobs.models import Job, Schedule
from processes.models import Process, ProcessStatus, Trigger

pytestmark = pytest.mark.django_db

SURROGATE = "\udc00"
NUL = "\x00"


def deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"n": value}
    return value


def raw_json(api, method: str, url: str, text: str):
    """Send JSON text as typed: `\\udc00` escapes reach the server as lone surrogates."""
    return api.generic(method, url, text.encode("ascii"), content_type="application/json")


# (field, JSON text of a bad value) for every writable job field.
JOB_FIELDS = ["name", "description", "template", "queue", "concurrency_policy"]
JSON_FIELDS = {
    "parameters": ('{"k": "%s"}', '{"%s": 1}'),
    "environment": ('{"REGION": "%s"}',),
    "tags": ('{"team": "%s"}', '{"%s": "x"}'),
    "python_modules": ('["requests%s"]',),
    "notify_emails": ('["a%s@example.com"]',),
}
BAD_TEXT = {"surrogate": "\\udc00", "nul": "\\u0000", "surrogate-pair-half": "\\ud83d"}


def job_bodies():
    for field in JOB_FIELDS:
        for label, escape in BAD_TEXT.items():
            yield pytest.param(field, f'"x{escape}y"', id=f"{field}-{label}")
    for field, shapes in JSON_FIELDS.items():
        for shape in shapes:
            for label, escape in BAD_TEXT.items():
                yield pytest.param(field, shape % escape, id=f"{field}-{label}-{shapes.index(shape)}")


def assert_gate_refused(response, field: str) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert body["code"] == "invalid" and body["message"]
    assert field in body["errors"], body["errors"]
    text = " ".join(body["errors"][field])
    assert "NUL" in text or "surrogate" in text or "nested" in text, text


def assert_everything_still_reads(api, job: Job | None = None) -> None:
    for url in ("/api/v1/jobs/", "/api/v1/schedules/", "/api/v1/processes/"):
        assert api.get(url).status_code == 200, url
    if job is not None:
        assert api.get(f"/api/v1/jobs/{job.pk}/").status_code == 200
        assert api.get(f"/api/v1/jobs/{job.pk}/history/").status_code == 200


@pytest.mark.parametrize(("field", "value"), list(job_bodies()))
def test_bad_text_in_any_job_field_is_refused_on_create_and_update(api, make_job, field, value):
    job = make_job(environment={"REGION": "eu"}, tags={"team": "a"})
    before = Job.objects.values().get(pk=job.pk)

    created = raw_json(api, "POST", "/api/v1/jobs/", f'{{"name": "n", "template": "examples/hello.py", "{field}": {value}}}')
    updated = raw_json(api, "PATCH", f"/api/v1/jobs/{job.pk}/", f'{{"{field}": {value}}}')

    assert_gate_refused(created, field)
    assert_gate_refused(updated, field)
    assert Job.objects.count() == 1 and Job.objects.values().get(pk=job.pk) == before
    assert_everything_still_reads(api, job)


@pytest.mark.parametrize("field", ["parameters", "environment", "tags"])
def test_json_nested_deeper_than_the_limit_is_refused_and_the_limit_itself_is_accepted(api, make_job, field):
    from jobs.input_gate import MAX_JSON_DEPTH

    job = make_job()
    too_deep = {"A": deep(MAX_JSON_DEPTH)} if field != "parameters" else deep(MAX_JSON_DEPTH + 1)

    response = api.patch(f"/api/v1/jobs/{job.pk}/", {field: too_deep})

    assert response.status_code == 400 and field in response.json()["errors"]
    assert api.patch(f"/api/v1/jobs/{job.pk}/", {"parameters": deep(MAX_JSON_DEPTH - 1)}).status_code == 200
    assert_everything_still_reads(api, job)


def test_a_body_nested_a_hundred_thousand_levels_is_refused_without_a_server_error(api, make_job):
    job = make_job()
    text = '{"parameters": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001

    response = raw_json(api, "PATCH", f"/api/v1/jobs/{job.pk}/", text)

    assert response.status_code == 400
    assert response.json()["code"] in ("invalid", "parse_error")


@pytest.mark.parametrize("label", list(BAD_TEXT))
@pytest.mark.parametrize("field", ["cron", "timezone", "notes"])
def test_bad_text_in_any_schedule_field_is_refused(api, make_job, field, label):
    job = make_job()
    body = {"job": job.pk, "cron": "0 6 * * *", "timezone": "UTC", "notes": ""}
    text = "{" + ", ".join(
        f'"{name}": ' + (f'"x{BAD_TEXT[label]}"' if name == field else (str(v) if isinstance(v, int) else f'"{v}"'))
        for name, v in body.items()
    ) + "}"

    assert_gate_refused(raw_json(api, "POST", "/api/v1/schedules/", text), field)
    assert not Schedule.objects.exists()
    assert_everything_still_reads(api, job)


@pytest.mark.parametrize("label", list(BAD_TEXT))
def test_bad_run_parameters_are_refused_for_one_run_and_for_a_bulk_run(api, make_job, label):
    job = make_job()
    escape = BAD_TEXT[label]

    single = raw_json(api, "POST", f"/api/v1/jobs/{job.pk}/run/", f'{{"parameters": {{"k": "{escape}"}}}}')
    bulk = raw_json(api, "POST", "/api/v1/runs/", f'{{"runs": [{{"job": {job.pk}, "parameters": {{"{escape}": 1}}}}]}}')

    assert_gate_refused(single, "parameters")
    assert_gate_refused(bulk, "runs")
    assert not Process.objects.exists()


@pytest.mark.parametrize("label", list(BAD_TEXT))
def test_bad_text_in_the_token_exchange_is_refused(label):
    from rest_framework.test import APIClient

    response = raw_json(APIClient(), "POST", "/api/v1/auth/token/",
                        f'{{"username": "a{BAD_TEXT[label]}", "password": "x"}}')

    assert_gate_refused(response, "username")


def test_query_strings_with_nul_are_refused_in_the_common_shape(api):
    response = api.get("/api/v1/processes/?status=%00")

    assert response.status_code == 400
    assert response.json()["errors"] == {"status": ["Text may not contain NUL (\\u0000) characters."]}


def test_a_log_offset_past_any_file_is_a_400_and_a_large_valid_one_an_empty_page(api, make_job, run_dirs):
    job = make_job()
    process = Process.objects.create(job=job, trigger=Trigger.MANUAL, status=ProcessStatus.SUCCEEDED, executor="local")
    log = run_dirs["JTB_LOG_DIR"]
    from pathlib import Path

    Path(log).mkdir(parents=True, exist_ok=True)
    (Path(log) / f"process-{process.pk}.log").write_text("hello\n")

    huge = api.get(f"/api/v1/processes/{process.pk}/logs/?offset=4611686018427387904")
    far = api.get(f"/api/v1/processes/{process.pk}/logs/?offset={2**40}")

    assert huge.status_code == 400 and "offset" in huge.json()["errors"]
    assert far.status_code == 200 and far.content == b"" and far["X-Next-Offset"] == str(2**40)


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00"])
@pytest.mark.parametrize("field", ["start_at", "end_at"])
def test_schedule_moments_datetime_cannot_compute_with_are_a_400(api, make_job, field, moment):
    job = make_job()

    response = api.post("/api/v1/schedules/", {"job": job.pk, "cron": "0 6 * * *", field: moment})

    assert response.status_code == 400 and field in response.json()["errors"]
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("query", ["created_after=9999-12-31T23:59:59Z", "created_before=0001-01-01T00:00:00Z",
                                   "created_after=9999-12-31T23:59:59%2B14:00"])
def test_process_filters_at_the_ends_of_time_answer_an_empty_page(api, query):
    response = api.get(f"/api/v1/processes/?{query}")

    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["results"] == []


def test_an_unexpected_error_in_an_api_view_is_a_json_500_in_the_common_shape(api, monkeypatch):
    from jobs.api import JobViewSet

    def explode(self, *args, **kwargs):
        raise RuntimeError("boom at /srv/secret/path")

    monkeypatch.setattr(JobViewSet, "list", explode)

    response = api.get("/api/v1/jobs/")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "server_error" and body["errors"] == {}
    assert "/srv/secret" not in response.content.decode()


def test_an_error_outside_drf_under_api_is_a_json_500(client, settings):
    from django.test import RequestFactory

    from jobtarget_batch.middleware import ApiServerErrorMiddleware

    middleware = ApiServerErrorMiddleware(lambda request: None)
    request = RequestFactory().get("/api/schema/")

    response = middleware.process_exception(request, RuntimeError("boom"))

    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert middleware.process_exception(RequestFactory().get("/admin/"), RuntimeError("boom")) is None

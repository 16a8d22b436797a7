"""Input a hostile or careless client sends: each is a 400 with a message, and nothing is written."""

from __future__ import annotations

import json

import pytest

from jobs.models import Job, Schedule
from processes.models import Process

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/jobs/"
VALID = {"name": "Export", "template": "examples/hello.py"}


def assert_refused(response, *fields: str) -> dict:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert body["code"] in ("invalid", "parse_error") and body["message"]
    for field in fields:
        assert field in body["errors"], body["errors"]
    return body


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"memory_mib": "lots"}, "memory_mib"),
        ({"enabled": "maybe"}, "enabled"),
        ({"vcpus": {"cores": 2}}, "vcpus"),
        ({"name": ["a", "list"]}, "name"),
        ({"python_modules": "requests"}, "python_modules"),
        ({"python_modules": [1, 2]}, "python_modules"),
        ({"parameters": [1, 2]}, "parameters"),
        ({"environment": {"REGION": 5}}, "environment"),
        ({"notify_emails": "ops@example.com"}, "notify_emails"),
        ({"concurrency_policy": "sometimes"}, "concurrency_policy"),
        ({"timeout_seconds": -1}, "timeout_seconds"),
        ({"memory_mib": 10**40}, "memory_mib"),
        ({"vcpus": "NaN"}, "vcpus"),
    ],
)
def test_wrong_types_and_out_of_range_values_are_refused(api, changes, field):
    assert_refused(api.post(JOBS, {**VALID, **changes}), field)
    assert not Job.objects.exists()


def test_missing_required_fields_are_each_named(api):
    body = assert_refused(api.post(JOBS, {}), "name", "template")
    assert "required" in body["errors"]["name"][0]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "x" * 100_000}, "name"),
        ({"template": "a/" * 5000 + "x.py"}, "template"),
        ({"queue": "q" * 10_000}, "queue"),
        ({"python_modules": ["a" * 5000]}, "python_modules"),
        ({"environment": {"BIG": "v" * 100_000}}, "environment"),
        ({"python_modules": ["requests"] * 500}, "python_modules"),
    ],
)
def test_huge_strings_and_lists_are_refused(api, changes, field):
    assert_refused(api.post(JOBS, {**VALID, **changes}), field)
    assert not Job.objects.exists()


def test_a_body_larger_than_the_upload_limit_is_refused_without_a_server_error(api, settings):
    response = api.post(JOBS, {**VALID, "description": "d" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})

    assert response.status_code == 413
    assert response.json()["code"] == "too_large" and "larger than" in response.json()["message"]
    assert not Job.objects.exists()


def test_unknown_fields_are_refused_rather_than_ignored(api, make_job):
    assert_refused(api.post(JOBS, {**VALID, "enable": False, "owner": "me"}), "enable", "owner")
    job = make_job()
    assert_refused(api.patch(f"{JOBS}{job.pk}/", {"timeout": 5}), "timeout")
    assert not Job.objects.exclude(pk=job.pk).exists()


@pytest.mark.parametrize("raw", ['{"name": ', "not json", '{"name": NaN}', "\xff\xfe", "[" * 5000 + "]" * 5000])
def test_malformed_json_is_a_parse_error(api, raw):
    response = api.generic("POST", JOBS, raw.encode("latin-1"), content_type="application/json")

    body = assert_refused(response)
    assert body["code"] == "parse_error" and "JSON" in body["message"]
    assert not Job.objects.exists()


def test_a_body_that_is_not_json_is_refused_as_unsupported(api):
    response = api.generic("POST", JOBS, "name=x&template=y.py", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "module",
    ["--index-url http://evil.example/simple", "-e git+https://evil.example/x.git", "--extra-index-url=x",
     "pkg @ https://evil.example/pkg.whl", "pkg @ file:///etc/passwd", "./local/dir", "-r /etc/passwd"],
)
def test_modules_with_pip_options_or_urls_are_refused(api, module):
    body = assert_refused(api.post(JOBS, {**VALID, "python_modules": ["requests", module]}), "python_modules")
    assert any(word in body["errors"]["python_modules"][0] for word in ("pip options", "URLs", "not a valid"))
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "template", ["../secrets.py", "examples/../../etc/x.py", "s3://bucket-name/a/../b.py", "/etc/passwd.py",
                 "file:///etc/passwd", "examples\\..\\x.py"],
)
def test_templates_escaping_their_folder_are_refused(api, template, make_job):
    assert_refused(api.post(JOBS, {**VALID, "template": template}), "template")
    job = make_job()
    assert_refused(api.patch(f"{JOBS}{job.pk}/", {"template": template}), "template")
    job.refresh_from_db()
    assert job.template == "examples/hello.py" and Job.objects.count() == 1


def test_nul_characters_are_refused_before_the_database_sees_them(api, make_job):
    assert_refused(api.post(JOBS, {**VALID, "name": "a\x00b"}), "name")
    assert_refused(api.post(JOBS, {**VALID, "parameters": {"k": "a\x00b"}}), "parameters")
    assert_refused(api.post(JOBS, {**VALID, "tags": {"a\x00": "b"}}), "tags")
    job = make_job()
    assert_refused(api.post(f"{JOBS}{job.pk}/run/", {"parameters": {"k": "\x00"}}), "parameters")
    assert not Process.objects.exists() and Job.objects.count() == 1


def test_deeply_nested_parameters_are_refused(api, make_job):
    nested = {}
    for _ in range(200):
        nested = {"n": nested}
    job = make_job()

    assert_refused(api.post(f"{JOBS}{job.pk}/run/", {"parameters": nested}), "parameters")
    assert not Process.objects.exists()


def test_oversized_run_parameters_are_refused(api, make_job):
    job = make_job()

    body = assert_refused(api.post(f"{JOBS}{job.pk}/run/", {"parameters": {"blob": "x" * 100_000}}), "parameters")
    assert "KiB" in body["errors"]["parameters"][0]
    assert not Process.objects.exists()


def test_a_bulk_run_of_ten_thousand_is_refused_whole_without_touching_the_jobs(api, make_job,
                                                                              django_assert_max_num_queries):
    job = make_job()
    runs = [{"job": job.pk, "parameters": {"i": i}} for i in range(10_000)]

    with django_assert_max_num_queries(4):  # authentication and permissions only
        response = api.post("/api/v1/runs/", {"runs": runs})

    body = assert_refused(response, "runs")
    assert "1000" in body["errors"]["runs"][0]
    assert not Process.objects.exists()


def test_bulk_entries_with_unknown_fields_or_wrong_types_are_named_by_index(api, make_job):
    job = make_job()
    runs = [{"job": job.pk}, {"job": job.pk, "params": {}}, {"job": True}, {"job": job.pk, "parameters": "x" * 10}]

    body = assert_refused(api.post("/api/v1/runs/", {"runs": runs}), "runs.1.params", "runs.2.job")
    assert "runs.0.job" not in body["errors"]
    assert not Process.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"cron": "61 * * * *"}, "cron"), ({"cron": "* * *"}, "cron"), ({"cron": "x" * 10_000}, "cron"),
     ({"timezone": "Mars/Olympus"}, "timezone"), ({"timezone": "../../etc/localtime"}, "timezone"),
     ({"job": 10**30}, "job"), ({"job": "one"}, "job")],
)
def test_bad_schedules_are_refused(api, make_job, changes, field):
    job = make_job()

    assert_refused(api.post("/api/v1/schedules/", {"job": job.pk, "cron": "0 6 * * *", **changes}), field)
    assert not Schedule.objects.exists()


def test_the_token_exchange_refuses_wrong_credentials_with_a_message(make_user):
    from rest_framework.test import APIClient

    make_user("alice")
    response = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"})

    assert_refused(response)
    assert json.dumps(response.json()).count("token") == 0

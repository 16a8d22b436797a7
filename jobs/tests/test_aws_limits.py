"""jobs.aws_limits: AWS's rules as pure functions (the API tests show them end to end)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from jobs import aws_limits
from jobs.models import Job


@pytest.mark.parametrize(("prefix", "expected"), [
    ("jtb", "jtb-job7-process42"),
    ("team one/export!", "team-one-export-job7-process42"),
    ("", "jtb-job7-process42"),
    ("__--", "jtb-job7-process42"),
])
def test_batch_job_name_cleans_the_prefix_and_keeps_the_ids(prefix, expected):
    assert aws_limits.batch_job_name(prefix, 7, 42) == expected


def test_batch_job_name_shortens_a_long_prefix_not_the_ids():
    name = aws_limits.batch_job_name("p" * 300, 123456789, 987654321)

    assert len(name) == 128
    assert name.endswith("-job123456789-process987654321")


def test_queue_named_by_arn_is_the_same_queue():
    arn = "arn:aws:batch:eu-west-1:123456789012:job-queue/fargate-small"

    assert aws_limits.queue_name(arn) == "fargate-small"
    assert aws_limits.queue_is_fargate(arn, ["fargate-small"])
    assert aws_limits.queue_is_fargate("fargate-small", [arn])
    assert not aws_limits.queue_is_fargate("spot-large", [arn])
    assert not aws_limits.queue_is_fargate("", [""])


def test_every_fargate_pair_from_botocore_is_accepted_and_its_neighbours_refused():
    for vcpus, sizes in aws_limits.FARGATE_MEMORY_BY_VCPUS.items():
        for memory in sizes:
            assert aws_limits.batch_resource_errors(vcpus=vcpus, memory_mib=memory, gpus=0, platform="FARGATE") == {}
        errors = aws_limits.batch_resource_errors(vcpus=vcpus, memory_mib=sizes[-1] + 1, gpus=0, platform="FARGATE")
        assert set(errors) == {"memory_mib"}


def test_ec2_fraction_says_what_would_be_sent():
    errors = aws_limits.batch_resource_errors(vcpus=Decimal("2.5"), memory_mib=2048, gpus=0, platform="EC2")

    assert errors == {"vcpus": "EC2 queues take whole vCPUs: 2.5 would be sent as 3. Ask for 3 (or pick a Fargate queue)."}


@pytest.mark.parametrize(("tags", "fragment"), [
    ({"🚀": "x"}, "may contain only"),
    ({"ok": "tab\there"}, "may contain only"),
    ({"aws:x": "y"}, "reserved"),
    ({"Jtb:x": "y"}, "reserved"),
    ({"": "y"}, "1-128"),
    ({f"t{n}": "v" for n in range(48)}, "At most 47 tags"),
])
def test_tags_aws_refuses_are_named(tags, fragment):
    assert any(fragment in message for message in aws_limits.tag_errors(tags))


def test_tags_in_any_language_with_aws_punctuation_pass():
    assert aws_limits.tag_errors({"Équipe données": "Zürich 東京 _.:/=+-@", "empty": ""}) == []


@pytest.mark.parametrize(("values", "bad"), [
    ({"JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS": 86401}, "JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS"),
    ({"JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS": 59}, "JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS"),
    ({"JTB_BATCH_SUBMITS_PER_SECOND": Decimal("0")}, "JTB_BATCH_SUBMITS_PER_SECOND"),
    ({"JTB_SCHEDULER_GROUP": "my group"}, "JTB_SCHEDULER_GROUP"),
    ({"JTB_SCHEDULER_NAME_PREFIX": "s" * 45}, "JTB_SCHEDULER_NAME_PREFIX"),
    ({"JTB_BATCH_NAME_PREFIX": "jtb prod"}, "JTB_BATCH_NAME_PREFIX"),
])
def test_settings_outside_aws_limits_are_named(values, bad):
    assert set(aws_limits.aws_setting_errors(values)) == {bad}


def test_default_settings_are_within_aws_limits(settings):
    values = {name: getattr(settings, name) for name in (
        "JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS", "JTB_BATCH_SUBMITS_PER_SECOND", "JTB_SCHEDULER_GROUP",
        "JTB_SCHEDULER_NAME_PREFIX", "JTB_BATCH_NAME_PREFIX")}
    assert aws_limits.aws_setting_errors(values) == {}


def test_system_check_names_a_setting_beyond_aws_limits(settings):
    from runner.checks_aws import check_aws_limits

    settings.JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS = 100_000

    [problem] = check_aws_limits(None)

    assert problem.id == "jobtarget_batch.E140" and "86400" in problem.msg


def test_submit_rate_above_aws_limit_is_a_warning_not_an_error(settings):
    from runner.checks_aws import check_aws_limits

    settings.JTB_BATCH_SUBMITS_PER_SECOND = Decimal("1000")

    [problem] = check_aws_limits(None)

    assert problem.id == "jobtarget_batch.W140" and not problem.is_serious()


@pytest.mark.django_db
def test_admin_refuses_a_fargate_job_aws_would_refuse_on_the_field(admin_client, settings):
    settings.JTB_BATCH_FARGATE_QUEUES = ["fq"]
    data = {
        "name": "export", "description": "", "enabled": "on", "template": "examples/hello.py", "python_modules": "",
        "vcpus": "1", "memory_mib": "512", "gpus": "0", "timeout_seconds": "60", "retry_attempts": "1",
        "queue": "fq", "parameters": "{}", "environment": "{}", "concurrency_policy": "allow", "notify_emails": "",
        "tags": "{}", "schedules-TOTAL_FORMS": "0", "schedules-INITIAL_FORMS": "0",
    }

    response = admin_client.post(reverse("admin:jobs_job_add"), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["memory_mib"]
    assert "With 1 vCPUs Fargate takes 2048 to 8192 in steps of 1024 MiB" in errors["memory_mib"][0]
    assert not Job.objects.exists()

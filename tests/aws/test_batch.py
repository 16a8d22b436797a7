"""The runner's job definition (batch_sync) and the SubmitJob pacing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from runner.aws import batch
from runner.aws.client import aws_client
from tests.aws.conftest import DB_SECRET, EXECUTION_ROLE, JOB_ROLE


def active_revisions(name: str) -> list[dict]:
    answer = aws_client("batch").describe_job_definitions(jobDefinitionName=name, status="ACTIVE")
    return sorted(answer["jobDefinitions"], key=lambda definition: definition["revision"])


def test_batch_sync_registers_the_runner_with_command_logs_role_secrets_and_platform(batch_calls, settings):
    settings.JTB_BATCH_IMAGE = "example/jtb:2.0"
    out = StringIO()

    call_command("batch_sync", "--platform", "EC2", stdout=out)

    [sent] = batch_calls.of("RegisterJobDefinition")
    container = sent["containerProperties"]
    assert out.getvalue().strip() == "EC2: jtb-runner:2 registered"
    assert sent["jobDefinitionName"] == "jtb-runner" and sent["type"] == "container"
    assert sent["platformCapabilities"] == ["EC2"] and sent["propagateTags"] is True
    assert container["image"] == "example/jtb:2.0"
    assert container["command"] == ["python", "manage.py", "run_process", "Ref::process_id"]
    assert container["jobRoleArn"] == JOB_ROLE and container["executionRoleArn"] == EXECUTION_ROLE
    assert container["secrets"] == [{"name": "DATABASE_URL", "valueFrom": DB_SECRET}]
    assert container["logConfiguration"] == {"logDriver": "awslogs", "options": {
        "awslogs-group": "/aws/batch/job", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "jtb",
    }}
    names = {item["name"] for item in container["environment"]}
    assert "DATABASE_URL" not in names and "JTB_EXECUTOR" in names
    assert active_revisions("jtb-runner")[-1]["containerProperties"]["image"] == "example/jtb:2.0"


def test_batch_sync_registers_no_new_revision_when_nothing_changed(batch_calls):
    out = StringIO()

    call_command("batch_sync", stdout=out)

    assert batch_calls.of("RegisterJobDefinition") == []
    assert out.getvalue().split("\n")[:2] == ["EC2: jtb-runner:1 unchanged", "FARGATE: jtb-runner-fargate:1 unchanged"]
    assert len(active_revisions("jtb-runner")) == 1


def test_fargate_definition_has_network_and_platform_configuration(batch_setup):
    [definition] = active_revisions("jtb-runner-fargate")
    assert definition["platformCapabilities"] == ["FARGATE"]
    assert definition["containerProperties"]["networkConfiguration"] == {"assignPublicIp": "DISABLED"}
    assert definition["containerProperties"]["fargatePlatformConfiguration"] == {"platformVersion": "LATEST"}


@pytest.mark.parametrize(("arn", "message"), [
    ("", "No secret for DATABASE_URL"),
    ("postgres://user:pw@db/jobs", "must be a Secrets Manager or SSM ARN"),
])
def test_batch_sync_refuses_database_credentials_that_are_not_a_secret_arn(batch_setup, settings, arn, message):
    settings.JTB_BATCH_DATABASE_URL_SECRET_ARN = arn
    with pytest.raises(CommandError, match=message):
        call_command("batch_sync", stdout=StringIO())


def test_ssm_parameters_are_accepted_as_extra_secrets(settings):
    settings.JTB_BATCH_DATABASE_URL_SECRET_ARN = DB_SECRET
    settings.JTB_BATCH_SECRETS = ["SECRET_KEY=arn:aws:ssm:us-east-1:123456789012:parameter/jtb/secret-key"]
    assert batch.runner_secrets()[1] == {
        "name": "SECRET_KEY", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/jtb/secret-key",
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_token_bucket_paces_calls_to_the_configured_rate(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(batch.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(batch.time, "sleep", clock.sleep)
    bucket = batch.TokenBucket()

    for _ in range(510):
        bucket.take(50.0)

    # A burst of 10 at once, then 50 a second: 500 more calls take 10 s.
    assert clock.now - 100.0 == pytest.approx(10.0, abs=0.05)

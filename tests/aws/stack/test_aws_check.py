"""`manage.py aws_check` against the stack deployed into moto: all green, then each thing broken on its own."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job
from runner.aws.client import aws_client

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def run_check() -> tuple[list[str], bool]:
    out = StringIO()
    try:
        call_command("aws_check", stdout=out)
        passed = True
    except CommandError:
        passed = False
    return out.getvalue().splitlines(), passed


def test_deployed_stack_passes_every_check(deployed_stack):
    lines, passed = run_check()
    assert passed, "\n".join(lines)
    assert not [line for line in lines if line.startswith("FAIL")]
    checked = "\n".join(lines)
    for name in ("queue jtbtest-default: ENABLED and VALID, EC2", "queue jtbtest-fargate: ENABLED and VALID, FARGATE",
                 "job definition jtbtest-runner: revision 1 is current", "job definition jtbtest-runner-fargate",
                 "role JTB_BATCH_JOB_ROLE_ARN", "role JTB_BATCH_EXECUTION_ROLE_ARN", "role JTB_SCHEDULER_ROLE_ARN",
                 f"bucket {deployed_stack['JTB_TEMPLATE_BUCKETS']}: exists, is readable and versioned",
                 "secret JTB_BATCH_DATABASE_URL_SECRET_ARN", "log group /aws/batch/jtbtest: exists",
                 "scheduler group jtbtest: exists"):
        assert name in checked
    assert lines[-1].startswith("All ") and lines[-1].endswith(" checks passed.")


def _disable_queue(outputs, settings):
    aws_client("batch").update_job_queue(jobQueue="jtbtest-default", state="DISABLED")


def _missing_queue(outputs, settings):
    settings.JTB_BATCH_JOB_QUEUE = "jtbtest-nope"


def _undeclared_fargate_queue(outputs, settings):
    settings.JTB_BATCH_FARGATE_QUEUES = []
    Job.objects.create(name="on fargate", template="examples/hello.py", queue="jtbtest-fargate")


def _ec2_queue_declared_fargate(outputs, settings):
    settings.JTB_BATCH_FARGATE_QUEUES = ["jtbtest-fargate", "jtbtest-gpu"]


def _disabled_compute_environment(outputs, settings):
    aws_client("batch").update_compute_environment(computeEnvironment="jtbtest-cpu", state="DISABLED")


def _stale_definition(outputs, settings):
    settings.JTB_BATCH_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobtarget-batch:2.0"


def _missing_role(outputs, settings):
    settings.JTB_BATCH_JOB_ROLE_ARN = "arn:aws:iam::123456789012:role/jtbtest-gone"


def _wrongly_trusted_role(outputs, settings):
    trust = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": '
             '"ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}')
    arn = aws_client("iam").create_role(RoleName="jtbtest-ec2-only", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    settings.JTB_SCHEDULER_ROLE_ARN = arn


def _unversioned_bucket(outputs, settings):
    aws_client("s3").put_bucket_versioning(
        Bucket=outputs["JTB_TEMPLATE_BUCKETS"], VersioningConfiguration={"Status": "Suspended"},
    )


def _missing_bucket(outputs, settings):
    settings.JTB_TEMPLATE_BUCKETS = ["jtbtest-no-such-bucket"]
    settings.JTB_TEMPLATE_UPLOAD_URI = "s3://jtbtest-no-such-bucket/templates/"


def _deleted_secret(outputs, settings):
    aws_client("secretsmanager").delete_secret(
        SecretId=outputs["JTB_BATCH_DATABASE_URL_SECRET_ARN"], ForceDeleteWithoutRecovery=True,
    )


def _deleted_log_group(outputs, settings):
    aws_client("logs").delete_log_group(logGroupName=outputs["JTB_BATCH_LOG_GROUP"])


def _deleted_scheduler_group(outputs, settings):
    aws_client("scheduler").delete_schedule_group(Name=outputs["JTB_SCHEDULER_GROUP"])


@pytest.mark.parametrize(("breakage", "failing", "fix"), [
    (_disable_queue, "queue jtbtest-default: is DISABLED", "update-job-queue --job-queue jtbtest-default --state ENABLED"),
    (_missing_queue, "queue jtbtest-nope: does not exist", "point JTB_BATCH_JOB_QUEUE"),
    (_undeclared_fargate_queue, "queue jtbtest-fargate: runs on Fargate", "Add jtbtest-fargate to JTB_BATCH_FARGATE_QUEUES"),
    (_ec2_queue_declared_fargate, "queue jtbtest-gpu: runs on EC2", "Remove jtbtest-gpu from JTB_BATCH_FARGATE_QUEUES"),
    (_disabled_compute_environment, "queue jtbtest-default: compute environment jtbtest-cpu is DISABLED",
     "update-compute-environment --compute-environment jtbtest-cpu --state ENABLED"),
    (_stale_definition, "job definition jtbtest-runner: revision 1 does not match", "Run manage.py batch_sync"),
    (_missing_role, "role JTB_BATCH_JOB_ROLE_ARN: arn:aws:iam::123456789012:role/jtbtest-gone does not exist",
     "set JTB_BATCH_JOB_ROLE_ARN to an existing role"),
    (_wrongly_trusted_role, "role JTB_SCHEDULER_ROLE_ARN: arn:aws:iam::123456789012:role/jtbtest-ec2-only cannot be "
     "assumed by scheduler.amazonaws.com", "Let scheduler.amazonaws.com assume it"),
    (_unversioned_bucket, "is readable but not versioned", "put-bucket-versioning"),
    (_missing_bucket, "bucket jtbtest-no-such-bucket: does not exist", "fix JTB_TEMPLATE_BUCKETS"),
    (_deleted_secret, "secret JTB_BATCH_DATABASE_URL_SECRET_ARN: arn:aws:secretsmanager", "holding the runners' DATABASE_URL"),
    (_deleted_log_group, "log group /aws/batch/jtbtest: does not exist", "create-log-group --log-group-name /aws/batch/jtbtest"),
    (_deleted_scheduler_group, "scheduler group jtbtest: does not exist", "create-schedule-group --name jtbtest"),
])
def test_each_broken_resource_fails_its_own_check_with_the_fix(deployed_stack, settings, breakage, failing, fix):
    breakage(deployed_stack, settings)

    lines, passed = run_check()

    assert not passed
    failures = [line for line in lines if line.startswith("FAIL")]
    [line] = [line for line in failures if failing in line] or [None]
    assert line is not None, "\n".join(lines)
    assert "Fix: " in line and fix in line.split("Fix: ", 1)[1]
    # Only what was broken fails (a changed role or image also makes the job definition stale).
    others = [other for other in failures if other != line and "job definition" not in other]
    assert others == [], "\n".join(lines)

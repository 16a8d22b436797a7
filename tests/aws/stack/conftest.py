"""The CloudFormation stack of deploy/aws/jobtarget-batch.yaml deployed into moto, its outputs as settings.

moto's CloudFormation lacks AWS::SecretsManager::Secret, AWS::Scheduler::ScheduleGroup and
AWS::ElastiCache::*, so the test deploy takes the template's own "existing resource" branches:
ExistingDatabaseUrlSecretArn (a secret made here), BrokerUrl (the local Redis) and
CreateSchedulerGroup=false; the RDS database is skipped with them. moto also needs a Batch service
role (AWS uses the service-linked one when BatchServiceRoleArn is empty) and does not split a
list parameter's default, so InstanceTypes is passed. It ignores the bucket's
VersioningConfiguration, so versioning is switched on here as the template asks (test_template
checks the template asks for it).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from conftest import database_url_for_subprocesses
from runner.aws.client import aws_client

TEMPLATE = Path(django_settings.BASE_DIR) / "deploy" / "aws" / "jobtarget-batch.yaml"
STACK_NAME = "jtb-test"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobtarget-batch:1.0"


def stack_outputs(stack_name: str = STACK_NAME) -> dict[str, str]:
    """{environment variable: value}: every output's description is the variable it sets."""
    [stack] = aws_client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    return {item["Description"]: item["OutputValue"] for item in stack.get("Outputs", [])
            if item["Description"].isupper()}


def stack_deploy(*, parameters: dict[str, str], stack_name: str = STACK_NAME) -> dict:
    from tests.support import wait_for

    cloudformation = aws_client("cloudformation")
    cloudformation.create_stack(
        StackName=stack_name, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
    )

    def finished():
        [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        return None if stack["StackStatus"].endswith("_IN_PROGRESS") else stack

    stack = wait_for(finished, timeout=60, interval=0.2)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return stack


def apply_outputs(settings, outputs: dict[str, str]) -> None:
    """Point the app at the stack, as an operator does with the outputs (docs/aws.md)."""
    lists = {"JTB_TEMPLATE_BUCKETS", "JTB_BATCH_FARGATE_QUEUES"}
    for name, value in outputs.items():
        setattr(settings, name, value.split(",") if name in lists else value)


@pytest.fixture
def network(moto_server):
    ec2 = aws_client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="jtb-batch", Description="JobTarget Batch", VpcId=vpc)["GroupId"]
    return {"subnet": subnet, "security_group": group}


@pytest.fixture
def deployed_stack(moto_server, network, settings):
    """The stack deployed with a Fargate and a GPU queue; the settings are its outputs; definitions synced."""
    from runner.aws.batch import batch_job_definition_sync

    service_role = aws_client("iam").create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    # The existing secret holds the test database's URL: the runner in the end-to-end test reads it.
    secret = aws_client("secretsmanager").create_secret(
        Name="jtb-test/database-url", SecretString=database_url_for_subprocesses(),
    )["ARN"]
    stack_deploy(parameters={
        "Prefix": "jtbtest", "ImageUri": IMAGE, "SubnetIds": network["subnet"],
        "SecurityGroupIds": network["security_group"], "InstanceTypes": "m6i,c6i", "GpuInstanceTypes": "g5",
        "EnableFargate": "true", "BatchServiceRoleArn": service_role, "ExistingDatabaseUrlSecretArn": secret,
        "BrokerUrl": "redis://127.0.0.1:6379/0", "CreateSchedulerGroup": "false",
    })
    outputs = stack_outputs()
    bucket = outputs["JTB_TEMPLATE_BUCKETS"]
    aws_client("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    aws_client("scheduler").create_schedule_group(Name=outputs["JTB_SCHEDULER_GROUP"])
    apply_outputs(settings, outputs)
    settings.JTB_BATCH_SECRETS = []
    settings.JTB_BATCH_SUBMITS_PER_SECOND = Decimal("50")
    settings.JTB_BATCH_PLATFORMS = ["EC2", "FARGATE"]
    for platform in settings.JTB_BATCH_PLATFORMS:
        batch_job_definition_sync(platform=platform)
    return outputs

"""The AWS preflight behind `manage.py aws_check`: is everything the settings point at there and usable?

Read-only: it only describes and gets (queues and their compute environments, the runner's job
definitions, roles, the template buckets, the runners' secret, the log group, the Scheduler group)
and never creates or changes anything, so it is safe against production at any time. Each check
gives one result with, when it fails, the fix. The resources are the ones
deploy/aws/jobtarget-batch.yaml creates; its outputs are the settings read here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from jobs import aws_limits
from jobs.models import Job, Schedule, ScheduleDriver
from runner.aws import batch
from runner.aws.client import aws_client
from runner.aws.s3 import parse_s3_uri

STACK = "deploy/aws/jobtarget-batch.yaml"
NOT_FOUND_CODES = frozenset({
    "ResourceNotFoundException", "NoSuchEntity", "NoSuchBucket", "404", "NotFound", "ParameterNotFound",
})


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"OK    {self.name}: {self.detail}"
        return f"FAIL  {self.name}: {self.detail} Fix: {self.fix}"


class _Unreadable(Exception):
    """An AWS call failed for another reason than "not found" (permissions, network)."""


def _get(service: str, operation: str, **params) -> dict | None:
    """One read-only call; None when the thing does not exist, _Unreadable when it cannot be read."""
    try:
        return getattr(aws_client(service), operation)(**params)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in NOT_FOUND_CODES:
            return None
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        raise _Unreadable(f"{service} {operation} failed: {code}: {message}") from None
    except BotoCoreError as exc:
        raise _Unreadable(f"{service} {operation} failed: {exc}") from None


def aws_checks_run() -> list[CheckResult]:
    """Every check, in the order a deploy needs them."""
    results: list[CheckResult] = []
    for check in (_queue_checks, _definition_checks, _role_checks, _bucket_checks, _secret_checks,
                  _log_group_checks, _scheduler_checks):
        results.extend(_guarded(check))
    return results


def _guarded(check: Callable[[], Iterator[CheckResult]]) -> Iterator[CheckResult]:
    try:
        yield from check()
    except _Unreadable as exc:
        what = check.__name__.strip("_").removesuffix("_checks").replace("_", " ")
        yield CheckResult(what, False, f"could not be read: {exc}.",
                          "Check AWS_REGION and the credentials, and give this role the read permissions of "
                          f"the AppRole in {STACK}.")


# --- queues -----------------------------------------------------------------------------------------
def _queues_in_use() -> list[str]:
    queues = {settings.JTB_BATCH_JOB_QUEUE, *settings.JTB_BATCH_FARGATE_QUEUES}
    queues |= set(Job.objects.exclude(queue="").values_list("queue", flat=True).distinct())
    return sorted(queue for queue in queues if queue)


def _queue_checks() -> Iterator[CheckResult]:
    queues = _queues_in_use()
    found = {}
    for start in range(0, len(queues), 100):
        answer = _get("batch", "describe_job_queues", jobQueues=queues[start:start + 100]) or {}
        for queue in answer.get("jobQueues", []):
            found[queue["jobQueueName"]] = queue
    environments = {}
    arns = sorted({item["computeEnvironment"] for queue in found.values()
                   for item in queue.get("computeEnvironmentOrder", [])})
    for start in range(0, len(arns), 100):
        answer = _get("batch", "describe_compute_environments", computeEnvironments=arns[start:start + 100]) or {}
        for environment in answer.get("computeEnvironments", []):
            environments[environment["computeEnvironmentArn"]] = environment
            environments[environment["computeEnvironmentName"]] = environment
    for queue in queues:
        yield _queue_result(queue, found.get(aws_limits.queue_name(queue)), environments)


def _queue_result(queue: str, described: dict | None, environments: dict) -> CheckResult:
    name = f"queue {queue}"
    if described is None:
        return CheckResult(name, False, "does not exist.",
                           f"Create it ({STACK} creates <prefix>-default) or point JTB_BATCH_JOB_QUEUE / the "
                           "jobs' executor queue at an existing queue.")
    if described.get("state") != "ENABLED":
        return CheckResult(name, False, f"is {described.get('state')}; no job in it starts.",
                           f"aws batch update-job-queue --job-queue {queue} --state ENABLED")
    if described.get("status") != "VALID":
        return CheckResult(name, False, f"is {described.get('status')}: {described.get('statusReason', '')}",
                           "Fix what the status reason says (or redeploy the stack).")
    order = sorted(described.get("computeEnvironmentOrder", []), key=lambda item: item.get("order", 0))
    if not order:
        return CheckResult(name, False, "has no compute environment.", "Attach a compute environment to it.")
    platforms = set()
    names = []
    for item in order:
        environment = environments.get(item["computeEnvironment"])
        if environment is None:
            return CheckResult(name, False, f"its compute environment {item['computeEnvironment']} does not exist.",
                               "Attach an existing compute environment (or redeploy the stack).")
        env_name = environment["computeEnvironmentName"]
        if environment.get("state") != "ENABLED" or environment.get("status") != "VALID":
            return CheckResult(
                name, False,
                f"compute environment {env_name} is {environment.get('state')}/{environment.get('status')}"
                f" {environment.get('statusReason', '')}".rstrip() + ".",
                f"aws batch update-compute-environment --compute-environment {env_name} --state ENABLED "
                "(and fix its status reason).",
            )
        kind = (environment.get("computeResources") or {}).get("type", "EC2")
        platforms.add(aws_limits.FARGATE_PLATFORM if kind.startswith("FARGATE") else aws_limits.EC2_PLATFORM)
        names.append(f"{env_name} {kind}")
    if len(platforms) > 1:
        return CheckResult(name, False, f"mixes Fargate and EC2 compute environments ({', '.join(names)}).",
                           "Give Fargate and EC2 environments separate queues: one job definition fits only one.")
    platform = platforms.pop()
    declared = aws_limits.queue_is_fargate(queue, settings.JTB_BATCH_FARGATE_QUEUES)
    if platform == aws_limits.FARGATE_PLATFORM and not declared:
        return CheckResult(name, False, f"runs on Fargate ({', '.join(names)}) but is not in JTB_BATCH_FARGATE_QUEUES.",
                           f"Add {aws_limits.queue_name(queue)} to JTB_BATCH_FARGATE_QUEUES.")
    if platform == aws_limits.EC2_PLATFORM and declared:
        return CheckResult(name, False, f"runs on EC2 ({', '.join(names)}) but is in JTB_BATCH_FARGATE_QUEUES.",
                           f"Remove {aws_limits.queue_name(queue)} from JTB_BATCH_FARGATE_QUEUES.")
    return CheckResult(name, True, f"ENABLED and VALID, {platform} ({', '.join(names)}).")


# --- job definitions --------------------------------------------------------------------------------
def _definition_checks() -> Iterator[CheckResult]:
    for platform in settings.JTB_BATCH_PLATFORMS:
        name = f"job definition {batch.job_definition_name(platform)}"
        try:
            spec = batch.job_definition_spec(platform)
        except batch.BatchError as exc:
            yield CheckResult(name, False, f"cannot be built from the settings: {exc}", "Set what the message names.")
            continue
        answer = _get("batch", "describe_job_definitions", jobDefinitionName=spec["jobDefinitionName"],
                      status="ACTIVE") or {}
        revisions = answer.get("jobDefinitions", [])
        if not revisions:
            yield CheckResult(name, False, "is not registered.", "Run manage.py batch_sync.")
            continue
        latest = max(revisions, key=lambda item: item["revision"])
        if (latest.get("tags") or {}).get(batch.SPEC_HASH_TAG) != batch.spec_hash(spec):
            yield CheckResult(name, False, f"revision {latest['revision']} does not match the settings (image, "
                              "roles, secrets or logs changed).", "Run manage.py batch_sync.")
            continue
        yield CheckResult(name, True, f"revision {latest['revision']} is current.")


# --- roles ------------------------------------------------------------------------------------------
def _scheduler_in_use() -> bool:
    return bool(settings.JTB_SCHEDULER_ROLE_ARN) or Schedule.objects.filter(driver=ScheduleDriver.EVENTBRIDGE).exists()


def _role_checks() -> Iterator[CheckResult]:
    roles = [
        ("JTB_BATCH_JOB_ROLE_ARN", "ecs-tasks.amazonaws.com", "the runner reads templates from S3 with it"),
        ("JTB_BATCH_EXECUTION_ROLE_ARN", "ecs-tasks.amazonaws.com", "ECS pulls the image and reads the secret with it"),
    ]
    if _scheduler_in_use():
        roles.append(("JTB_SCHEDULER_ROLE_ARN", "scheduler.amazonaws.com", "EventBridge schedules submit jobs with it"))
    for setting, service, why in roles:
        yield _role_result(setting, service, why)


def _role_result(setting: str, service: str, why: str) -> CheckResult:
    arn = getattr(settings, setting)
    name = f"role {setting}"
    if not arn:
        return CheckResult(name, False, f"is not set; {why}.", f"Set {setting} to the stack output of that name.")
    role = _get("iam", "get_role", RoleName=arn.rsplit("/", 1)[-1])
    if role is None:
        return CheckResult(name, False, f"{arn} does not exist.", f"Deploy {STACK} or set {setting} to an existing role.")
    if not _trusts(role["Role"].get("AssumeRolePolicyDocument"), service):
        return CheckResult(name, False, f"{arn} cannot be assumed by {service}.",
                           f"Let {service} assume it (sts:AssumeRole in its trust policy).")
    return CheckResult(name, True, f"{arn} can be assumed by {service}.")


def _trusts(document, service: str) -> bool:
    if isinstance(document, str):
        document = json.loads(unquote(document))
    statements = (document or {}).get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        services = (statement.get("Principal") or {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        if statement.get("Effect") == "Allow" and service in services and (
            "sts:AssumeRole" in actions or "sts:*" in actions
        ):
            return True
    return False


# --- storage, secret, logs, scheduler -------------------------------------------------------------
def _bucket_checks() -> Iterator[CheckResult]:
    buckets = list(settings.JTB_TEMPLATE_BUCKETS)
    if settings.JTB_TEMPLATE_UPLOAD_URI:
        upload_bucket = parse_s3_uri(settings.JTB_TEMPLATE_UPLOAD_URI)[0]
        if upload_bucket not in buckets:
            yield CheckResult("template upload", False,
                              f"JTB_TEMPLATE_UPLOAD_URI's bucket {upload_bucket} is not in JTB_TEMPLATE_BUCKETS; "
                              "jobs could not use the templates uploaded there.",
                              f"Add {upload_bucket} to JTB_TEMPLATE_BUCKETS.")
    if not buckets:
        yield CheckResult("template buckets", False, "JTB_TEMPLATE_BUCKETS is empty: any bucket would be accepted.",
                          "Set JTB_TEMPLATE_BUCKETS to the stack output of that name.")
    for bucket in buckets:
        name = f"bucket {bucket}"
        listed = _get("s3", "list_objects_v2", Bucket=bucket, MaxKeys=1)
        if listed is None:
            yield CheckResult(name, False, "does not exist.", f"Deploy {STACK} or fix JTB_TEMPLATE_BUCKETS.")
            continue
        versioning = (_get("s3", "get_bucket_versioning", Bucket=bucket) or {}).get("Status")
        if versioning != "Enabled":
            yield CheckResult(name, False, "is readable but not versioned: an upload would replace a template "
                              "runs still use.",
                              f"aws s3api put-bucket-versioning --bucket {bucket} "
                              "--versioning-configuration Status=Enabled")
            continue
        yield CheckResult(name, True, "exists, is readable and versioned.")


def _secret_checks() -> Iterator[CheckResult]:
    arn = settings.JTB_BATCH_DATABASE_URL_SECRET_ARN
    name = "secret JTB_BATCH_DATABASE_URL_SECRET_ARN"
    if not arn:
        yield CheckResult(name, False, "is not set; runners would have no database.",
                          "Set it to the stack output of that name.")
        return
    if ":ssm:" in arn:
        parameter = arn.split(":parameter", 1)[-1]
        answer = _get("ssm", "describe_parameters", ParameterFilters=[{"Key": "Name", "Values": [parameter]}]) or {}
        exists = bool(answer.get("Parameters"))
    else:
        exists = _get("secretsmanager", "describe_secret", SecretId=arn) is not None
    if not exists:
        yield CheckResult(name, False, f"{arn} does not exist.",
                          "Create it holding the runners' DATABASE_URL (the stack does) and set its ARN.")
        return
    yield CheckResult(name, True, f"{arn} exists.")


def _log_group_checks() -> Iterator[CheckResult]:
    group = settings.JTB_BATCH_LOG_GROUP
    answer = _get("logs", "describe_log_groups", logGroupNamePrefix=group) or {}
    if not any(item.get("logGroupName") == group for item in answer.get("logGroups", [])):
        yield CheckResult(f"log group {group}", False, "does not exist; runner logs would be lost.",
                          f"aws logs create-log-group --log-group-name {group} (the stack creates it).")
        return
    yield CheckResult(f"log group {group}", True, "exists.")


def _scheduler_checks() -> Iterator[CheckResult]:
    if not _scheduler_in_use():
        return
    group = settings.JTB_SCHEDULER_GROUP
    if _get("scheduler", "get_schedule_group", Name=group) is None:
        yield CheckResult(f"scheduler group {group}", False, "does not exist.",
                          f"aws scheduler create-schedule-group --name {group} (or deploy the stack with "
                          "CreateSchedulerGroup=true).")
        return
    yield CheckResult(f"scheduler group {group}", True, "exists.")

"""The one SubmitJob request for a run on AWS Batch, from a job's settings.

Two callers must send the same thing: the executor submits a queued Process directly (camelCase,
boto3's `submit_job`), and EventBridge Scheduler's universal target submits the job at each tick
of an `eventbridge` schedule (its Input is the same request in PascalCase). Both are built here —
the EventBridge input is `pascal_case(submit_job_request(...))`, derived, never rewritten — so
resources, retry strategy, timeout and tags cannot drift apart.
"""

from __future__ import annotations

import math
from decimal import Decimal

from django.conf import settings

from jobs import aws_limits
from runner.aws import batch

# Batch stops an attempt this long after the job's own timeout: the runner enforces the timeout
# (and says so); Batch is the backstop for a runner that hangs, module installs included.
TIMEOUT_MARGIN_SECONDS = 300
MIN_ATTEMPT_SECONDS = 60
MAX_ATTEMPTS = 10
# A Spot reclaim shows as "Host EC2 (instance i-...) terminated.": retry it, exit on anything else.
EVALUATE_ON_EXIT = [
    {"onStatusReason": "Host EC2*", "action": "RETRY"},
    {"onReason": "*", "action": "EXIT"},
]
# Tag keys the system sets; a job's own tags may not use them.
RESERVED_TAG_PREFIXES = ("aws:", "jtb:")
MAX_JOB_NAME = 128
# Members whose values are maps of the user's own keys (tag names, parameter names): their keys
# keep their spelling in the PascalCase rendering.
_USER_KEYED = frozenset({"tags", "parameters"})


def batch_job_name(*, job_id: int, suffix: str, prefix: str | None = None) -> str:
    """A valid Batch job name (letters, digits, - and _, first one alphanumeric, at most 128) that
    always ends with `-job<id>-<suffix>`: lost-job recovery and the tracker find runs by those ids,
    so a long prefix is shortened, never the ids."""
    return aws_limits.batch_name(settings.JTB_BATCH_NAME_PREFIX if prefix is None else prefix, f"job{job_id}-{suffix}")


def batch_queue(snapshot: dict) -> str:
    return snapshot.get("queue") or settings.JTB_BATCH_JOB_QUEUE


def is_fargate_queue(queue: str) -> bool:
    # By name or ARN, on either side.
    return aws_limits.queue_is_fargate(queue, settings.JTB_BATCH_FARGATE_QUEUES)


def resource_requirements(snapshot: dict, *, fargate: bool) -> list[dict]:
    vcpus = Decimal(str(snapshot.get("vcpus") or settings.JTB_DEFAULT_VCPUS))
    # EC2 compute environments take whole vCPUs; Fargate takes 0.25, 0.5, 1, 2 ...
    vcpu_text = format(vcpus.normalize(), "f") if fargate else str(max(1, math.ceil(vcpus)))
    memory = int(snapshot.get("memory_mib") or settings.JTB_DEFAULT_MEMORY_MIB)
    requirements = [{"type": "VCPU", "value": vcpu_text}, {"type": "MEMORY", "value": str(memory)}]
    gpus = int(snapshot.get("gpus") or 0)
    if gpus > 0:
        requirements.append({"type": "GPU", "value": str(gpus)})
    return requirements


def job_tags(tags: dict, system: dict[str, str]) -> dict[str, str]:
    """The job's own tags, less reserved keys, with the system's tags (`jtb:...`) on top."""
    own = {key: str(value) for key, value in (tags or {}).items() if not key.lower().startswith(RESERVED_TAG_PREFIXES)}
    return {**own, **system}


def submit_job_request(
    *,
    snapshot: dict,
    job_id: int,
    tags: dict,
    name_suffix: str,
    system_tags: dict[str, str],
    parameters: dict[str, str] | None = None,
    command: list[str] | None = None,
    environment: dict[str, str] | None = None,
) -> dict:
    """SubmitJob parameters (boto3 spelling) for one run of a job whose settings are `snapshot`
    (processes.services.job_snapshot: template, vcpus, memory_mib, gpus, timeout_seconds,
    retry_attempts, queue ...)."""
    queue = batch_queue(snapshot)
    fargate = is_fargate_queue(queue)
    timeout = int(snapshot.get("timeout_seconds") or settings.JTB_DEFAULT_TIMEOUT_SECONDS)
    overrides: dict = {"resourceRequirements": resource_requirements(snapshot, fargate=fargate)}
    if command is not None:
        overrides["command"] = list(command)
    if environment:
        overrides["environment"] = [{"name": key, "value": value} for key, value in environment.items()]
    request = {
        "jobName": batch_job_name(job_id=job_id, suffix=name_suffix),
        "jobQueue": queue,
        "jobDefinition": batch.job_definition_name("FARGATE" if fargate else "EC2"),
        "containerOverrides": overrides,
        "timeout": {"attemptDurationSeconds": max(MIN_ATTEMPT_SECONDS, timeout + TIMEOUT_MARGIN_SECONDS)},
        "retryStrategy": {
            "attempts": max(1, min(MAX_ATTEMPTS, int(snapshot.get("retry_attempts") or 1))),
            "evaluateOnExit": [dict(rule) for rule in EVALUATE_ON_EXIT],
        },
        "tags": job_tags(tags, system_tags),
        "propagateTags": True,
    }
    if parameters:
        request["parameters"] = dict(parameters)
    return request


def pascal_case(request: dict) -> dict:
    """The same request in the PascalCase spelling of EventBridge Scheduler's universal target."""
    return _pascal(request)


def _pascal(value, *, user_keyed: bool = False):
    if isinstance(value, dict):
        if user_keyed:
            return dict(value)
        return {key[:1].upper() + key[1:]: _pascal(item, user_keyed=key in _USER_KEYED) for key, item in value.items()}
    if isinstance(value, list):
        return [_pascal(item) for item in value]
    return value

"""AWS Batch: every call the executor, the tracker and `batch_sync` make, paced and retried.

SubmitJob is limited to 50 calls a second per account. Submits take a token from a bucket shared
by every thread of the worker process (JTB_BATCH_SUBMITS_PER_SECOND), and any call AWS throttles
(TooManyRequestsException) is retried with jittered exponential backoff, taking a new token each
time, so a burst of 1,000 runs is slowed down, never dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Iterable

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from runner.aws.client import aws_client, aws_error_code

logger = logging.getLogger(__name__)

THROTTLE_CODES = frozenset({
    "TooManyRequestsException", "ThrottlingException", "Throttling", "RequestLimitExceeded", "TooManyRequests",
})
# Seconds before each retry of a throttled call (full jitter up to this value): ~45 s in all.
RETRY_DELAYS = (0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 8.0, 10.0, 15.0)
DESCRIBE_BATCH = 100
SPEC_HASH_TAG = "jtb:spec-sha256"
PROCESS_ID_PARAMETER = "process_id"
FINAL_STATES = frozenset({"SUCCEEDED", "FAILED"})
WAITING_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")
STATE_ORDER = {"SUBMITTED": 0, "PENDING": 1, "RUNNABLE": 2, "STARTING": 3, "RUNNING": 4, "SUCCEEDED": 5, "FAILED": 5}


class BatchThrottled(Exception):
    """AWS kept throttling a call through every retry."""


class BatchError(Exception):
    """AWS Batch refused or failed a call; the message is meant for people."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class TokenBucket:
    """A thread-safe token bucket: `take()` blocks until a call may go out at `rate` per second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._last = 0.0

    def take(self, rate: float) -> None:
        # A fifth of a second's worth may go out at once; past that, calls are spaced evenly.
        capacity = max(1.0, rate / 5)
        while True:
            with self._lock:
                now = time.monotonic()
                if self._tokens is None:
                    self._tokens, self._last = capacity, now
                self._tokens = min(capacity, self._tokens + max(0.0, now - self._last) * rate)
                self._last = now
                if self._tokens >= 1 - 1e-9:  # float sums of refills land a hair under 1
                    self._tokens -= 1
                    return
                wait = max((1 - self._tokens) / rate, 0.001)
            time.sleep(wait)


submit_bucket = TokenBucket()


def _call(operation: str, *, paced: bool = False, **params) -> dict:
    """One Batch API call, retried while AWS throttles it."""
    client = aws_client("batch")
    for delay in (*RETRY_DELAYS, None):
        if paced:
            submit_bucket.take(float(settings.JTB_BATCH_SUBMITS_PER_SECOND))
        try:
            return getattr(client, operation)(**params)
        except ClientError as exc:
            code = aws_error_code(exc)
            if code in THROTTLE_CODES:
                if delay is None:
                    raise BatchThrottled(f"AWS Batch throttled {operation} through every retry.") from exc
                logger.info("AWS Batch throttled %s; retrying within %.1f s", operation, delay)
                time.sleep(random.uniform(delay / 2, delay))
                continue
            message = exc.response.get("Error", {}).get("Message", "") or str(exc)
            raise BatchError(f"AWS Batch {operation} failed: {code}: {message}", code=code) from exc
        except BotoCoreError as exc:
            raise BatchError(f"AWS Batch {operation} failed: {exc}", code="connection") from exc
    raise AssertionError("unreachable")


def batch_job_queue_state(*, queue: str) -> str:
    """"ENABLED/VALID" for a usable job queue, else what is wrong with it (readiness probe)."""
    queues = _call("describe_job_queues", jobQueues=[queue]).get("jobQueues", [])
    if not queues:
        return "missing"
    return f"{queues[0].get('state', '?')}/{queues[0].get('status', '?')}"


# --- jobs -------------------------------------------------------------------------------------------
def batch_job_submit(params: dict) -> str:
    """SubmitJob, paced; returns the Batch job id."""
    return _call("submit_job", paced=True, **params)["jobId"]


def batch_jobs_describe(job_ids: Iterable[str]) -> list[dict]:
    """DescribeJobs, 100 ids a call. Ids Batch no longer knows are simply absent."""
    ids = list(dict.fromkeys(job_ids))
    jobs: list[dict] = []
    for start in range(0, len(ids), DESCRIBE_BATCH):
        jobs.extend(_call("describe_jobs", jobs=ids[start : start + DESCRIBE_BATCH]).get("jobs", []))
    return jobs


def batch_jobs_find(*, queue: str, name: str) -> list[dict]:
    """Jobs in `queue` called exactly `name`, in every state, oldest first."""
    params = {"jobQueue": queue, "filters": [{"name": "JOB_NAME", "values": [name]}]}
    found: list[dict] = []
    while True:
        answer = _call("list_jobs", **params)
        found.extend(job for job in answer.get("jobSummaryList", []) if job.get("jobName") == name)
        token = answer.get("nextToken")
        if not token:
            return sorted(found, key=lambda job: job.get("createdAt") or 0)
        params["nextToken"] = token


def batch_job_cancel(*, job_id: str, reason: str) -> None:
    """CancelJob: stops a job that has not started (SUBMITTED ... RUNNABLE)."""
    _call("cancel_job", jobId=job_id, reason=reason[:1000] or "Cancelled.")


def batch_job_terminate(*, job_id: str, reason: str) -> None:
    """TerminateJob: stops a job in any state (running containers get SIGTERM, then SIGKILL)."""
    _call("terminate_job", jobId=job_id, reason=reason[:1000] or "Terminated.")


# --- the runner's job definition ------------------------------------------------------------------
# Settings the runner inside the container must share with the web app and workers. Plain,
# non-secret values; credentials come from JTB_BATCH_DATABASE_URL_SECRET_ARN / JTB_BATCH_SECRETS.
RUNNER_SETTINGS = ("JTB_TEMPLATE_BUCKETS", "JTB_PACKAGE_INDEX_URL", "JTB_HEARTBEAT_SECONDS", "JTB_KILL_GRACE_SECONDS",
                   "TIME_ZONE", "AWS_REGION")


def job_definition_name(platform: str) -> str:
    base = settings.JTB_BATCH_JOB_DEFINITION
    return f"{base}-fargate" if platform == "FARGATE" else base


def runner_secrets() -> list[dict]:
    """The container's secrets; refuses anything that is not a Secrets Manager or SSM ARN."""
    pairs = [("DATABASE_URL", settings.JTB_BATCH_DATABASE_URL_SECRET_ARN)]
    for item in settings.JTB_BATCH_SECRETS:
        name, _, arn = item.partition("=")
        pairs.append((name.strip(), arn.strip()))
    secrets = []
    for name, arn in pairs:
        if not arn:
            raise BatchError(
                f"No secret for {name}: set JTB_BATCH_DATABASE_URL_SECRET_ARN to the ARN of a Secrets Manager "
                "secret or SSM parameter holding it (plain values never go into the job definition)."
            )
        if not arn.startswith("arn:") or (":secretsmanager:" not in arn and ":ssm:" not in arn):
            raise BatchError(f"The secret for {name} must be a Secrets Manager or SSM ARN, got {arn[:40]!r}.")
        secrets.append({"name": name, "valueFrom": arn})
    return secrets


def _setting_text(name: str) -> str:
    value = getattr(settings, name, "")
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


def job_definition_spec(platform: str) -> dict:
    """RegisterJobDefinition parameters of the runner for EC2 or FARGATE."""
    if platform not in ("EC2", "FARGATE"):
        raise BatchError(f"Unknown Batch platform {platform!r}; use EC2 or FARGATE.")
    # JTB_RUNNER_ONLY: the runner signs nothing, so it starts without SECRET_KEY (settings refuse otherwise).
    environment = [{"name": "JTB_EXECUTOR", "value": "aws_batch"}, {"name": "JTB_RUNNER_ONLY", "value": "true"}]
    environment += [{"name": name, "value": _setting_text(name)} for name in RUNNER_SETTINGS if _setting_text(name)]
    container = {
        "image": settings.JTB_BATCH_IMAGE,
        "command": ["python", "manage.py", "run_process", f"Ref::{PROCESS_ID_PARAMETER}"],
        # Defaults only: every SubmitJob overrides them with the job's own resources.
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
        "environment": environment,
        "secrets": runner_secrets(),
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": settings.JTB_BATCH_LOG_GROUP,
                "awslogs-region": settings.AWS_REGION,
                "awslogs-stream-prefix": settings.JTB_BATCH_LOG_STREAM_PREFIX,
            },
        },
    }
    if settings.JTB_BATCH_JOB_ROLE_ARN:
        container["jobRoleArn"] = settings.JTB_BATCH_JOB_ROLE_ARN
    if settings.JTB_BATCH_EXECUTION_ROLE_ARN:
        container["executionRoleArn"] = settings.JTB_BATCH_EXECUTION_ROLE_ARN
    if platform == "FARGATE":
        if not settings.JTB_BATCH_EXECUTION_ROLE_ARN:
            raise BatchError("Fargate needs JTB_BATCH_EXECUTION_ROLE_ARN (pulls the image, reads the secrets).")
        container["networkConfiguration"] = {
            "assignPublicIp": "ENABLED" if settings.JTB_BATCH_FARGATE_ASSIGN_PUBLIC_IP else "DISABLED"
        }
        container["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
    return {
        "jobDefinitionName": job_definition_name(platform),
        "type": "container",
        "platformCapabilities": [platform],
        "parameters": {PROCESS_ID_PARAMETER: "0"},
        "containerProperties": container,
        "propagateTags": True,
    }


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def batch_job_definition_sync(*, platform: str) -> tuple[str, bool]:
    """Register the runner's definition when it changed; returns (name:revision, registered)."""
    spec = job_definition_spec(platform)
    digest = spec_hash(spec)
    name = spec["jobDefinitionName"]
    latest = None
    params = {"jobDefinitionName": name, "status": "ACTIVE"}
    while True:
        answer = _call("describe_job_definitions", **params)
        for definition in answer.get("jobDefinitions", []):
            if latest is None or definition["revision"] > latest["revision"]:
                latest = definition
        if not answer.get("nextToken"):
            break
        params["nextToken"] = answer["nextToken"]
    if latest is not None and (latest.get("tags") or {}).get(SPEC_HASH_TAG) == digest:
        return f"{name}:{latest['revision']}", False
    answer = _call("register_job_definition", **spec, tags={SPEC_HASH_TAG: digest})
    return f"{name}:{answer['revision']}", True

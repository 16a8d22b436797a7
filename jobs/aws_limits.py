"""What AWS refuses, written down once so a Job or a setting is refused when it is saved.

Pure code (no models, no settings reads): the model's `clean`, the API (through it), the system
checks and the SubmitJob builders all call these. The limits come from botocore's Batch model
documentation (ResourceRequirement, TagResource) and the EventBridge Scheduler API reference;
an AWS limit that changes is changed here.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

FARGATE_PLATFORM = "FARGATE"
EC2_PLATFORM = "EC2"


def _steps(first: int, last: int, step: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1, step))


# vCPUs a Fargate job may ask for, each with the memory sizes (MiB) Fargate pairs with it.
FARGATE_MEMORY_BY_VCPUS: dict[Decimal, tuple[int, ...]] = {
    Decimal("0.25"): (512, 1024, 2048),
    Decimal("0.5"): _steps(1024, 4096, 1024),
    Decimal("1"): _steps(2048, 8192, 1024),
    Decimal("2"): _steps(4096, 16384, 1024),
    Decimal("4"): _steps(8192, 30720, 1024),
    Decimal("8"): _steps(16384, 61440, 4096),
    Decimal("16"): _steps(32768, 122880, 8192),
    Decimal("32"): (61440, 122880, 249856),
}

# Tags: AWS allows at most 50 on a resource. Ours take up to 3 of them on what a run creates:
# jtb:job-id, jtb:process-id or jtb:schedule-id, and the job definition's jtb:spec-sha256, which
# `propagateTags` copies onto the ECS task together with the job's.
AWS_MAX_TAGS = 50
OUR_TAGS = 3
MAX_USER_TAGS = AWS_MAX_TAGS - OUR_TAGS
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
# Besides letters, digits and spaces (any language), AWS tags allow only these characters.
TAG_PUNCTUATION = frozenset("_.:/=+-@")
RESERVED_TAG_PREFIXES = ("aws:", "jtb:")

# Batch job names: 1-128 characters, letters, digits, hyphens and underscores, starting with a
# letter or digit.
BATCH_JOB_NAME_MAX = 128
_BATCH_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_-]")

# Names zoneinfo knows that are not real IANA zones (and EventBridge Scheduler refuses).
NOT_IANA_ZONES = frozenset({"localtime", "Factory", "posixrules"})
NOT_IANA_ZONE_PREFIXES = ("posix/", "right/", "SystemV/")

# EventBridge Scheduler's RetryPolicy: MaximumEventAgeInSeconds 60..86400, retries 0..185.
SCHEDULER_EVENT_AGE_RANGE = (60, 86400)
# AWS Batch accepts 50 SubmitJob calls a second per account.
BATCH_SUBMITS_PER_SECOND_MAX = Decimal("50")
# Schedule and group names: 1-64 characters of [0-9a-zA-Z-_.]; ours append "-<schedule id>".
SCHEDULER_NAME_MAX = 64
SCHEDULER_ID_DIGITS = 19
_SCHEDULER_NAME = re.compile(r"^[0-9A-Za-z_.-]+$")


# --- queues and platforms -------------------------------------------------------------------------
def queue_name(queue: str) -> str:
    """A job queue's name, also when it is given as its ARN (arn:aws:batch:…:job-queue/<name>)."""
    text = (queue or "").strip()
    if text.startswith("arn:") and ":job-queue/" in text:
        return text.rsplit("/", 1)[1]
    return text


def queue_is_fargate(queue: str, fargate_queues) -> bool:
    """Whether `queue` (name or ARN) is one of `fargate_queues` (names or ARNs)."""
    name = queue_name(queue)
    return bool(name) and name in {queue_name(item) for item in fargate_queues}


# --- resources --------------------------------------------------------------------------------
def _decimal(value) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def ec2_vcpus_sent(vcpus) -> int:
    """The whole vCPUs an EC2 SubmitJob asks for: EC2 compute environments take no fractions."""
    number = _decimal(vcpus) or Decimal(1)
    return max(1, int(number.to_integral_value(rounding="ROUND_CEILING")))


def batch_resource_errors(*, vcpus, memory_mib, gpus, platform: str) -> dict[str, str]:
    """{field: message} for resources AWS Batch refuses on `platform`; empty when it takes them."""
    errors: dict[str, str] = {}
    number = _decimal(vcpus)
    if number is None:
        return {"vcpus": "Give the vCPUs as a number, e.g. 1 or 0.5."}
    if platform == FARGATE_PLATFORM:
        allowed = FARGATE_MEMORY_BY_VCPUS.get(number.normalize())
        if allowed is None:
            choices = ", ".join(format(item, "f") for item in FARGATE_MEMORY_BY_VCPUS)
            errors["vcpus"] = f"Fargate queues take {choices} vCPUs; {format(number.normalize(), 'f')} is not one of them."
        elif memory_mib is not None and int(memory_mib) not in allowed:
            shown = _ranges(allowed)
            errors["memory_mib"] = (
                f"With {format(number.normalize(), 'f')} vCPUs Fargate takes {shown} MiB of memory; "
                f"{memory_mib} is not one of them."
            )
        if gpus:
            errors["gpus"] = "Fargate queues have no GPUs: set GPUs to 0 or pick a queue with GPU instances."
    elif number != number.to_integral_value():
        sent = ec2_vcpus_sent(number)
        errors["vcpus"] = (
            f"EC2 queues take whole vCPUs: {format(number.normalize(), 'f')} would be sent as {sent}. "
            f"Ask for {sent} (or pick a Fargate queue)."
        )
    return errors


def _ranges(values: tuple[int, ...]) -> str:
    if len(values) > 3:
        step = values[1] - values[0]
        if all(b - a == step for a, b in zip(values, values[1:], strict=False)):
            return f"{values[0]} to {values[-1]} in steps of {step}"
    return ", ".join(str(value) for value in values[:-1]) + f" or {values[-1]}"


# --- tags -------------------------------------------------------------------------------------
def _tag_text_valid(text: str) -> bool:
    return all(ch in TAG_PUNCTUATION or unicodedata.category(ch)[0] in "LNZ" for ch in text)


def tag_errors(tags) -> list[str]:
    """Messages for tags AWS would refuse or we would drop (one per tag, in order); empty if fine."""
    if not isinstance(tags, dict):
        return ["Tags must be a JSON object of names and text values, e.g. {\"team\": \"finance\"}."]
    problems: list[str] = []
    if len(tags) > MAX_USER_TAGS:
        problems.append(
            f"At most {MAX_USER_TAGS} tags: AWS allows {AWS_MAX_TAGS} and every run carries {OUR_TAGS} of its own."
        )
    allowed = "letters, digits, spaces and _ . : / = + - @"
    for key, value in tags.items():
        shown = key if len(key) <= 40 else key[:37] + "..."
        if not isinstance(key, str) or not key or len(key) > TAG_KEY_MAX:
            problems.append(f"Tag {shown!r}: a tag name is 1-{TAG_KEY_MAX} characters.")
        elif key.lower().startswith(RESERVED_TAG_PREFIXES):
            problems.append(f"Tag {shown!r}: names starting with aws: or jtb: are reserved for AWS and this system.")
        elif not _tag_text_valid(key):
            problems.append(f"Tag {shown!r}: a tag name may contain only {allowed}.")
        elif not isinstance(value, str) or len(value) > TAG_VALUE_MAX:
            problems.append(f"Tag {shown!r}: the value must be text of at most {TAG_VALUE_MAX} characters.")
        elif not _tag_text_valid(value):
            problems.append(f"Tag {shown!r}: the value may contain only {allowed}.")
    return problems


# --- names ------------------------------------------------------------------------------------
def batch_name(prefix: str, suffix: str) -> str:
    """A valid Batch job name that always ends with `suffix` (the ids), whatever the prefix.

    The prefix loses its invalid characters and, when the whole is too long, its end: lost-job
    recovery and the event consumer find runs by the ids at the end of the name.
    """
    clean_prefix = _BATCH_NAME_CHARACTER.sub("-", prefix or "").strip("-_")
    clean_suffix = _BATCH_NAME_CHARACTER.sub("-", suffix).strip("-")
    room = BATCH_JOB_NAME_MAX - len(clean_suffix) - 1
    clean_prefix = clean_prefix[: max(room, 0)].rstrip("-_") or "jtb"
    return f"{clean_prefix}-{clean_suffix}"[-BATCH_JOB_NAME_MAX:]


def batch_job_name(prefix: str, job_id: int, process_id: int) -> str:
    """The Batch job name of a run: `<prefix>-job<job id>-process<process id>`."""
    return batch_name(prefix, f"job{int(job_id)}-process{int(process_id)}")


def batch_schedule_job_name(prefix: str, job_id: int, schedule_id: int) -> str:
    """The Batch job name EventBridge Scheduler submits for a schedule's tick."""
    return batch_name(prefix, f"job{int(job_id)}-schedule{int(schedule_id)}")


# --- time zones and settings --------------------------------------------------------------------
def is_iana_zone(name: str) -> bool:
    """False for the names zoneinfo knows that are no IANA zone (localtime, Factory, posix/…)."""
    return name not in NOT_IANA_ZONES and not name.startswith(NOT_IANA_ZONE_PREFIXES)


def submits_per_second_warning(rate) -> str:
    """Above AWS's SubmitJob limit calls are throttled and retried, not refused: a warning, not an error
    (tests and benchmarks against moto go faster on purpose)."""
    if Decimal(str(rate)) > BATCH_SUBMITS_PER_SECOND_MAX:
        return (f"JTB_BATCH_SUBMITS_PER_SECOND is {rate}, above AWS Batch's {BATCH_SUBMITS_PER_SECOND_MAX} SubmitJob "
                "calls a second per account: AWS will throttle the excess.")
    return ""


def aws_setting_errors(values: dict) -> dict[str, str]:
    """{setting: message} for settings outside AWS's limits. `values` maps setting names to values."""
    errors: dict[str, str] = {}
    age = values.get("JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS")
    low, high = SCHEDULER_EVENT_AGE_RANGE
    if age is not None and not low <= int(age) <= high:
        errors["JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS"] = (
            f"must be between {low} and {high} seconds (EventBridge Scheduler's limit), got {age}."
        )
    rate = values.get("JTB_BATCH_SUBMITS_PER_SECOND")
    if rate is not None and not Decimal(str(rate)) > 0:
        errors["JTB_BATCH_SUBMITS_PER_SECOND"] = f"must be above 0, got {rate}."
    group = values.get("JTB_SCHEDULER_GROUP")
    if group is not None and (not _SCHEDULER_NAME.match(group) or len(group) > SCHEDULER_NAME_MAX):
        errors["JTB_SCHEDULER_GROUP"] = (
            f"must be 1-{SCHEDULER_NAME_MAX} letters, digits, '-', '_' or '.', got {group!r}."
        )
    prefix = values.get("JTB_SCHEDULER_NAME_PREFIX")
    prefix_max = SCHEDULER_NAME_MAX - 1 - SCHEDULER_ID_DIGITS
    if prefix is not None and (not _SCHEDULER_NAME.match(prefix) or len(prefix) > prefix_max):
        errors["JTB_SCHEDULER_NAME_PREFIX"] = (
            f"must be 1-{prefix_max} letters, digits, '-', '_' or '.' (schedule names are at most "
            f"{SCHEDULER_NAME_MAX} characters with '-<id>'), got {prefix!r}."
        )
    name_prefix = values.get("JTB_BATCH_NAME_PREFIX")
    if name_prefix is not None and (_BATCH_NAME_CHARACTER.search(name_prefix) or not name_prefix
                                    or len(name_prefix) > 64):
        errors["JTB_BATCH_NAME_PREFIX"] = (
            f"must be 1-64 letters, digits, '-' or '_' (Batch job names), got {name_prefix!r}."
        )
    return errors

"""Validation of what users type into a Job, shared by the model, the admin and the API.

Every function raises django.core.exceptions.ValidationError with a message a non-engineer can act
on, and returns the normalized value.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import parse_qsl, urlsplit

from django.core.exceptions import ValidationError

from jobs import aws_limits
from jobs.input_gate import validate_input
from jobtarget_batch.conf import settings

MAX_MODULES = 200
MAX_REQUIREMENT_LENGTH = 200
# The allow-list: an environment name is letters, digits and underscores, not starting with a digit.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Families a job may not set, matched without regard to case (`https_proxy` works as well as
# `HTTPS_PROXY`): the runner's own settings, and names that change what the interpreter, the C
# library, the dynamic loader, network clients or AWS SDKs load, trust or talk to.
_REFUSED_ENV_NAMES = re.compile(
    r"""^(?:
        JTB_.* | DJANGO_.* | DATABASE_.* | SECRET_KEY | CELERY_.*
      | PATH | HOME | SHELL | BASH_ENV | ENV | IFS | TMPDIR
      | LD_.* | GCONV_.* | LOCPATH | NLSPATH | HOSTALIASES | RESOLV_.* | MALLOC_.* | GLIBC_TUNABLES
      | PYTHON.* | PIP_.* | UV_.* | VIRTUAL_ENV
      | .*_PROXY
      | SSL_CERT_.* | .*_CA_BUNDLE | CURL_.* | NODE_OPTIONS | PERL5.* | RUBYOPT
      | AWS_(?!REGION$|DEFAULT_REGION$).*
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def validate_python_modules(value) -> list[str]:
    """A list of PEP 508 requirements: names, extras, version specifiers and markers only."""
    if not isinstance(value, list):
        raise ValidationError("Python modules must be a list of requirements, e.g. [\"requests>=2.31\"].")
    if len(value) > MAX_MODULES:
        raise ValidationError(f"At most {MAX_MODULES} Python modules are allowed.")
    cleaned: list[str] = []
    errors: list[ValidationError] = []
    for item in value:
        try:
            cleaned.append(validate_requirement(item))
        except ValidationError as exc:
            errors.extend(exc.error_list)
    if errors:
        raise ValidationError(errors)
    return cleaned


def validate_requirement(item) -> str:
    if not isinstance(item, str):
        raise ValidationError(f"{item!r} is not a requirement: write it as text, e.g. \"pandas==2.2.2\".")
    text = item.strip()
    shown = text if len(text) <= 60 else text[:57] + "..."
    if not text:
        raise ValidationError("A Python module line is empty.")
    if any(ch in text for ch in "\r\n\t\0"):
        raise ValidationError(f"{shown!r}: a requirement must be on one line.")
    if len(text) > MAX_REQUIREMENT_LENGTH:
        raise ValidationError(f"{shown!r}: a requirement may be at most {MAX_REQUIREMENT_LENGTH} characters.")
    if text.startswith("-"):
        raise ValidationError(f"{shown!r}: pip options are not allowed; give a package name such as \"requests>=2.31\".")
    # Loaded here, not at import: the container runner validates its template path before the
    # template starts, and django.core.validators and packaging cost it ~15 ms there.
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        raise ValidationError(
            f"{shown!r} is not a valid requirement; use a name with optional extras, version and "
            "marker, e.g. \"requests[socks]>=2.31; python_version >= '3.10'\"."
        ) from None
    if requirement.url:
        raise ValidationError(f"{shown!r}: URLs and paths are not allowed; give a package name and version.")
    return str(requirement)


def validate_template(value) -> str:
    """`s3://bucket/key` (optional `?versionId=`) or a path relative to the template root."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("Give a template, e.g. examples/hello.py or s3://my-bucket/jobs/report.py.")
    text = value.strip()
    if any(ch in text for ch in "\r\n\t\0\\"):
        raise ValidationError("The template must be one line without backslashes.")
    if len(text) > 1024:
        raise ValidationError("The template may be at most 1024 characters.")
    parts = urlsplit(text)
    if parts.scheme == "s3":
        return _validate_s3_template(text, parts)
    if parts.scheme or text.startswith("//"):
        raise ValidationError(
            f"Unknown template scheme {parts.scheme or '//'!r}: use s3://bucket/key or a path under the template folder."
        )
    path = PurePosixPath(text)
    if path.is_absolute():
        raise ValidationError("The template path must be relative to the template folder, e.g. examples/hello.py.")
    if ".." in path.parts:
        raise ValidationError("The template path may not contain '..'.")
    if path.suffix != ".py":
        raise ValidationError("A local template must be a Python file ending in .py.")
    return str(path)


def _validate_s3_template(text: str, parts) -> str:
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not _S3_BUCKET.match(bucket):
        raise ValidationError(f"{bucket!r} is not a valid S3 bucket name.")
    if not key or key.endswith("/"):
        raise ValidationError("The S3 template must name an object, e.g. s3://my-bucket/jobs/report.py.")
    if ".." in PurePosixPath(key).parts:
        raise ValidationError("The S3 key may not contain '..'.")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if set(query) - {"versionId"} or (parts.query and not query.get("versionId")):
        raise ValidationError("The only option an S3 template takes is ?versionId=<version>.")
    allowed = getattr(settings, "JTB_TEMPLATE_BUCKETS", [])
    if not allowed:
        # Without an allow-list any bucket the runner's role can read would serve code.
        raise ValidationError(
            "S3 templates are off: the administrator must list the buckets templates may come from in "
            "JTB_TEMPLATE_BUCKETS."
        )
    if bucket not in allowed:
        raise ValidationError(f"Bucket {bucket!r} is not one templates may come from ({', '.join(allowed)}).")
    return text


def validate_json_object(value, *, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a JSON object, e.g. {{\"since\": \"2024-01-01\"}}.")
    return validate_input(value, what=what)


def validate_env_name(name) -> str:
    """An environment variable name a job may set: the allow-list pattern, minus refused families."""
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise ValidationError(f"{str(name)[:60]!r} is not a valid environment variable name (letters, digits, _).")
    if _REFUSED_ENV_NAMES.match(name):
        raise ValidationError(
            f"{name!r} cannot be overridden by a job: it belongs to the runner or changes what the "
            "interpreter, the loader, proxies or AWS clients use."
        )
    return name


def validate_model_inputs(instance) -> dict[str, list[str]]:
    """Errors per field for every text and JSON value of a model instance (the input gate)."""
    errors: dict[str, list[str]] = {}
    for field in instance._meta.concrete_fields:
        if field.get_internal_type() not in ("CharField", "TextField", "JSONField"):
            continue
        value = getattr(instance, field.attname)
        if value is None:
            continue
        try:
            validate_input(value, what=str(field.verbose_name).capitalize())
        except ValidationError as exc:
            errors[field.name] = exc.messages
    return errors


def validate_environment(value) -> dict[str, str]:
    validate_json_object(value, what="Environment")
    for name, item in value.items():
        validate_env_name(name)
        if not isinstance(item, str):
            raise ValidationError(f"The value of {name!r} must be text.")
        if "\0" in item or len(item) > 4096:
            raise ValidationError(f"The value of {name!r} must be text of at most 4096 characters.")
    return value


def validate_tags(value) -> dict[str, str]:
    """AWS's tag rules (jobs.aws_limits): characters, lengths, reserved prefixes, 50 tags with ours."""
    validate_json_object(value, what="Tags")
    problems = aws_limits.tag_errors(value)
    if problems:
        raise ValidationError(problems)
    return value


def validate_notify_emails(value) -> list[str]:
    if not isinstance(value, list):
        raise ValidationError("Notification e-mails must be a list, e.g. [\"data-team@example.com\"].")
    if len(value) > 50:
        raise ValidationError("At most 50 notification e-mails are allowed.")
    from django.core.validators import validate_email  # see validate_requirement

    for item in value:
        if not isinstance(item, str):
            raise ValidationError(f"{item!r} is not an e-mail address.")
        try:
            validate_email(item)
        except ValidationError:
            raise ValidationError(f"{item!r} is not a valid e-mail address.") from None
    return value

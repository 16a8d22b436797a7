"""Storing a template file uploaded in the admin: in S3 for AWS Batch, else under the template root.

Uploads are content-addressed (`uploads/<sha256 prefix>/<file name>`), so uploading a changed file
never rewrites the template of jobs that already use the old one.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

from django.conf import settings
from django.core.exceptions import ValidationError

from jobs.validation import validate_template
from runner.template_source import MAX_TEMPLATE_BYTES, local_template_path

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.py$")
UPLOAD_FOLDER = "uploads"


def template_upload_target() -> str:
    """`s3://bucket/prefix/` uploads go to, or "" for the local template root."""
    if settings.JTB_TEMPLATE_UPLOAD_URI:
        return settings.JTB_TEMPLATE_UPLOAD_URI.rstrip("/") + "/"
    if settings.JTB_EXECUTOR == "aws_batch":
        if settings.JTB_TEMPLATE_BUCKETS:
            return f"s3://{settings.JTB_TEMPLATE_BUCKETS[0]}/templates/"
        raise ValidationError(
            "Runs on AWS Batch cannot read this server's template folder: set JTB_TEMPLATE_UPLOAD_URI "
            "(e.g. s3://my-bucket/templates/) to upload templates."
        )
    return ""


def template_store(*, filename: str, content: bytes) -> str:
    """Store an uploaded template; returns what to put in Job.template (an S3 URI or a local path).

    Raises ValidationError with a message for the person uploading.
    """
    name = PurePosixPath(filename.replace("\\", "/")).name
    if not _SAFE_NAME.match(name):
        raise ValidationError(
            f"{name or filename!r}: the file must be a Python file named with letters, digits, '.', '_' or '-', "
            "e.g. nightly_report.py."
        )
    if len(content) > MAX_TEMPLATE_BYTES:
        raise ValidationError(f"The template is larger than {MAX_TEMPLATE_BYTES // (1024 * 1024)} MiB.")
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("The template must be UTF-8 text.") from None
    relative = f"{UPLOAD_FOLDER}/{hashlib.sha256(content).hexdigest()[:16]}/{name}"
    target = template_upload_target()
    if not target:
        path = local_template_path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return validate_template(relative)
    from runner.aws.s3 import S3ObjectError, s3_write_bytes

    if not target.startswith("s3://"):
        raise ValidationError("JTB_TEMPLATE_UPLOAD_URI must look like s3://bucket/prefix/.")
    uri = f"{target}{relative}"
    validate_template(uri)  # the bucket must be one templates may come from
    try:
        version = s3_write_bytes(uri, content)
    except S3ObjectError as exc:
        raise ValidationError(str(exc)) from None
    return validate_template(f"{uri}?versionId={version}" if version else uri)

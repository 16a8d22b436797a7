"""Fetching a job's template: from S3 or from under the local template root."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError

from jobs.validation import validate_template
from jobtarget_batch.conf import settings

MAX_TEMPLATE_BYTES = 5 * 1024 * 1024


class TemplateFetchError(Exception):
    """The template could not be fetched; the message becomes the run's failure reason."""


def template_fetch(uri: str) -> str:
    """The template's source text."""
    try:
        uri = validate_template(uri)
    except ValidationError as exc:
        raise TemplateFetchError(" ".join(exc.messages)) from None
    if uri.startswith("s3://"):
        from runner.aws.s3 import S3ObjectError, s3_read_text

        try:
            return s3_read_text(uri)
        except S3ObjectError as exc:
            raise TemplateFetchError(str(exc)) from None
    return _read_local(uri)


def local_template_path(relative: str) -> Path:
    root = Path(settings.JTB_TEMPLATE_ROOT).resolve()
    path = (root / relative).resolve()
    # Symlinks could still lead outside the root even though '..' is refused.
    if root != path and root not in path.parents:
        raise TemplateFetchError(f"{relative} is outside the template folder.")
    return path


def _read_local(relative: str) -> str:
    path = local_template_path(relative)
    try:
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise TemplateFetchError(f"{relative} is larger than {MAX_TEMPLATE_BYTES // (1024 * 1024)} MiB.")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        # The server's folder stays out of the reason: users see it and it maps the host for them.
        raise TemplateFetchError(f"{relative} does not exist in the template folder.") from None
    except IsADirectoryError:
        raise TemplateFetchError(f"{relative} is a folder, not a Python file.") from None
    except UnicodeDecodeError:
        raise TemplateFetchError(f"{relative} is not UTF-8 text.") from None
    except OSError as exc:
        raise TemplateFetchError(f"{relative} could not be read: {exc.strerror}.") from None

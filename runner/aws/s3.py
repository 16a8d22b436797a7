"""S3: templates are read from (and uploaded to) buckets here."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from runner.aws.client import aws_client, aws_error_code


class S3ObjectError(Exception):
    """An S3 object could not be read; the message is meant for the person who set up the job."""


def parse_s3_uri(uri: str) -> tuple[str, str, str | None]:
    parts = urlsplit(uri)
    version = dict(parse_qsl(parts.query)).get("versionId")
    return parts.netloc, parts.path.lstrip("/"), version


def s3_read_text(uri: str) -> str:
    bucket, key, version = parse_s3_uri(uri)
    kwargs = {"Bucket": bucket, "Key": key}
    if version:
        kwargs["VersionId"] = version
    try:
        body = aws_client("s3").get_object(**kwargs)["Body"].read()
    except ClientError as exc:
        code = aws_error_code(exc)
        if code in ("NoSuchKey", "404", "NoSuchVersion", "InvalidArgument"):
            raise S3ObjectError(f"{uri} does not exist (or that version does not).") from None
        raise _client_error(exc, uri, denied=f"Access to {uri} was denied; check the job role's S3 permissions.",
                            verb="read") from None
    except BotoCoreError as exc:
        raise S3ObjectError(f"{uri} could not be read: {exc}") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise S3ObjectError(f"{uri} is not UTF-8 text.") from None


def s3_write_bytes(uri: str, data: bytes, *, content_type: str = "text/x-python") -> str | None:
    """Store an object; returns the new version id when the bucket is versioned."""
    bucket, key, _ = parse_s3_uri(uri)
    try:
        answer = aws_client("s3").put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
    except ClientError as exc:
        raise _client_error(exc, uri, denied=f"Writing {uri} was denied; check the web app's S3 permissions.",
                            verb="written") from None
    except BotoCoreError as exc:
        raise S3ObjectError(f"{uri} could not be written: {exc}") from None
    version = answer.get("VersionId")
    return version if version and version != "null" else None


def _client_error(exc: ClientError, uri: str, *, denied: str, verb: str) -> S3ObjectError:
    """The message for S3 errors reads and writes share: missing bucket, access denied, other."""
    code = aws_error_code(exc)
    if code == "NoSuchBucket":
        return S3ObjectError(f"The bucket of {uri} does not exist.")
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return S3ObjectError(denied)
    return S3ObjectError(f"{uri} could not be {verb}: {code or exc}")

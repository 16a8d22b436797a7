"""The one place boto3 clients are made, so tests can point them at a moto server."""

from __future__ import annotations

from functools import cache

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings


@cache
def _client(service: str, region: str, endpoint_url: str):
    config = Config(retries={"max_attempts": 5, "mode": "adaptive"}, connect_timeout=10, read_timeout=60)
    return boto3.client(service, region_name=region, endpoint_url=endpoint_url or None, config=config)


def aws_client(service: str):
    """A boto3 client for `service` in the configured region and endpoint (cached per thread-safe key)."""
    return _client(service, settings.AWS_REGION, settings.AWS_ENDPOINT_URL)


def aws_error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call, e.g. "ThrottlingException" ("" when AWS sent none)."""
    return exc.response.get("Error", {}).get("Code", "")


def aws_clients_reset() -> None:
    """Forget cached clients (tests change the endpoint)."""
    _client.cache_clear()

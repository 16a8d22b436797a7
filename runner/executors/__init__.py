"""Executors hand runs to where they execute: this machine (`local`) or AWS Batch (`aws_batch`)."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from runner.executors.base import Executor, LogChunk

EXECUTORS = {
    "local": "runner.executors.local.LocalExecutor",
    "aws_batch": "runner.executors.aws_batch.AwsBatchExecutor",
}

__all__ = ["EXECUTORS", "Executor", "LogChunk", "get_executor"]


def get_executor(name: str | None = None) -> Executor:
    """The executor called `name`, or the one in settings (JTB_EXECUTOR)."""
    return _executor(name or settings.JTB_EXECUTOR)


@cache
def _executor(name: str) -> Executor:
    try:
        path = EXECUTORS[name]
    except KeyError:
        raise ImproperlyConfigured(f"Unknown executor {name!r}; choose one of {sorted(EXECUTORS)}") from None
    return import_string(path)()

"""The executor seam: what every engine that runs processes offers the services, and the registry.

An executor hands queued runs to where they execute (this machine, AWS Batch ...), stops them,
reads their logs and tells whether a run it was given still executes. Implementations live in
driver packages (`runner/executors/<name>/`) and are loaded by dotted path from the setting
JTB_EXECUTORS, so the domain never imports them: adding an engine is one package and one line
in that setting.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from processes.models import Process


class ExecutorName(StrEnum):
    """The engines that ship with the project (JTB_EXECUTORS may name more)."""

    LOCAL = "local"
    AWS_BATCH = "aws_batch"


@dataclass(frozen=True)
class LogChunk:
    text: str
    # Pass back as `offset` to read what comes after.
    next_offset: int


class Executor(ABC):
    name: str

    @abstractmethod
    def submit(self, processes: Sequence[Process]) -> None:
        """Start queued runs (a dispatch message's chunk). Each must execute exactly once, even when
        the same runs are submitted twice (a redelivered message): claim them before starting them."""

    @abstractmethod
    def cancel(self, process: Process) -> None:
        """Stop the run; the runner or the executor records `cancelled`."""

    @abstractmethod
    def read_log(self, process: Process, offset: int = 0, limit: int = 1_000_000) -> LogChunk:
        """The run's log from byte `offset` on."""

    def reconcile(self, process: Process) -> bool:
        """Ask the engine about a run whose heartbeat stopped; True while it still executes.

        An engine that learns how the run ended (AWS Batch: out of memory, Spot reclaim ...) records
        that on the run first, so its reason wins over the reaper's generic one.
        """
        return False


def executor_get(name: str | None = None) -> Executor:
    """The executor called `name`, or the one in settings (JTB_EXECUTOR)."""
    name = name or settings.JTB_EXECUTOR
    try:
        path = settings.JTB_EXECUTORS[name]
    except KeyError:
        raise ImproperlyConfigured(
            f"Unknown executor {name!r}; JTB_EXECUTORS names {sorted(settings.JTB_EXECUTORS)}"
        ) from None
    return _load(path)


@cache
def _load(path: str) -> Executor:
    return import_string(path)()

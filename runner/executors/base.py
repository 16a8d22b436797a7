"""What every executor offers the services."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from processes.models import Process


@dataclass(frozen=True)
class LogChunk:
    text: str
    # Pass back as `offset` to read what comes after.
    next_offset: int


class Executor(ABC):
    name: str

    @abstractmethod
    def submit(self, process: Process) -> None:
        """Start the queued run. Must leave exactly one execution even when called twice."""

    def submit_many(self, processes: Sequence[Process]) -> None:
        """Start several queued runs (a dispatch message's chunk), with `submit`'s guarantees for each.

        Executors that can claim and send a chunk at once (AWS Batch) override this.
        """
        for process in processes:
            self.submit(process)

    @abstractmethod
    def cancel(self, process: Process) -> None:
        """Stop the run; the runner or the executor records `cancelled`."""

    @abstractmethod
    def read_log(self, process: Process, offset: int = 0, limit: int = 1_000_000) -> LogChunk:
        """The run's log from `offset` on."""

    def is_alive(self, process: Process) -> bool:
        """Whether the executor still sees the run executing (asked before reaping it)."""
        return False

"""How a run ended, in plain words: the child's report and exit code turned into a status and reason.

Kept apart from the runner's process handling so the wording users read in the admin lives in
one place.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

FAILED = "failed"
SUCCEEDED = "succeeded"
CANCELLED = "cancelled"


@dataclass
class Outcome:
    status: str = SUCCEEDED
    reason: str = ""
    exit_code: int | None = None


@dataclass
class ChildReport:
    """What the child told us, in the order it happened."""

    error: dict | None = None
    failed_tasks: list[tuple[str, str]] = field(default_factory=list)
    task_names: dict[int, str] = field(default_factory=dict)
    rss_mib: int | None = None


def outcome_of(report: ChildReport, returncode: int, *, memory_mib: int) -> Outcome:
    error = report.error or {}
    kind = error.get("kind")
    limit = memory_mib
    if report.failed_tasks:
        name, message = report.failed_tasks[0]
        if kind == "memory":
            message = f"out of memory (limit {limit} MiB)"
        return Outcome(FAILED, f"Task '{name}' failed: {message}", returncode)
    if kind == "memory":
        return Outcome(FAILED, f"Out of memory (limit {limit} MiB).", returncode)
    if kind == "import":
        return Outcome(FAILED, f"Could not import the template: {error.get('message')}", returncode)
    if kind == "no_main":
        return Outcome(FAILED, "The template has no main(ctx) function.", returncode)
    if kind == "raised":
        return Outcome(FAILED, f"The template raised {error.get('message')}", returncode)
    if kind == "exit":
        return Outcome(FAILED, f"The template exited with code {error.get('code')}.", returncode)
    if returncode < 0:
        name = signal_name(-returncode)
        if name == "SIGKILL":
            return Outcome(FAILED, f"The template was killed by {name} (out of memory?).", returncode)
        return Outcome(FAILED, f"The template was killed by {name}.", returncode)
    if returncode != 0:
        return Outcome(FAILED, f"The template exited with code {returncode}.", returncode)
    return Outcome(SUCCEEDED, "", 0)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def shorten(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "…"

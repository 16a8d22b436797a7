"""Children write their logs to files under the data folder; the terminal gets only their warnings.

Children write straight to their files (not through a pipe to the supervisor), so a child never
blocks or dies on a full or broken pipe, and its log survives the supervisor.
"""

from __future__ import annotations

import re
from pathlib import Path

# Rotated once at start when larger: a long-lived `make run` does not fill the disk.
MAX_LOG_BYTES = 20 * 1024 * 1024
# The level as Celery ("[...: WARNING/MainProcess]"), gunicorn ("[pid] [ERROR]") and our logging
# format ("... WARNING name: ...") write it, near the start of the line.
LEVEL = re.compile(r"^.{0,80}?\b(WARNING|ERROR|CRITICAL)\b")
TRACEBACK = "Traceback (most recent call last):"
MAX_LINE = 400


def log_open(path: Path):
    """The child's log file, opened for appending (rotated to `<name>.1` when too big)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > MAX_LOG_BYTES:
        path.replace(path.with_name(path.name + ".1"))
    return open(path, "ab", buffering=0)


class LogFollower:
    """Reads what a child appended to its log since the last look, and picks out warnings."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self._partial = b""

    def warnings(self) -> list[str]:
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, 2)
                if size < self.offset:  # rotated or truncated
                    self.offset = 0
                handle.seek(self.offset)
                data = handle.read(4 * 1024 * 1024)
        except FileNotFoundError:
            return []
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        picked = []
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip()
            if LEVEL.search(line) or line.startswith(TRACEBACK):
                picked.append(line if len(line) <= MAX_LINE else line[:MAX_LINE] + " …")
        return picked

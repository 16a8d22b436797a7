"""Failures as people want to read them: tracebacks with the author's frames, not the runner's,
and reasons without the wording the console already shows as the failed step.

The runner records `traceback.format_exc()` from inside its child (`jtb_child.py`, a copy of
`runner/child.py`), so every traceback starts with the runner's `task()` or `main` frame. Those
frames say nothing about the author's bug; the page shows the traceback without them.
"""

from __future__ import annotations

import re

# `  File "/work/dir/jtb_child.py", line 66, in task` -> the path.
_FRAME = re.compile(r'^  File "(?P<path>[^"]*)", line \d+')
_RUNNER_FILES = ("jtb_child.py",)
_RUNNER_FOLDERS = ("/runner/",)


def is_runner_frame(path: str) -> bool:
    normalized = path.replace("\\", "/")
    name = normalized.rsplit("/", 1)[-1]
    return name in _RUNNER_FILES or any(folder in normalized for folder in _RUNNER_FOLDERS)


def traceback_without_runner_frames(text: str) -> str:
    """The traceback with the runner's own frames (file line and its indented source lines) removed.

    Everything that is not a frame (the header, chained-exception notes, the exception line) is kept,
    so the text still reads as a Python traceback. Text that is not a traceback comes back unchanged.
    """
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        frame = _FRAME.match(line)
        if frame:
            skipping = is_runner_frame(frame.group("path"))
            if not skipping:
                kept.append(line)
            continue
        # A frame's source line and its ^^^^ markers are indented by four spaces or more.
        if skipping and line.startswith("    "):
            continue
        skipping = False
        kept.append(line)
    return "\n".join(kept) + ("\n" if text.endswith("\n") else "")


# How the runner words a failed step's reason (runner.outcomes): "Task '<name>' failed: <error>".
_TASK_FAILED = re.compile(r"Task '(?P<name>[^']*)' failed: ")


def reason_split(reason: str) -> tuple[str | None, str]:
    """(step name, error) of a reason the runner wrote for a failed step; (None, reason) for any other."""
    found = _TASK_FAILED.match(reason)
    if found is None:
        return None, reason
    return found["name"], reason[found.end():]

"""Process groups of the supervisor's children: each child leads its own session, so stopping it
stops everything it started (gunicorn workers, Celery pool processes) and nothing else.

Runners the local worker starts lead sessions of their own on purpose: they outlive a worker restart
and record their own result.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

# psutil derives start times from the boot time in whole seconds: a process can look up to a
# second older than it is.
CLOCK_SLACK = 2.0


def group_members(pgid: int, started_after: float = 0.0) -> list[psutil.Process]:
    """Live processes in group `pgid` created at or after `started_after` (a reused id is not ours)."""
    members = []
    for process in psutil.process_iter(["pid", "create_time", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(process.pid) == pgid and process.info["create_time"] >= started_after - CLOCK_SLACK:
                members.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return members



def group_kill(pgid: int, started_after: float = 0.0, timeout: float = 5.0) -> int:
    """SIGKILL every member of the group and wait until they are gone; returns how many there were."""
    members = group_members(pgid, started_after)
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL)
    psutil.wait_procs(members, timeout=timeout)
    return len(members)


def group_wait_empty(pgid: int, started_after: float, deadline: float) -> bool:
    """Poll until the group has no live member or the monotonic deadline passes."""
    while time.monotonic() < deadline:
        if not group_members(pgid, started_after):
            return True
        time.sleep(0.2)
    return not group_members(pgid, started_after)

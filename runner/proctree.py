"""Stopping a whole tree of OS processes: the runner, its child interpreter and anything they spawned."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


# Linux with CONFIG_PROC_CHILDREN lists each thread's children: a tree can be walked without
# reading every process on the host.
CHEAP_TREE_WALK = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def tree_rss(pid: int) -> int:
    """Resident memory of `pid` and its descendants, in bytes (what a container's limit counts).

    Walks /proc/<pid>/task/*/children where the kernel has them; psutil's children() reads every
    process on the host, which hundreds of runners checking often would pay for in CPU.
    """
    if not CHEAP_TREE_WALK:
        return _tree_rss_psutil(pid)
    page = os.sysconf("SC_PAGE_SIZE")
    total, pending, seen = 0, [pid], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * page
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    pending.extend(int(child) for child in handle.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # it exited while we looked
    return total


def _tree_rss_psutil(pid: int) -> int:
    total = 0
    for member in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += member.memory_info().rss
    return total


def _send(members: list[psutil.Process], sig: int) -> None:
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(sig)


def signal_descendants(pid: int, sig: int = signal.SIGTERM) -> None:
    _send(descendants(pid), sig)


def kill_descendants(pid: int) -> None:
    """SIGKILL everything `pid` started (the runner stopping its template or uv)."""
    members = descendants(pid)
    _send(members, signal.SIGKILL)
    for member in members:
        _kill_group(member.pid)
    psutil.wait_procs(members, timeout=5)


def kill_tree(pid: int, *, grace_seconds: float = 0) -> None:
    """SIGTERM the tree, give it `grace_seconds` to exit, then SIGKILL what is left.

    The template's child runs in its own session, so its process group is killed too: that also
    reaches grandchildren that were orphaned (their parent exited) and so left the tree.
    """
    members = tree(pid)
    if grace_seconds > 0:
        _send(members, signal.SIGTERM)
        _, members = psutil.wait_procs(members, timeout=grace_seconds)
    _send(members, signal.SIGKILL)
    _kill_group(pid)
    psutil.wait_procs(members, timeout=5)


def _kill_group(pid: int) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass

"""Stopping a whole tree of OS processes: the runner, its child interpreter and anything they spawned."""

from __future__ import annotations

import signal

import psutil


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def signal_tree(pid: int, sig: int = signal.SIGTERM) -> None:
    for member in tree(pid):
        try:
            member.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def kill_tree(pid: int, *, grace_seconds: float = 0) -> None:
    """SIGTERM the tree, give it `grace_seconds` to exit, then SIGKILL what is left."""
    members = tree(pid)
    if grace_seconds > 0:
        for member in members:
            try:
                member.terminate()
            except psutil.NoSuchProcess:
                pass
        _, members = psutil.wait_procs(members, timeout=grace_seconds)
    for member in members:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(members, timeout=5)

"""The local executor's slots on this host: one lock file per runner that may run at once.

A watcher takes a slot (an exclusive `flock` on a file in JTB_LOCAL_SLOTS_DIR, by default DATA_DIR/local-slots/) before it starts
a runner and hands the locked descriptor to the runner. A flock belongs to the open file, not to
a process: it is held while any process keeps that descriptor open, and the kernel releases it
when the last one exits, however it exits. So a runner left alive after its worker was killed
with SIGKILL still holds its slot, and a restarted worker cannot start more runners than
JTB_LOCAL_SLOTS beside it; when the leftover runner ends, its slot is free again with nothing to
clean up. The files stay (empty); only their locks matter.

Every take goes through a short gate lock, so two watchers (threads or processes) counting the
held slots at the same time cannot both take the last one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


def slots_dir() -> Path:
    return Path(settings.JTB_LOCAL_SLOTS_DIR)


@dataclass
class Slot:
    index: int
    fd: int

    def release(self) -> None:
        # Our copy only: a runner still alive keeps the slot through its own copy of the descriptor.
        with contextlib.suppress(OSError):
            os.close(self.fd)


@contextlib.contextmanager
def _gate(folder: Path) -> Iterator[None]:
    fd = os.open(folder / "gate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def slot_take(slots: int | None = None) -> Slot | None:
    """Take a free slot, or None when `slots` runners (of this worker or left over from an earlier
    one) hold theirs already. The caller releases the slot once its runner has exited."""
    limit = slots if slots is not None else settings.JTB_LOCAL_SLOTS
    folder = slots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with _gate(folder):
        # Files beyond the limit count too: a runner left over from a worker with more slots.
        existing = {int(p.stem.removeprefix("slot-")) for p in folder.glob("slot-*.lock")
                    if p.stem.removeprefix("slot-").isdigit()}
        held = 0
        free: Slot | None = None
        for index in sorted(existing | set(range(limit))):
            fd = _try_lock(folder / f"slot-{index}.lock")
            if fd is None:
                held += 1
            elif free is None and index < limit:
                free = Slot(index, fd)
            else:
                os.close(fd)
        if free is not None and held >= limit:
            free.release()
            return None
        return free


def slots_held() -> int:
    """How many slots runners hold on this host now (for logs and tests)."""
    folder = slots_dir()
    if not folder.exists():
        return 0
    held = 0
    with _gate(folder):
        for path in folder.glob("slot-*.lock"):
            fd = _try_lock(path)
            if fd is None:
                held += 1
            else:
                os.close(fd)
    return held

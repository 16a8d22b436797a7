"""What one `run_all` owns in the data folder: a lock (one supervisor per data folder) and the list of
process groups it started, so the next start can stop what a killed supervisor left behind."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from runner.supervisor.groups import group_kill


class AlreadyRunning(Exception):
    pass


class SupervisorState:
    def __init__(self, data_dir: Path):
        self.lock_path = data_dir / "run_all.lock"
        self.groups_path = data_dir / "run_all.groups.json"
        self._lock_file = None

    def lock(self) -> None:
        """Hold the data folder's lock until this process exits (the kernel releases it even on kill -9)."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise AlreadyRunning(
                f"run_all is already running for {self.lock_path.parent} (pid {owner}); stop it first."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def unlock(self) -> None:
        self.groups_path.unlink(missing_ok=True)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def groups_record(self, groups: dict[str, tuple[int, float]]) -> None:
        """Record {child name: (process group id, start time)}, replaced atomically."""
        temp = self.groups_path.with_suffix(".tmp")
        temp.write_text(json.dumps({name: list(value) for name, value in groups.items()}))
        os.replace(temp, self.groups_path)

    def leftovers_stop(self) -> dict[str, int]:
        """Kill the groups a previous supervisor recorded and did not stop (it was killed); {name: count}."""
        try:
            recorded = json.loads(self.groups_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        stopped = {}
        for name, (pgid, started) in recorded.items():
            count = group_kill(int(pgid), started_after=float(started))
            if count:
                stopped[name] = count
        self.groups_path.unlink(missing_ok=True)
        return stopped

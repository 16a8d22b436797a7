"""The template's interpreter: started with its limits and a minimal environment, then followed.

No Django here: the local fast path starts the child before Django is loaded. The child
(runner/child.py, copied into the work folder) reports JSON lines on a pipe; `follow` hands them
to the recorder in groups and stops the child's whole tree at the deadline or when its resident
memory goes over the limit (RLIMIT_AS cannot see a tree of processes).
"""

from __future__ import annotations

import ctypes
import os
import resource
import select
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from runner.isolation import (
    TemplateUser,
    capabilities_last,
    drop_privileges,
    template_environment,
    template_sandbox,
    template_user,
    workdir_hand_over,
)
from runner.runtime.spec import CHILD_FILE, PARAMS_FILE, TEMPLATE_FILE, RunSpec
from runner.sandbox import Sandbox

# How often the tree's resident memory is compared with the limit (less often where that means
# scanning every process on the host, see proctree.tree_rss).
RSS_CHECK_SECONDS = 1.0
RSS_CHECK_SLOW_SECONDS = 5.0
PR_SET_PDEATHSIG = 1
# Python itself needs some address space: the limit never goes below this.
MIN_ADDRESS_SPACE = 64 * 1024 * 1024

TIMEOUT = "timeout"
MEMORY = "memory"


class ChildProcess:
    def __init__(self, spec: RunSpec, python: Path, workdir: Path) -> None:
        read_fd, write_fd = os.pipe()
        user = template_user()
        workdir_hand_over(workdir, user)
        env = {
            **template_environment(spec.environment),
            "HOME": str(workdir),
            # Its temporary files stay in its work folder (removed after the run, writable in the
            # sandbox even where /tmp holds a control-plane folder).
            "TMPDIR": str(workdir),
            "JTB_PROCESS_ID": str(spec.process_id),
            "JTB_JOB_NAME": spec.job,
            "JTB_PARAMS_FILE": str(workdir / PARAMS_FILE),
            "JTB_EVENTS_FD": str(write_fd),
            "PYTHONUNBUFFERED": "1",
        }
        sandbox = template_sandbox(python, workdir)
        self.started = time.monotonic()
        try:
            self.popen = subprocess.Popen(
                [str(python), "-I", str(workdir / CHILD_FILE), str(workdir / TEMPLATE_FILE)],
                cwd=workdir, env=env, pass_fds=[write_fd], stdin=subprocess.DEVNULL,
                # Same process group as the runner: if the runner is SIGKILLed, whoever started it
                # can still stop the template with one killpg (runner/executors/local/watch.py).
                preexec_fn=_limits(spec.memory_mib * 1024 * 1024, user, sandbox),
            )
        finally:
            if sandbox is not None:
                sandbox.close()
        os.close(write_fd)
        self.events_fd = read_fd
        # Events read before the recorder was ready (the fast path reads up to main(ctx) first).
        self.pending = b""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait_for_main(self, limit: float) -> None:
        """Read the child's first events until it reports main(ctx), it exits, or `limit` passes."""
        deadline = time.monotonic() + limit
        while b'"event": "main"' not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            ready, _, _ = select.select([self.events_fd], [], [], remaining)
            if not ready:
                return
            chunk = os.read(self.events_fd, 65536)
            if not chunk:
                return
            self.pending += chunk

    def follow(
        self, *, deadline: float, memory_mib: int, on_lines: Callable[[list[bytes]], None],
        memory_checks: Callable[[], bool],
    ) -> tuple[str | None, int | None]:
        """Hand the child's event lines to `on_lines` until it closes the pipe (None), the deadline
        passes (TIMEOUT) or the tree's memory goes over the limit (MEMORY, with the MiB seen)."""
        selector = selectors.DefaultSelector()
        stream = os.fdopen(self.events_fd, "rb")
        selector.register(stream, selectors.EVENT_READ)
        buffer, self.pending = self.pending, b""
        if b"\n" in buffer:
            *lines, buffer = buffer.split(b"\n")
            on_lines(lines)
        from runner import proctree  # psutil: after the child started, not before

        next_rss_check = 0.0
        try:
            while True:
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    self._drain(buffer, on_lines)
                    return TIMEOUT, None
                if now >= next_rss_check and memory_checks():
                    next_rss_check = now + (RSS_CHECK_SECONDS if proctree.CHEAP_TREE_WALK else RSS_CHECK_SLOW_SECONDS)
                    rss = proctree.tree_rss(self.popen.pid)
                    if rss > memory_mib * 1024 * 1024:
                        self._drain(buffer, on_lines)
                        return MEMORY, rss // (1024 * 1024)
                if not selector.select(timeout=min(remaining, RSS_CHECK_SECONDS)):
                    continue
                chunk = os.read(self.events_fd, 65536)
                if not chunk:
                    return None, None
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                on_lines(lines)
        finally:
            selector.close()
            stream.close()

    def _drain(self, buffer: bytes, on_lines: Callable[[list[bytes]], None]) -> None:
        """Record the events already written before the child is stopped: a run that loaded Django
        after the template started may reach its deadline with steps still unread in the pipe."""
        while select.select([self.events_fd], [], [], 0)[0]:
            chunk = os.read(self.events_fd, 65536)
            if not chunk:
                break
            buffer += chunk
        lines = buffer.split(b"\n")[:-1]
        if lines:
            on_lines(lines)

    def kill(self, grace_seconds: float) -> None:
        from runner import proctree

        proctree.kill_tree(self.popen.pid, grace_seconds=grace_seconds)

    def wait(self) -> int:
        return self.popen.wait()


def _limits(limit_bytes: int, user: TemplateUser | None, sandbox: Sandbox | None):
    """The function the child runs between fork and exec (prepared here: no imports after fork)."""
    # Address-space limit: allocations past it raise MemoryError in the template, which the
    # child reports as "out of memory".
    limit = max(limit_bytes, MIN_ADDRESS_SPACE)
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
    last_capability = capabilities_last()

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        # The template dies with the runner: a SIGKILLed runner must not leave it running unwatched.
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        drop_privileges(user, last_capability, prctl)
        if sandbox is not None:
            sandbox.enter()

    return apply

"""The supervisor with plain child processes (no Django system): restart with backoff, whole-group
stop within a bounded time, the data-folder lock and a killed supervisor's leftovers."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import psutil
import pytest

from runner.supervisor import supervisor as supervision
from runner.supervisor.ports import port_is_free
from runner.supervisor.state import AlreadyRunning, SupervisorState
from runner.supervisor.supervisor import ChildSpec, Supervisor
from tests.support import wait_for

# A child that starts a grandchild, writes both pids, and (optionally) ignores SIGTERM.
FAMILY = """
import os, signal, subprocess, sys, time
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
with open(sys.argv[1], "a") as handle:
    handle.write(f"{os.getpid()} {grandchild.pid}\\n")
print("WARNING something a user should see", flush=True)
print("INFO something only the log needs", flush=True)
time.sleep(600)
"""


def family_spec(tmp_path, name: str = "family", stubborn: bool = False) -> ChildSpec:
    script = tmp_path / "family.py"
    script.write_text(FAMILY)
    return ChildSpec(name, [sys.executable, str(script), str(tmp_path / f"{name}.pids"),
                            "stubborn" if stubborn else "plain"], tmp_path / "logs" / f"{name}.log")


def pids(tmp_path, name: str = "family") -> list[list[int]]:
    path = tmp_path / f"{name}.pids"
    if not path.exists():
        return []
    return [[int(pid) for pid in line.split()] for line in path.read_text().splitlines() if line.strip()]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def make(tmp_path, specs, port: int = 1) -> tuple[Supervisor, list[str], list[str]]:
    said, warned = [], []
    supervisor = Supervisor(specs=specs, data_dir=tmp_path / "data", bind="127.0.0.1", port=port, cwd=tmp_path,
                            say=said.append, warn=warned.append)
    return supervisor, said, warned


@pytest.fixture
def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_in_thread(supervisor: Supervisor) -> threading.Thread:
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    return thread


def test_a_child_that_dies_is_restarted_after_a_backoff_while_the_others_keep_running(tmp_path, free_port):
    supervisor, _, warned = make(tmp_path, [family_spec(tmp_path, "a"), family_spec(tmp_path, "b")], free_port)
    supervisor.prepare()
    supervisor.start_all()
    thread = run_in_thread(supervisor)
    try:
        wait_for(lambda: len(pids(tmp_path, "a")) == 1 and len(pids(tmp_path, "b")) == 1)
        (a_pid, a_grandchild), (b_pid, _) = pids(tmp_path, "a")[0], pids(tmp_path, "b")[0]
        os.kill(a_pid, signal.SIGKILL)
        wait_for(lambda: len(pids(tmp_path, "a")) == 2, timeout=30)
        assert not alive(a_grandchild), "what the dead child started is stopped with it"
        assert alive(b_pid), "the other child keeps running"
        assert any("a was killed by SIGKILL" in line and "restarting in 1 s" in line for line in warned), warned
        assert "a restarted (restart 1)." in warned
        # A child that dies again soon waits longer before its next start.
        os.kill(pids(tmp_path, "a")[1][0], signal.SIGKILL)
        wait_for(lambda: any("restarting in 2 s" in line for line in warned), timeout=30)
    finally:
        supervisor.request_stop()
        thread.join(timeout=60)


def test_stop_ends_every_process_of_every_group_within_a_bounded_time_even_when_sigterm_is_ignored(
    tmp_path, free_port, monkeypatch
):
    monkeypatch.setattr(supervision, "STOP_GRACE_SECONDS", 2)
    supervisor, _, _ = make(tmp_path, [family_spec(tmp_path, stubborn=True)], free_port)
    supervisor.prepare()
    supervisor.start_all()
    thread = run_in_thread(supervisor)
    wait_for(lambda: pids(tmp_path))
    child, grandchild = pids(tmp_path)[0]
    started = time.monotonic()
    supervisor.request_stop()
    thread.join(timeout=60)
    assert time.monotonic() - started < 2 + 10
    assert not alive(child) and not alive(grandchild)
    assert not (tmp_path / "data" / "run_all.groups.json").exists()


def test_only_warnings_of_a_child_reach_the_terminal(tmp_path, free_port):
    supervisor, _, warned = make(tmp_path, [family_spec(tmp_path)], free_port)
    supervisor.prepare()
    supervisor.start_all()
    thread = run_in_thread(supervisor)
    try:
        wait_for(lambda: any("something a user should see" in line for line in warned), timeout=30)
        assert not any("only the log needs" in line for line in warned)
        assert "only the log needs" in (tmp_path / "logs" / "family.log").read_text()
    finally:
        supervisor.request_stop()
        thread.join(timeout=60)


def test_a_run_that_ends_just_before_ctrl_c_is_still_told(tmp_path, free_port):
    """Outcomes are read every few seconds; the last look happens after the stop, so a run that
    ended in between (or as everything stopped) still gets its line."""

    class Feed:
        def __init__(self):
            self.finished: list[str] = []

        def lines(self) -> list[str]:
            told, self.finished = self.finished, []
            return told

    feed = Feed()
    said = []
    supervisor = Supervisor(specs=[family_spec(tmp_path)], data_dir=tmp_path / "data", bind="127.0.0.1",
                            port=free_port, cwd=tmp_path, say=said.append, warn=lambda line: None, outcomes=feed)
    supervisor.prepare()
    supervisor.start_all()
    thread = run_in_thread(supervisor)
    wait_for(lambda: pids(tmp_path))
    feed.finished.append("Run 7 (Nightly sales export) succeeded in 1.2 s")
    supervisor.request_stop()
    thread.join(timeout=60)
    assert "Run 7 (Nightly sales export) succeeded in 1.2 s" in said


def test_one_supervisor_per_data_folder(tmp_path):
    first = SupervisorState(tmp_path)
    first.lock()
    with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
        SupervisorState(tmp_path).lock()
    first.unlock()
    SupervisorState(tmp_path).lock()


def test_groups_left_by_a_killed_supervisor_are_stopped_by_the_next_start(tmp_path, free_port):
    supervisor, _, _ = make(tmp_path, [family_spec(tmp_path)], free_port)
    supervisor.prepare()
    supervisor.start_all()
    wait_for(lambda: pids(tmp_path))
    child, grandchild = pids(tmp_path)[0]
    supervisor.state._lock_file.close()  # what the kernel does when the supervisor is killed
    after, _, warned = make(tmp_path, [family_spec(tmp_path)], free_port)
    after.prepare()
    assert not alive(child) and not alive(grandchild)
    assert any("Stopped 2 process(es) of family left over" in line for line in warned), warned
    after.state.unlock()


def test_a_held_port_is_reported_with_its_holder(tmp_path, free_port, monkeypatch):
    import socket

    monkeypatch.setattr(supervision, "PORT_WAIT_SECONDS", 0.5)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_port))
        holder.listen()
        assert not port_is_free("127.0.0.1", free_port)
        supervisor, _, _ = make(tmp_path, [], free_port)
        with pytest.raises(RuntimeError, match=f"Port {free_port} on 127.0.0.1 is in use by {os.getpid()}"):
            supervisor.prepare()
    assert port_is_free("127.0.0.1", free_port)

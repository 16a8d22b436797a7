"""Faults injected into what `make run` starts, with real processes: kill -9 of each child of
`run_all` while runs are active, repeated Ctrl-C/start cycles, a killed supervisor, a held port."""

from __future__ import annotations

import os
import signal
import socket
import time

import psutil
import pytest

from tests.embedded import FINISHED, EmbeddedSystem, database_copy

# The embedded default is SQLite whatever the suite runs on: only the SQLite half runs these.
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only, pytest.mark.timeout(1200)]

# Runners report often and a lost one is noticed soon, so a run whose runner died ends in minutes.
FAST_HEARTBEAT = {"JTB_HEARTBEAT_SECONDS": "2", "JTB_HEARTBEAT_TIMEOUT_SECONDS": "20", "JTB_LOCAL_SLOTS": "3"}


@pytest.fixture
def system(embedded_database, tmp_path):
    data_dir = tmp_path / "var"
    database_copy(embedded_database, data_dir)
    embedded = EmbeddedSystem(data_dir, **FAST_HEARTBEAT)
    yield embedded
    if embedded.process is not None and embedded.process.poll() is None:
        embedded.stop(timeout=60)
    embedded.kill_leftovers()


def wait_running(system: EmbeddedSystem, ids: list[int], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(status == "running" for status, _ in system.statuses(ids).values()):
            return
        time.sleep(0.5)
    raise AssertionError(f"none of {ids} started running: {system.statuses(ids)}")


def assert_all_ended_with_reasons(outcomes: dict[int, tuple[str, str]], ids: list[int]) -> None:
    unfinished = {pk: outcomes.get(pk) for pk in ids if outcomes.get(pk, ("",))[0] not in FINISHED}
    assert not unfinished, f"runs not terminal: {unfinished}"
    silent = {pk: outcomes[pk] for pk in ids if outcomes[pk][0] != "succeeded" and not outcomes[pk][1].strip()}
    assert not silent, f"runs that did not succeed and give no reason: {silent}"


def test_kill_9_of_each_child_the_system_answers_within_30_s_and_every_run_ends(system):
    system.start()
    system.wait_answering()
    system.login()
    job = system.job_create("Sleeps in four steps", "examples/slow_report.py", timeout_seconds=300)
    ids: list[int] = []
    answer_times = {}
    for name in ("local-worker", "web", "control-worker", "beat"):
        ids += system.runs_start(job, 2, seconds=6)
        wait_running(system, ids)
        victim = system.children()[name]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        # A new child takes the old one's place; meanwhile the web server answers (or, for the web
        # child itself, answers again) within 30 s.
        deadline = killed_at + 60
        while system.children().get(name) in (victim, None) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert system.children().get(name) not in (victim, None), f"{name} was not restarted:\n{system.output()}"
        system.wait_answering(timeout=max(30 - (time.monotonic() - killed_at), 1))
        answer_times[name] = round(time.monotonic() - killed_at, 1)
        assert answer_times[name] <= 30, f"{name}: the system answered only after {answer_times[name]} s"
    # The restarted workers still take work.
    ids += system.runs_start(job, 2, seconds=1)
    outcomes = system.wait_all_finished(ids, timeout=400)
    assert_all_ended_with_reasons(outcomes, ids)
    assert max(system.runner_starts().values()) == 1, "a run was started by two runners"
    output = system.output()
    for name in ("local-worker", "web", "control-worker", "beat"):
        assert f"{name} was killed by SIGKILL" in output and f"{name} restarted" in output
    print("seconds until answering after each kill:", answer_times)


def test_ten_ctrl_c_and_start_cycles_with_active_runs_leave_no_port_held_no_run_stuck_no_double(system):
    system.start()
    system.wait_answering()
    system.login()
    job = system.job_create("Sleeps in four steps", "examples/slow_report.py", timeout_seconds=300)
    ids: list[int] = []
    for cycle in range(10):
        if cycle:
            system.start()
            system.wait_answering(timeout=120)
            system.login()
        ids += system.runs_start(job, 2, seconds=4)
        wait_running(system, ids)
        stopped_at = time.monotonic()
        assert system.stop(signal.SIGINT, timeout=60) == 0, system.output()[-3000:]
        assert time.monotonic() - stopped_at < 30, "Ctrl-C took longer than the bounded stop"
        # Nothing of the supervisor's own is left: no child, no gunicorn worker holding the port.
        survivors = [p for p in system.processes_of_this_folder() if "runner.runtime" not in " ".join(p.cmdline())]
        assert survivors == [], [p.cmdline() for p in survivors]
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", system.port))  # raises when a leftover holds the port
    # Runs that were running when Ctrl-C came go on in their own runners and record their end.
    system.start()
    system.wait_answering(timeout=120)
    outcomes = system.wait_all_finished(ids, timeout=400)
    assert_all_ended_with_reasons(outcomes, ids)
    assert max(system.runner_starts().values()) == 1, "a run was started by two runners"
    assert len(system.statuses()) == len(ids), "runs were created twice"


def test_a_start_after_a_killed_supervisor_stops_its_leftovers_and_gets_the_port(system):
    system.start()
    system.wait_answering()
    children = system.children()
    system.process.send_signal(signal.SIGKILL)  # the supervisor dies; its children do not
    system.process.wait(timeout=30)
    assert all(psutil.pid_exists(pid) for pid in children.values())
    system.start()
    deadline = time.monotonic() + 120
    while system.output().count("JobTarget Batch is running") < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    system.wait_answering(timeout=30)
    assert "left over from a run_all that did not stop cleanly" in system.output()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in children.values())
    assert system.stop(timeout=60) == 0


def test_a_second_run_all_on_the_same_data_folder_is_refused_and_the_first_keeps_running(system):
    system.start()
    system.wait_answering()
    second = EmbeddedSystem(system.data_dir, port=system.port, **FAST_HEARTBEAT)
    second.output_path = system.data_dir / "second.out"
    second.start()
    assert second.process.wait(timeout=120) != 0
    assert "run_all is already running" in second.output()
    system.wait_answering(timeout=10)


def test_a_port_held_by_another_program_is_named_in_a_clear_error(system):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", system.port))
        holder.listen()
        system.start()
        assert system.process.wait(timeout=180) != 0
    assert f"Port {system.port} on 127.0.0.1 is in use by {os.getpid()}" in system.output()

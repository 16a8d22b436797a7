"""The local worker killed with real processes, on the embedded default (`manage.py run_all`):

- runners it leaves alive still count against JTB_LOCAL_SLOTS after it is restarted, can be
  cancelled, and end recorded and finalized; new runs run once they are gone;
- a watcher killed between its claim and the start of the runner does not leave the run `running`
  until the reaper: the run is started again within seconds.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.embedded import FINISHED, EmbeddedSystem, database_copy

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only, pytest.mark.timeout(900)]


@pytest.fixture
def make_system(embedded_database, tmp_path):
    systems = []

    def make(**env: str) -> EmbeddedSystem:
        data_dir = tmp_path / "var"
        database_copy(embedded_database, data_dir)
        system = EmbeddedSystem(data_dir, **env)
        systems.append(system)
        system.start()
        system.wait_answering()
        system.login()
        return system

    yield make
    for system in systems:
        if system.process is not None and system.process.poll() is None:
            system.stop(timeout=60)
        system.kill_leftovers()


def runner_pids(system: EmbeddedSystem, ids: list[int]) -> dict[int, str]:
    marks = ",".join("?" * len(ids))
    return dict(system.query(f"SELECT id, external_id FROM processes_process WHERE id IN ({marks})", tuple(ids)))


def wait_until(predicate, timeout: float, what: str, system: EmbeddedSystem):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s; runs: {system.statuses()}\n{system.output()[-3000:]}")


def worker_restarted(system: EmbeddedSystem, victim: int) -> None:
    wait_until(lambda: system.children().get("local-worker") not in (victim, None), 60,
               "the local worker was not restarted", system)


class RunnerSampler(threading.Thread):
    """Counts the live runners of the system every 0.1 s, from the process table."""

    def __init__(self, system: EmbeddedSystem):
        super().__init__(daemon=True)
        self.system = system
        self.most = 0
        self.samples = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.most = max(self.most, len(self.system.live_runners()))
            self.samples += 1
            self.stopped.wait(0.1)


def test_runners_left_by_a_killed_worker_count_against_the_slots_can_be_cancelled_and_are_finalized(make_system):
    system = make_system(JTB_LOCAL_SLOTS="2", JTB_HEARTBEAT_SECONDS="2", JTB_CANCEL_CHECK_SECONDS="1",
                         JTB_FINALIZE_SECONDS="2")
    job = system.job_create("Sleeps in four steps", "examples/slow_report.py", timeout_seconds=300)
    leftovers = system.runs_start(job, 2, seconds=60)
    wait_until(lambda: all(v.startswith("pid:") for v in runner_pids(system, leftovers).values()), 120,
               "the two long runs did not start their runners", system)
    sampler = RunnerSampler(system)
    sampler.start()
    victim = system.children()["local-worker"]
    os.kill(victim, signal.SIGKILL)
    worker_restarted(system, victim)
    assert len(system.live_runners()) == 2, "the runners should outlive their worker"
    fresh = system.runs_start(job, 3, seconds=1)
    # The restarted worker takes the new runs' messages but starts no runner beside the two left over.
    wait_until(lambda: "waits for a free slot" in (system.data_dir / "logs" / "local-worker.log").read_text(),
               60, "the new runs did not wait for a slot", system)
    assert all(status == "queued" for status, _ in system.statuses(fresh).values()), system.statuses(fresh)
    status, _ = system.api("POST", f"processes/{leftovers[0]}/cancel/")
    assert status == 202
    outcomes = system.wait_all_finished(leftovers + fresh, timeout=300)
    sampler.stopped.set()
    sampler.join(timeout=10)
    assert outcomes[leftovers[0]][0] == "cancelled", outcomes
    assert outcomes[leftovers[1]][0] == "succeeded", outcomes
    assert all(outcomes[pk][0] == "succeeded" for pk in fresh), outcomes
    assert sampler.samples > 50 and sampler.most <= 2, f"{sampler.most} runners alive at once with 2 slots"
    # The new runs started only once a leftover runner had ended, and every run was finalized once.
    rows = system.query("SELECT id, started_at, finished_at, finalized_at FROM processes_process")
    times = {pk: (started, finished, finalized) for pk, started, finished, finalized in rows}
    first_leftover_end = min(times[pk][1] for pk in leftovers)
    assert all(times[pk][0] >= first_leftover_end for pk in fresh), times
    wait_until(lambda: all(finalized for pk, _, _, finalized in system.query(
        "SELECT id, started_at, finished_at, finalized_at FROM processes_process")), 60,
        "leftover runs were not finalized", system)
    assert max(system.runner_starts().values()) == 1


@pytest.mark.parametrize("victim", ["watcher", "whole local worker"])
def test_a_run_whose_watcher_died_before_starting_the_runner_runs_again_within_seconds(make_system, victim,
                                                                                     tmp_path):
    pause = tmp_path / "pause-watchers"
    # The reaper keeps its default: it fails a run 120 s after its last heartbeat.
    system = make_system(JTB_LOCAL_SLOTS="2", JTB_TEST_WATCHER_PAUSE_FILE=str(pause))
    job = system.job_create("Sleeps in four steps", "examples/slow_report.py", timeout_seconds=300)
    pause.touch()
    [run] = system.runs_start(job, 1, seconds=1)
    wait_until(lambda: system.statuses([run])[run][0] == "running", 60, "the run was not claimed", system)
    watcher = int(system.query("SELECT json_extract(executor_details, '$.watcher.pid') FROM processes_process "
                               "WHERE id = ?", (run,))[0][0])
    assert runner_pids(system, [run])[run] == "", "the hook should hold the watcher before the runner starts"
    if victim == "watcher":
        os.kill(watcher, signal.SIGKILL)
    else:
        worker = system.children()["local-worker"]
        os.killpg(worker, signal.SIGKILL)
    killed_at = time.monotonic()
    pause.unlink()
    outcome = system.wait_all_finished([run], timeout=90)[run]
    took = time.monotonic() - killed_at
    assert outcome[0] == "succeeded", outcome
    assert took < 45, f"the run ended {took:.0f} s after its watcher was killed (the reaper waits 120 s)"
    details = system.query("SELECT json_extract(executor_details, '$.watchers_lost') FROM processes_process "
                           "WHERE id = ?", (run,))[0][0]
    assert details == 1
    assert system.runner_starts() == {run: 1}
    assert all(status in FINISHED for status, _ in system.statuses().values())

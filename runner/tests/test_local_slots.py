"""The local executor's slots (a flock per runner, kept by the runner after its watcher dies) and
the recovery of a run whose watcher died between its claim and the runner's start."""

import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from processes.models import Process, ProcessStatus, Trigger
from processes.services import process_cancel, process_mark_running, process_mark_submitted, process_start
from runner.executors.local import orphans
from runner.executors.local.slots import slot_take, slots_held
from runner.executors.local.watch import local_run
from tests.support import make_job, wait_for


@pytest.fixture
def slot_dir(tmp_path, settings):
    settings.JTB_LOCAL_SLOTS_DIR = tmp_path / "slots"
    return settings.JTB_LOCAL_SLOTS_DIR


def holder(fd: int) -> subprocess.Popen:
    """A process that inherits a slot's descriptor, like a runner, and lives until its stdin closes."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                            pass_fds=[fd])


def test_no_more_slots_than_the_limit_and_a_released_one_is_free_again(slot_dir):
    first, second = slot_take(2), slot_take(2)
    assert first is not None and second is not None and first.index != second.index
    assert slot_take(2) is None
    assert slots_held() == 2
    first.release()
    third = slot_take(2)
    assert third is not None and third.index == first.index
    second.release()
    third.release()
    assert slots_held() == 0


def test_a_child_that_inherited_the_slot_holds_it_after_its_parent_let_go_until_it_exits(slot_dir):
    slot = slot_take(1)
    child = holder(slot.fd)
    slot.release()  # the watcher is gone; its runner is not
    try:
        assert slot_take(1) is None
        assert slots_held() == 1
    finally:
        child.communicate(b"", timeout=30)
    again = slot_take(1)
    assert again is not None
    again.release()


def test_slots_held_beyond_a_lower_limit_still_count(slot_dir):
    # Runners left over from a worker with 3 slots, restarted with 2: no new runner until one ends.
    taken = [slot_take(3) for _ in range(3)]
    try:
        assert slot_take(2) is None
        taken.pop().release()
        assert slot_take(2) is None
        taken.pop().release()
        last = slot_take(2)
        assert last is not None
        last.release()
    finally:
        for slot in taken:
            slot.release()


def test_threads_racing_for_the_last_slot_get_it_once(slot_dir):
    got = []
    barrier = threading.Barrier(8)

    def take():
        barrier.wait()
        got.append(slot_take(3))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [slot for slot in got if slot is not None]
    assert len(winners) == 3
    for slot in winners:
        slot.release()


@pytest.mark.django_db(transaction=True)
class TestWatcherWaitsForASlot:
    @pytest.fixture
    def local(self, local_templates, settings, slot_dir):
        settings.JTB_LOCAL_SLOTS = 1
        return local_templates

    def test_a_run_waits_while_a_leftover_runner_holds_the_slot_then_runs(self, local):
        job = make_job(root=local, source="def main(ctx):\n    print('ran')\n")
        process = process_start(job=job, trigger=Trigger.MANUAL)
        leftover = slot_take(1)
        child = holder(leftover.fd)
        leftover.release()
        thread = threading.Thread(target=local_run, kwargs={"process_id": process.pk}, daemon=True)
        thread.start()
        try:
            # The watcher does not claim the run while the slot is held.
            thread.join(timeout=2)
            assert thread.is_alive()
            assert Process.objects.get(pk=process.pk).status == ProcessStatus.QUEUED
        finally:
            child.communicate(b"", timeout=30)
        thread.join(timeout=120)
        assert not thread.is_alive()
        assert Process.objects.get(pk=process.pk).status == ProcessStatus.SUCCEEDED

    def test_a_run_cancelled_while_waiting_for_a_slot_releases_the_waiting_watcher(self, local):
        job = make_job(root=local, source="def main(ctx):\n    print('ran')\n")
        process = process_start(job=job, trigger=Trigger.MANUAL)
        taken = slot_take(1)
        try:
            thread = threading.Thread(target=local_run, kwargs={"process_id": process.pk}, daemon=True)
            thread.start()
            thread.join(timeout=1)
            process_cancel(process=Process.objects.get(pk=process.pk))
            thread.join(timeout=30)
            assert not thread.is_alive()
        finally:
            taken.release()
        assert Process.objects.get(pk=process.pk).status == ProcessStatus.CANCELLED


@pytest.mark.django_db(transaction=True)
class TestOrphanedClaim:
    @pytest.fixture
    def local(self, local_templates, slot_dir):
        return local_templates

    @staticmethod
    def claimed_by_a_dead_watcher(process: Process, **details) -> None:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        started = psutil.Process(dead.pid).create_time()
        dead.wait(timeout=30)
        watcher = {**orphans.watcher_identity(), "pid": dead.pid, "started": started}
        assert process_mark_submitted(process_id=process.pk, executor="local",
                                      executor_details={**details, "watcher": watcher})
        assert process_mark_running(process_id=process.pk)

    def test_a_redelivered_message_queues_the_run_again_and_runs_it_once(self, local):
        job = make_job(root=local, source="def main(ctx):\n    print('ran once')\n")
        process = process_start(job=job, trigger=Trigger.MANUAL)
        self.claimed_by_a_dead_watcher(process)
        local_run(process_id=process.pk)
        process.refresh_from_db()
        assert process.status == ProcessStatus.SUCCEEDED, process.failure_reason
        assert process.executor_details["watchers_lost"] == 1
        assert process.executor_details["watcher"]["pid"] != 0

    def test_a_live_watcher_claim_is_left_alone(self, local):
        job = make_job(root=local, source="def main(ctx):\n    print('x')\n")
        process = process_start(job=job, trigger=Trigger.MANUAL)
        assert process_mark_submitted(process_id=process.pk, executor="local",
                                      executor_details={"watcher": orphans.watcher_identity()})
        assert process_mark_running(process_id=process.pk)
        assert orphans.orphan_recover(process.pk) is False
        assert orphans.orphans_recover_all() == []
        assert Process.objects.get(pk=process.pk).status == ProcessStatus.RUNNING

    def test_a_run_that_lost_its_watcher_twice_fails_with_the_reason(self, local):
        job = make_job(root=local, source="def main(ctx):\n    print('x')\n")
        process = process_start(job=job, trigger=Trigger.MANUAL)
        self.claimed_by_a_dead_watcher(process, watchers_lost=1)
        assert orphans.orphans_recover_all() == []
        process.refresh_from_db()
        assert process.status == ProcessStatus.FAILED
        assert "stopped before it started the runner, 2 times" in process.failure_reason
        assert process.finalized_at is not None

    def test_a_runner_started_by_a_watcher_that_died_before_recording_it_is_adopted(self, local, settings):
        job = make_job(root=local, source="def main(ctx):\n    print('x')\n")
        process = process_start(job=job, trigger=Trigger.MANUAL)
        self.claimed_by_a_dead_watcher(process)
        # Stands in for the runner: its command line names the run as a runner's does.
        workdir = Path(settings.JTB_WORK_DIR) / f"process-{process.pk}-0123abcd"
        fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "runner.runtime",
                                 str(process.pk), "--workdir", str(workdir)])
        try:
            wait_for(lambda: orphans.runner_pid_find(process.pk) == fake.pid, timeout=30)
            assert orphans.orphan_recover(process.pk) is False
            process.refresh_from_db()
            assert process.status == ProcessStatus.RUNNING
            assert process.external_id == f"pid:{fake.pid}"
        finally:
            fake.kill()
            fake.wait(timeout=30)

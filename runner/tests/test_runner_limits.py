"""Hard limits the runner enforces itself (also on Batch): timeout over the whole tree, memory."""

from __future__ import annotations

import psutil
import pytest

from processes.models import ProcessStatus, TaskStatus
from tests.support import make_job, runner_run, start, template_outbox, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def templates(tmp_path, settings, subprocess_env):
    root = tmp_path / "templates"
    root.mkdir()
    settings.JTB_TEMPLATE_ROOT = root
    return root, {**subprocess_env, "JTB_TEMPLATE_ROOT": str(root)}


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_timeout_kills_the_whole_tree_and_says_timed_out(templates, tmp_path):
    root, env = templates
    job = make_job(root=root, source="""
        import subprocess, time
        def main(ctx):
            with ctx.task("spawn and wait"):
                helper = subprocess.Popen(["sleep", "300"])
                open(ctx.params["pid_file"], "w").write(str(helper.pid))
                time.sleep(300)
    """, timeout_seconds=2)
    pid_file = template_outbox(tmp_path) / "helper.pid"
    process = start(job, {"pid_file": str(pid_file)})
    runner_run(process, env, timeout=60)
    process.refresh_from_db()
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason == "Timed out after 2 s."
    assert process.tasks.get().status == TaskStatus.FAILED
    assert process.duration.total_seconds() < 15
    # The helper the template started is gone too, not left running on the host.
    wait_for(lambda: gone(int(pid_file.read_text())), timeout=10)


def test_allocating_past_the_memory_limit_fails_with_out_of_memory(templates):
    root, env = templates
    job = make_job(root=root, source="""
        def main(ctx):
            with ctx.task("load everything"):
                data = bytearray(400 * 1024 * 1024)
    """, memory_mib=128)
    process = start(job)
    runner_run(process, env)
    process.refresh_from_db()
    assert process.status == ProcessStatus.FAILED
    assert "out of memory" in process.failure_reason.lower()
    assert process.failure_reason == "Task 'load everything' failed: out of memory (limit 128 MiB)"


def test_processes_of_the_template_together_over_the_limit_are_killed_as_out_of_memory(templates):
    # Each helper stays under the address-space limit; together their resident memory does not.
    root, env = templates
    job = make_job(root=root, source="""
        import subprocess, sys, time
        HOG = "import time; data = b'x' * (60 * 1024 * 1024); time.sleep(300)"
        def main(ctx):
            with ctx.task("fan out"):
                helpers = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(3)]
                time.sleep(300)
    """, memory_mib=128, timeout_seconds=120)
    process = start(job)
    runner_run(process, env, timeout=90)
    process.refresh_from_db()
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason.startswith("Out of memory: the template used ")
    assert process.failure_reason.endswith("more than its limit of 128 MiB.")
    assert process.duration.total_seconds() < 60

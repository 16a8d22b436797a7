"""Database discipline: one connection at most, only while writing, and a 30 s outage loses nothing.

PostgreSQL only (the PostgreSQL run of the suite): these watch the server's own view of the
connections and stop the server itself.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from django.db import connection

from conftest import require_service
from processes.models import ProcessStatus, TaskStatus
from runner import proctree
from tests.support import make_job, runner_popen, start, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

TASKS = """
import time
def main(ctx):
    for step in range(ctx.params["steps"]):
        with ctx.task(f"step {step + 1}"):
            time.sleep(ctx.params["pause"])
"""


@pytest.fixture
def postgres_runner(tmp_path, settings, subprocess_env):
    if connection.vendor != "postgresql":
        pytest.skip("needs the PostgreSQL run of the suite (DATABASE_URL=postgres://...)")
    require_service("PostgreSQL", "127.0.0.1", 5432)
    root = tmp_path / "templates"
    root.mkdir()
    settings.JTB_TEMPLATE_ROOT = root
    job = make_job(root=root, source=TASKS)
    return job, {**subprocess_env, "JTB_TEMPLATE_ROOT": str(root), "JTB_HEARTBEAT_SECONDS": "1"}


def database_sockets(pid: int) -> int:
    """Open TCP connections from the runner's process tree to the database server.

    Counted on the client side: the server's pg_stat_activity keeps a closed session's row until
    its backend has exited, so right after a close and a reconnect it may briefly show two.
    """
    port = int(connection.settings_dict.get("PORT") or 5432)
    count = 0
    for member in proctree.tree(pid):
        try:
            sockets = member.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        count += sum(1 for sock in sockets if sock.raddr and sock.raddr.port == port)
    return count


def test_a_runner_holds_at_most_one_connection_and_none_while_the_template_works(postgres_runner):
    job, env = postgres_runner
    process = start(job, {"steps": 30, "pause": 0.1})
    runner = runner_popen(process, env)
    samples = []
    while runner.poll() is None:
        samples.append(database_sockets(runner.pid))
    output, _ = runner.communicate(timeout=60)
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUCCEEDED, output
    steps = list(process.tasks.order_by("sequence").values_list("sequence", "name", "status"))
    assert len(steps) == 30, (steps, output)
    assert max(samples) <= 1, f"connections seen: {sorted(set(samples))}"
    assert 1 in samples, "the runner's connection was never seen: is the sampling looking at it?"
    # Mostly none: the connection is closed as soon as each write is done.
    assert samples.count(0) > len(samples) / 2, f"{samples.count(0)} of {len(samples)} samples without"


def pg_cluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *(["-m", "fast"] if action == "stop" else [])],
        check=True, timeout=60,
    )


@pytest.mark.slow
@pytest.mark.serial  # stops the shared server: never beside other tests (see Makefile)
def test_a_run_survives_a_30_second_database_outage_with_every_status_and_no_duplicate_task(postgres_runner):
    if not Path("/etc/postgresql").is_dir():
        pytest.skip("no local PostgreSQL cluster to stop")
    job, env = postgres_runner
    steps = 45
    process = start(job, {"steps": steps, "pause": 1.0})
    runner = runner_popen(process, env)
    wait_for(lambda: process.tasks.count() >= 3, timeout=60)
    connection.close()
    pg_cluster("stop")
    try:
        time.sleep(30)
    finally:
        pg_cluster("start")
    require_service("PostgreSQL", "127.0.0.1", 5432)
    connection.close()
    output, _ = runner.communicate(timeout=180)

    process.refresh_from_db()
    assert process.status == ProcessStatus.SUCCEEDED, output
    tasks = list(process.tasks.order_by("sequence"))
    assert [task.sequence for task in tasks] == list(range(1, steps + 1))
    assert [task.name for task in tasks] == [f"step {number}" for number in range(1, steps + 1)]
    assert {task.status for task in tasks} == {TaskStatus.SUCCEEDED}
    assert "database unavailable" in output  # it really went through the outage

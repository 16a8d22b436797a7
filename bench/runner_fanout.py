"""250 runners at once (the old framework's daily peak), ten tasks each, against PostgreSQL with
fewer connections than runners.

    .venv/bin/python bench/runner_fanout.py [--runners 250] [--connection-limit 40]

Every runner is started as AWS Batch starts it (`python -m runner.runtime <id>`: it claims the run
itself, with the database driver before Django, or through Django when no connection is free). Their templates wait until all runs are `running`, then all do their
ten tasks at the same moment, so every runner writes its statuses in the same few seconds.

Connections: this server's `max_connections` is shared with other people's tests and cannot be
restarted with another value here, so the benchmark's runners log in as their own role with
`CONNECTION LIMIT` (default 40, far below 250 runners). A runner that finds no free connection
gets "too many connections for role", exactly what a full server says, and retries with backoff.
A sampler polls pg_stat_activity for the peak number of connections the role held.

Checks: every process succeeded, no task row is missing or doubled. Prints the peak connections
used and the status writes per second during the burst. Uses its own database and role (created
and dropped). The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PG = "postgres://postgres@127.0.0.1:5432"
TASKS = 10
TEMPLATE = """\
import os, time

def main(ctx):
    # Wait for the others, so that all runners write their statuses in the same seconds.
    while not os.path.exists(ctx.params["go"]):
        time.sleep(0.05)
    for step in range(ctx.params["tasks"]):
        with ctx.task(f"step {step + 1}"):
            time.sleep(0.1)
"""


def admin(sql: str) -> list[tuple]:
    """Run one statement as the superuser, outside any database the benchmark creates."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


class ConnectionSampler(threading.Thread):
    """Peak number of server connections held by `role`, sampled every 20 ms."""

    def __init__(self, role: str) -> None:
        super().__init__(daemon=True)
        self.role = role
        self.peak = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            while not self._halt.is_set():
                count = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (self.role,)).fetchone()[0]
                self.peak = max(self.peak, count)
                self.samples += 1
                time.sleep(0.02)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", type=int, default=250)
    parser.add_argument("--connection-limit", type=int, default=40)
    args = parser.parse_args()

    suffix = os.getpid()
    role, database = f"jtb_fanout_{suffix}", f"jtb_bench_fanout_{suffix}"
    work = Path(tempfile.mkdtemp(prefix="jtb-fanout-"))
    (work / "templates").mkdir()
    (work / "templates" / "fanout.py").write_text(TEMPLATE)
    (work / "logs").mkdir()
    go = work / "go"
    os.environ.update({
        "DATABASE_URL": f"postgres://{role}@127.0.0.1:5432/{database}",
        "DJANGO_SETTINGS_MODULE": "jobtarget_batch.settings",
        "SECRET_KEY": "bench-only-signing-key",  # production settings require one
        "CELERY_BROKER_URL": "memory://localhost//",
        "JTB_TEMPLATE_ROOT": str(work / "templates"),
        "JTB_WORK_DIR": str(work / "work"),
        "JTB_LOG_DIR": str(work / "logs"),
        "LOG_LEVEL": "WARNING",
    })
    server_max = int(admin("SHOW max_connections")[0][0])
    admin(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT {args.connection_limit}')
    admin(f'CREATE DATABASE "{database}" OWNER "{role}"')
    runners: list[subprocess.Popen] = []
    result: dict = {}
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection
        from django.db.models import Count

        from jobs.models import Job
        from processes.models import Process, ProcessStatus, Task, TaskStatus, Trigger
        from processes.services import RunRequest, process_start_many
        from runner.environments import environment_ensure

        call_command("migrate", verbosity=0)
        environment_ensure([])  # the job has no modules; build the empty environment up front
        job = Job.objects.create(name="fanout", template="fanout.py", memory_mib=256, timeout_seconds=900)
        processes = process_start_many(
            requests=[RunRequest(job=job, parameters={"go": str(go), "tasks": TASKS}) for _ in range(args.runners)],
            trigger=Trigger.MANUAL,
        )
        ids = [process.pk for process in processes]
        connection.close()
        print(f"server max_connections = {server_max}; role {role} CONNECTION LIMIT {args.connection_limit}; "
              f"{args.runners} runners", flush=True)

        sampler = ConnectionSampler(role)
        sampler.start()
        started = time.monotonic()
        for pk in ids:
            log = open(work / "logs" / f"runner-{pk}.log", "wb")
            runners.append(subprocess.Popen([sys.executable, "-m", "runner.runtime", str(pk)], cwd=REPO,
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            log.close()
        while True:
            running = Process.objects.filter(pk__in=ids, status=ProcessStatus.RUNNING).count()
            connection.close()
            if running == args.runners:
                break
            if time.monotonic() - started > 600:
                raise SystemExit(f"only {running} of {args.runners} runs started within 600 s")
            time.sleep(1)
        all_running = time.monotonic() - started
        print(f"all {args.runners} runners running after {all_running:.1f} s; releasing their templates", flush=True)
        go.write_text("go")
        released = time.monotonic()
        for runner in runners:
            runner.wait(timeout=600)
        burst = time.monotonic() - released
        sampler.stop()

        statuses = dict(Process.objects.filter(pk__in=ids).values_list("status").annotate(n=Count("id")))
        tasks = Task.objects.filter(process_id__in=ids)
        task_count = tasks.count()
        succeeded_tasks = tasks.filter(status=TaskStatus.SUCCEEDED).count()
        per_process = set(tasks.values("process_id").annotate(n=Count("id")).values_list("n", flat=True))
        # Writes in the burst: task start and task end for each step, and the final status.
        writes = args.runners * (2 * TASKS + 1)
        failures = sum(1 for runner in runners if runner.returncode != 0)
        ok = statuses == {ProcessStatus.SUCCEEDED: args.runners} and task_count == succeeded_tasks == args.runners * TASKS \
            and per_process == {TASKS}
        print(f"processes: {statuses}; runner exit codes != 0: {failures}")
        print(f"task rows: {task_count} (expected {args.runners * TASKS}), succeeded {succeeded_tasks}, "
              f"per process {sorted(per_process)}")
        print(f"peak connections held by the runners: {sampler.peak} (limit {args.connection_limit}, "
              f"{sampler.samples} samples)")
        print(f"burst: {writes} status writes in {burst:.1f} s = {writes / burst:.0f} writes/s")
        result = {
            "runners": args.runners, "connection_limit": args.connection_limit, "server_max_connections": server_max,
            "all_succeeded": ok, "task_rows": task_count, "peak_connections": sampler.peak,
            "status_writes": writes, "burst_seconds": round(burst, 2),
            "status_writes_per_second": round(writes / burst, 1), "seconds_until_all_running": round(all_running, 1),
        }
    finally:
        for runner in runners:
            if runner.poll() is None:
                runner.kill()
        from django.db import connections

        connections.close_all()
        admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin(f'DROP ROLE IF EXISTS "{role}"')
        if not os.environ.get("JTB_BENCH_KEEP"):
            subprocess.run(["rm", "-rf", str(work)], check=False)
        else:
            print(f"kept {work}")
    print(json.dumps(result))
    if not result.get("all_succeeded"):
        sys.exit(1)


if __name__ == "__main__":
    main()

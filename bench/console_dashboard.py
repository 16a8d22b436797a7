"""The operations console's home page over a history of a million processes (PostgreSQL).

    .venv/bin/python bench/console_dashboard.py [--processes 1000000] [--repeat 3]

Fills its own database (created and dropped) with --processes runs of 200 jobs spread over the
last 30 days (90 % succeeded, 8 % failed, 2 % cancelled, each with its estimated cost), plus 20
running and 50 waiting, then times what a signed-in operator's browser asks for: the dashboard
with each chart window (24 h, 7 d, 30 d) and the live JSON it polls every 2 s. The baseline,
measured in the same run, is one `SELECT COUNT(*)` over the processes table: the price of a
single unbounded figure, which the dashboard never pays. The last line is a JSON object with
the median seconds of each page, trends computed every time (no cache: the first view of a
minute). Goals: live JSON <= 0.25 s, dashboard 24 h <= 1 s, 7 d and 30 d <= 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.pg_database import bench_database, fill_rollups  # noqa: E402
from bench.timing import median_time, say  # noqa: E402

JOBS = 200

FILL = """
INSERT INTO processes_process (
    job_id, status, held, trigger, parameters, snapshot, executor, external_id, executor_state,
    executor_status_reason, executor_details, attempt, created_at, submitted_at, started_at, finished_at,
    finalized_at, failure_reason, estimated_cost)
SELECT
    job_id, status, false, 'schedule', '{}'::jsonb, '{"vcpus": "1", "memory_mib": 2048}'::jsonb, 'local', '',
    '', '', '{}'::jsonb, 1, created, created, created + interval '5 seconds',
    created + interval '5 seconds' + seconds * interval '1 second',
    created + interval '5 seconds' + seconds * interval '1 second',
    CASE WHEN status = 'failed' THEN 'Task ''load'' failed: ValueError: bench' ELSE '' END,
    round((seconds / 3600.0 * 0.05)::numeric, 6)
FROM (
    SELECT
        1 + (n %% %(jobs)s) AS job_id,
        now() - interval '30 days' + (n::float / %(count)s) * interval '30 days' - interval '1 hour' AS created,
        CASE WHEN n %% 50 = 0 THEN 'cancelled' WHEN n %% 100 < 8 THEN 'failed' ELSE 'succeeded' END AS status,
        30 + (n::bigint * 7919) %% 900 AS seconds
    FROM generate_series(1, %(count)s) AS n
) AS rows
"""


def fill(count: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from jobs.models import Job
    from processes.models import Process, ProcessStatus, Task, TaskStatus, Trigger

    Job.objects.bulk_create([Job(name=f"bench job {index:03d}", template="examples/hello.py") for index in range(JOBS)])
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(FILL, {"count": count, "jobs": JOBS})
    now = timezone.now()
    running = Process.objects.bulk_create([
        Process(job_id=1 + index, status=ProcessStatus.RUNNING, trigger=Trigger.SCHEDULE, snapshot={},
                started_at=now, heartbeat_at=now)
        for index in range(20)
    ])
    Task.objects.bulk_create([
        Task(process=process, sequence=1, name="extract", status=TaskStatus.RUNNING, started_at=now)
        for process in running
    ])
    Process.objects.bulk_create([
        Process(job_id=1 + index, status=ProcessStatus.QUEUED, trigger=Trigger.API, snapshot={}) for index in range(50)
    ])
    with connection.cursor() as cursor:
        fill_rollups(cursor)
        cursor.execute("VACUUM ANALYZE processes_process")
        cursor.execute("VACUUM ANALYZE processes_processhourly")
    say(f"filled {count:,} processes in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="Keep the database (and reuse it if it exists).")
    parser.add_argument("--database", default=f"jtb_bench_console_{os.getpid()}")
    options = parser.parse_args()

    database = options.database
    env = {
        "JTB_DATA_DIR": tempfile.mkdtemp(prefix="jtb-bench-console-"),
        "DJANGO_SETTINGS_MODULE": "jobtarget_batch.settings", "LOG_LEVEL": "WARNING",
        # Every page computes its trends: the first view of a minute, the worst case.
        "JTB_CONSOLE_TRENDS_CACHE_SECONDS": "0",
    }
    with bench_database(database, env=env, keep=options.keep) as fresh:
        import django

        django.setup()
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        if fresh:
            call_command("migrate", verbosity=0)
            fill(options.processes)
            User.objects.create_superuser("bench", "bench@example.com", "bench")
        client = Client()
        client.force_login(User.objects.get(username="bench"))

        def get(url: str):
            def call():
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)
            return call

        def count_all():
            with connection.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM processes_process")
                cursor.fetchone()

        get("/admin/")()  # warm the caches of both sides once
        results = {
            "baseline_count_all_s": median_time(count_all, options.repeat),
            "live_json_s": median_time(get("/admin/console/live/"), options.repeat),
            "dashboard_24h_s": median_time(get("/admin/?range=24h"), options.repeat),
            "dashboard_7d_s": median_time(get("/admin/?range=7d"), options.repeat),
            "dashboard_30d_s": median_time(get("/admin/?range=30d"), options.repeat),
        }
        connection.close()

    for name, seconds in results.items():
        say(f"{name:24} {seconds * 1000:9.1f} ms")
    print(json.dumps({"processes": options.processes, **{k: round(v, 4) for k, v in results.items()}}))


if __name__ == "__main__":
    main()

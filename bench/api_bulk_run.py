"""`POST /api/v1/runs/` with 1,000 runs against 1,000 plain `Process.objects.create` calls.

    .venv/bin/python bench/api_bulk_run.py [--runs 1000] [--rounds 5]

Ours: one authenticated request through the whole Django stack (middleware, token auth,
permissions, validation, `process_start_many`, the JSON answer), timed until the request has
returned: by then every process is committed as queued and every dispatch message is in Redis
(they are sent on commit, inside the request). The script checks both: the rows, and the number
of messages on the broker's queue.

Naive: the same 1,000 rows, one `Process.objects.create` each (autocommit), no messages at all.

Uses its own PostgreSQL database (created and dropped) and its own Redis database number
(flushed before and after). Rounds alternate ours and naive; the figures are medians. The last
line is a JSON object with `ratio` = ours / naive (goal <= 1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PG = "postgres://postgres@127.0.0.1:5432"
REDIS_DB = 11
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
JOBS = 10


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def queued_messages(client, queue: str) -> int:
    return client.llen(queue)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    database = f"jtb_bench_api_{os.getpid()}"
    admin(f'CREATE DATABASE "{database}"')
    os.environ["DATABASE_URL"] = f"{PG}/{database}"
    os.environ["CELERY_BROKER_URL"] = REDIS_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobtarget_batch.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-signing-key")  # production settings require one
    try:
        return run(args)
    finally:
        from django.db import connections

        connections.close_all()
        admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def run(args) -> int:
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from jobs.models import Job
    from processes.models import Process, ProcessStatus, Trigger
    from processes.services import SUBMIT_CHUNK, job_snapshot

    call_command("migrate", verbosity=0)
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    queue = settings.CELERY_TASK_DEFAULT_QUEUE

    user = User.objects.create_superuser("bench", password="bench-password-1")
    token = Token.objects.create(user=user).key
    jobs = [
        Job.objects.create(name=f"bench job {index}", template="examples/hello.py", parameters={"n": index})
        for index in range(JOBS)
    ]
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    body = json.dumps({"runs": [{"job": jobs[i % JOBS].pk, "parameters": {"i": i}} for i in range(args.runs)]})

    def ours() -> float:
        broker.delete(queue)
        before = Process.objects.count()
        started = time.perf_counter()
        response = client.post("/api/v1/runs/", body, content_type="application/json")
        elapsed = time.perf_counter() - started
        assert response.status_code == 202, response.content[:500]
        assert len(response.json()) == args.runs
        assert Process.objects.count() - before == args.runs
        expected = -(-args.runs // SUBMIT_CHUNK)
        assert queued_messages(broker, queue) == expected, (queued_messages(broker, queue), expected)
        return elapsed

    def naive() -> float:
        started = time.perf_counter()
        for i in range(args.runs):
            job = jobs[i % JOBS]
            Process.objects.create(
                job=job, status=ProcessStatus.QUEUED, trigger=Trigger.API, triggered_by=user,
                parameters={**job.parameters, "i": i}, snapshot=job_snapshot(job),
            )
        return time.perf_counter() - started

    # Warm up both paths (imports, connection, prepared caches) before timing.
    client.post("/api/v1/runs/", json.dumps({"runs": [{"job": jobs[0].pk}]}), content_type="application/json")
    ours_times, naive_times = [], []
    for round_number in range(args.rounds):
        ours_times.append(ours())
        naive_times.append(naive())
        print(f"round {round_number + 1}: ours {ours_times[-1] * 1000:.0f} ms, naive {naive_times[-1] * 1000:.0f} ms",
              flush=True)
    broker.flushdb()

    ours_median, naive_median = statistics.median(ours_times), statistics.median(naive_times)
    ratio = ours_median / naive_median
    print(f"POST runs/ of {args.runs}: {ours_median * 1000:.0f} ms (rows and {-(-args.runs // SUBMIT_CHUNK)} "
          f"dispatch messages); {args.runs} x Model.objects.create: {naive_median * 1000:.0f} ms; ratio {ratio:.2f}")
    print(json.dumps({
        "runs": args.runs, "ours_ms": round(ours_median * 1000, 1), "naive_ms": round(naive_median * 1000, 1),
        "ratio": round(ratio, 3), "goal": 1.0, "met": ratio <= 1.0,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

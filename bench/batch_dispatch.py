"""Benchmark: 1,000 runs through the whole AWS Batch dispatch path vs 1,000 raw boto3 submit_job calls.

Both go to the same moto server in one run. Ours: process_start_many (one INSERT) → 20 dispatch
messages on Redis → a real Celery worker (threads pool, 8 threads) → claim in PostgreSQL →
paced SubmitJob → job id saved. Raw: submit_job from a thread pool of the same size, nothing else.

The pace: AWS allows 50 SubmitJob calls a second per account, so production uses
JTB_BATCH_SUBMITS_PER_SECOND=50; moto has no such limit and serves ~126-152 calls a second, so at
50/s the ratio would measure the pacing (~2.5), not our overhead. This run sets the pace above what
moto can serve (BENCH_SUBMITS_PER_SECOND, default 1000), says so, and reports the ratio of the path.

    .venv/bin/python bench/batch_dispatch.py      # last line: {"ratio": ours / raw, ...}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.moto import FAKE_CREDENTIALS, start_moto  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "1000"))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
PACE = os.environ.get("BENCH_SUBMITS_PER_SECOND", "1000")
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/11")
DB_NAME = f"jtb_bench_batch_{os.getpid()}"
QUEUE = f"jtb-bench-batch-{os.getpid()}"


def setup_batch(client, iam) -> None:
    iam_role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    environment = client.create_compute_environment(
        computeEnvironmentName="bench", type="UNMANAGED", state="ENABLED", serviceRole=iam_role,
    )["computeEnvironmentArn"]
    client.create_job_queue(jobQueueName="jtb-default", state="ENABLED", priority=1,
                            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}])


def raw_submits(client) -> float:
    def one(index: int) -> None:
        client.submit_job(jobName=f"raw-{index}", jobQueue="jtb-default", jobDefinition="jtb-runner",
                          parameters={"process_id": str(index)})

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(RUNS)))
    return time.perf_counter() - started


def main() -> None:
    moto = start_moto()
    env = {
        **os.environ, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": moto.url, "DATABASE_URL": f"{PG}/{DB_NAME}",
        "CELERY_BROKER_URL": REDIS, "JTB_EXECUTOR": "aws_batch", "JTB_BATCH_SUBMITS_PER_SECOND": PACE,
        "JTB_BATCH_DATABASE_URL_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
        "JTB_BATCH_PLATFORMS": "EC2", "DJANGO_SETTINGS_MODULE": "jobtarget_batch.settings",
    }
    os.environ.update(env)
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    worker = None
    try:
        import django

        django.setup()
        from django.core.management import call_command

        from jobs.models import Job
        from jobtarget_batch.celery import app as celery_app
        from processes.models import Process, Trigger
        from processes.services import RunRequest, process_start_many
        from runner.aws.client import aws_client

        call_command("migrate", verbosity=0)
        batch = aws_client("batch")
        setup_batch(batch, aws_client("iam"))
        call_command("batch_sync", stdout=open(os.devnull, "w"))
        celery_app.conf.task_default_queue = QUEUE
        job = Job.objects.create(name="bench", template="s3://bench/job.py", memory_mib=512)

        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jobtarget_batch", "worker", "--pool", "threads",
             "-c", str(THREADS), "-Q", QUEUE, "-n", f"bench-{os.getpid()}@%h", "--without-gossip",
             "--without-mingle", "--loglevel", "WARNING"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        # Warm the worker (and moto) with a few runs before timing.
        process_start_many(requests=[RunRequest(job=job) for _ in range(THREADS)], trigger=Trigger.API)
        while Process.objects.filter(external_id="").exists():
            time.sleep(0.1)

        raw = raw_submits(batch)

        started = time.perf_counter()
        process_start_many(requests=[RunRequest(job=job) for _ in range(RUNS)], trigger=Trigger.API)
        deadline = time.monotonic() + 600
        while Process.objects.filter(external_id="").exists():
            if time.monotonic() > deadline:
                raise SystemExit("runs were not all submitted within 600 s")
            time.sleep(0.05)
        ours = time.perf_counter() - started

        jobs = Process.objects.exclude(external_id="").values_list("external_id", flat=True)
        assert len(set(jobs)) == Process.objects.count(), "a run has no job or shares one"
        print(f"raw boto3 submit_job x{RUNS} ({THREADS} threads): {raw:.2f} s ({RUNS / raw:.0f}/s)")
        print(f"ours: API service -> Redis -> Celery worker ({THREADS} threads) -> claim -> SubmitJob -> id saved,"
              f" x{RUNS}: {ours:.2f} s ({RUNS / ours:.0f}/s)")
        print(f"pace: JTB_BATCH_SUBMITS_PER_SECOND={PACE} (production default 50 = the AWS account limit; moto has "
              f"no limit and serves ~130-150/s, so pacing at 50/s would measure the pace, not the path: "
              f"{RUNS} runs at 50/s take >= {RUNS / 50:.0f} s)")
        print(json.dumps({"ratio": round(ours / raw, 3), "ours_seconds": round(ours, 2), "raw_seconds": round(raw, 2),
                          "runs": RUNS, "threads": THREADS, "submits_per_second_setting": float(PACE)}))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        moto.stop()


if __name__ == "__main__":
    main()

"""Benchmark: 1,000 runs through the whole AWS Batch dispatch path vs 1,000 raw boto3 submit_job calls.

Both go to the same moto server in one run. Ours: process_start_many (one INSERT) → 20 dispatch
messages of 50 ids on Redis → a real Celery worker (threads pool, 8 threads) → per message one
SELECT and one claim UPDATE in PostgreSQL → paced SubmitJob calls on the worker's shared submit
pool (runner.executors.aws_batch.submission.SUBMIT_THREADS, 8) → the chunk's job ids saved in one UPDATE. The
clock stops when every run has its Batch job id saved. Raw: submit_job from a thread pool of the
same size (8), nothing else.

This machine is shared and its load moves a lot, so raw and ours alternate for BENCH_ROUNDS rounds
(default 5) and the ratio is of the medians. After the last round, moto is asked for every run's
job by its name: each run must have exactly one Batch job, the one whose id is saved.

The pace: AWS allows 50 SubmitJob calls a second per account, so production uses
JTB_BATCH_SUBMITS_PER_SECOND=50; moto has no such limit and serves ~126-152 calls a second, so at
50/s the ratio would measure the pacing (~2.5), not our overhead. This run sets the pace above what
moto can serve (BENCH_SUBMITS_PER_SECOND, default 1000), says so, and reports the ratio of the path.

    .venv/bin/python bench/batch_dispatch.py      # last line: {"ratio": ours / raw, ...}
"""

from __future__ import annotations

import json
import os
import statistics
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
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
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


def raw_submits(client, round_number: int) -> float:
    def one(index: int) -> None:
        client.submit_job(jobName=f"raw-{round_number}-{index}", jobQueue="jtb-default", jobDefinition="jtb-runner",
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
        "SECRET_KEY": "bench-only-signing-key",  # production settings require one
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
        from runner.executors.aws_batch.submission import SUBMIT_THREADS, process_batch_job_name

        def dispatch_runs(job) -> float:
            """Seconds from the bulk start until every run has its Batch job id saved."""
            started = time.perf_counter()
            process_start_many(requests=[RunRequest(job=job) for _ in range(RUNS)], trigger=Trigger.API)
            deadline = time.monotonic() + 600
            while Process.objects.filter(external_id="").exists():
                if time.monotonic() > deadline:
                    raise SystemExit("runs were not all submitted within 600 s")
                time.sleep(0.05)
            return time.perf_counter() - started

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

        raws, ours_runs = [], []
        for round_number in range(ROUNDS):
            raws.append(raw_submits(batch, round_number))
            ours_runs.append(dispatch_runs(job))
            print(f"round {round_number + 1}: raw {raws[-1]:.2f} s, ours {ours_runs[-1]:.2f} s", flush=True)
        raw, ours = statistics.median(raws), statistics.median(ours_runs)

        processes = list(Process.objects.values_list("pk", "external_id"))
        assert all(external_id for _, external_id in processes), "a run has no Batch job id"
        ours_names = process_batch_job_name(job_id=job.pk, process_id=0).removesuffix("0") + "*"
        by_name: dict[str, list[str]] = {}
        for page in batch.get_paginator("list_jobs").paginate(
            jobQueue="jtb-default", filters=[{"name": "JOB_NAME", "values": [ours_names]}]
        ):
            for summary in page["jobSummaryList"]:
                by_name.setdefault(summary["jobName"], []).append(summary["jobId"])
        for pk, external_id in processes:
            assert by_name.pop(process_batch_job_name(job_id=job.pk, process_id=pk), None) == [external_id], (
                f"process {pk} does not have exactly one Batch job, the one saved")
        assert not by_name, f"Batch jobs that belong to no run: {sorted(by_name)[:5]}"

        print(f"raw boto3 submit_job x{RUNS} ({THREADS} threads), median of {ROUNDS}: {raw:.2f} s ({RUNS / raw:.0f}/s)"
              f" [{', '.join(f'{value:.2f}' for value in raws)}]")
        print(f"ours: process_start_many -> Redis -> Celery worker ({THREADS} threads) -> load + claim per 50 -> "
              f"SubmitJob ({SUBMIT_THREADS} submit threads) -> ids saved, until every run has its job id, x{RUNS}, "
              f"median of {ROUNDS}: {ours:.2f} s ({RUNS / ours:.0f}/s) [{', '.join(f'{value:.2f}' for value in ours_runs)}]")
        print(f"checked: {len(processes)} runs, each with exactly one Batch job in moto (by name), the one saved")
        print(f"pace: JTB_BATCH_SUBMITS_PER_SECOND={PACE} (production default 50 = the AWS account limit; moto has "
              f"no limit and serves ~130-300/s, so pacing at 50/s would measure the pace, not the path: "
              f"{RUNS} runs at 50/s take >= {RUNS / 50:.0f} s)")
        print(json.dumps({"ratio": round(ours / raw, 3), "ours_seconds": round(ours, 2), "raw_seconds": round(raw, 2),
                          "ours_rounds": [round(value, 2) for value in ours_runs],
                          "raw_rounds": [round(value, 2) for value in raws], "runs": RUNS, "threads": THREADS,
                          "submit_threads": SUBMIT_THREADS, "submits_per_second_setting": float(PACE)}))
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

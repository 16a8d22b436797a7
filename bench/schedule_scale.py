"""10,000 enabled every-minute schedules: our beat tick against django-celery-beat's stock
DatabaseScheduler driving 10,000 equivalent PeriodicTasks.

    .venv/bin/python bench/schedule_scale.py [--schedules 10000] [--stock-seconds 20]

Ours (real clock): 10,000 jobs, each with a "* * * * *" schedule, due at the next minute M. A
simulated beat calls the tick task's function every JTB_SCHEDULE_TICK_SECONDS with the worst
phase (its last tick before M happens just before M, so the first one that finds the runs due
is a whole interval later). `start_lag_s` is from M until the tick has committed the minute's
10,000 Processes and sent their dispatch messages to Redis (200 messages of 50 ids).

Stock (frozen clock, bounded): 10,000 PeriodicTasks on one every-minute CrontabSchedule. The
scheduler is loaded, ticked while nothing is due (its per-tick overhead), then the clock is
frozen one second after a minute and tick() is called for --stock-seconds; the rate at which it
sends that minute's tasks (to the same Redis) is extrapolated to 10,000.

Per-tick overhead is the time of one tick when nothing is due; `overhead_ratio_vs_stock` is
stock / ours. Uses its own PostgreSQL database (created and dropped) and Redis database 11
(its queue is purged). The last line is a JSON object with `start_lag_s` (goal <= 10) and
`overhead_ratio_vs_stock` (goal >= 10).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.pg_database import bench_database  # noqa: E402
from bench.timing import median_time, say  # noqa: E402

REDIS = "redis://127.0.0.1:6379/11"
QUEUE = "jtb-control"


def setup_ours(count: int, due: datetime) -> None:
    from jobs.models import Job, Schedule

    jobs = Job.objects.bulk_create(
        [Job(name=f"bench job {i}", template="examples/hello.py") for i in range(count)], batch_size=2000
    )
    Schedule.objects.bulk_create(
        [Schedule(job=job, cron="* * * * *", timezone="UTC", next_fire_at=due) for job in jobs], batch_size=2000
    )
    from django.db import connection

    with connection.cursor() as cursor:  # a live database has statistics; a fresh one needs them
        cursor.execute("ANALYZE")


def queue_length() -> int:
    import redis

    return redis.Redis.from_url(REDIS).llen(QUEUE)


def purge_queue() -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    client.delete(QUEUE, f"_kombu.binding.{QUEUE}")


def beat_loop(due: datetime, tick_seconds: float, count: int, reports) -> None:
    from django.db import connection

    from jobs.scheduling.tick import schedules_tick
    from processes.models import Process

    m = due.timestamp()
    next_tick = m - 0.05
    while next_tick - tick_seconds > time.time():
        next_tick -= tick_seconds
    while True:
        wait = next_tick - time.time()
        if wait > 0:
            time.sleep(wait)
        started = time.perf_counter()
        result = schedules_tick()
        elapsed = time.perf_counter() - started
        if result.started:
            reports.put((time.time(), result.started, elapsed))
        if Process.objects.filter(scheduled_for=due).count() >= count:
            break
        next_tick = max(next_tick + tick_seconds, time.time())
        if time.time() - m > 120:
            raise SystemExit("ours: runs not started within two minutes")
    connection.close()


def run_ours(count: int, tick_seconds: float, workers: int) -> dict:
    from jobs.scheduling.tick import schedules_tick
    from processes.models import Process

    now = datetime.now(UTC)
    due = (now + timedelta(seconds=20)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    setup_ours(count, due)
    say(f"ours: {count} schedules due at {due:%H:%M:%S} UTC; measuring idle ticks while waiting")
    idle = median_time(schedules_tick, 50)
    say(f"ours: idle tick {idle * 1000:.2f} ms")

    # Worst phase: the last tick before the minute runs just before it. Each worker process
    # ticks at the same moments, as when beat's tick fans out to the other worker.
    import multiprocessing

    from django.db import connections

    connections.close_all()
    context = multiprocessing.get_context("fork")
    reports = context.Queue()
    helpers = [context.Process(target=beat_loop, args=(due, tick_seconds, count, reports))
               for _ in range(workers - 1)]
    for helper in helpers:
        helper.start()
    beat_loop(due, tick_seconds, count, reports)
    for helper in helpers:
        helper.join(timeout=60)
    m = due.timestamp()
    done_at, busy = m, 0.0
    while True:
        try:
            finished, started, elapsed = reports.get(timeout=1)
        except queue.Empty:
            break
        say(f"ours: a tick at M{finished - elapsed - m:+.2f}s started {started} runs in {elapsed:.2f} s")
        done_at, busy = max(done_at, finished), busy + elapsed
    started_runs = Process.objects.filter(scheduled_for=due).count()
    distinct = Process.objects.filter(scheduled_for=due).values("schedule_id").distinct().count()
    messages = queue_length()
    purge_queue()
    lag = done_at - m
    say(f"ours: {started_runs} runs ({distinct} schedules) started {lag:.2f} s after the minute by {workers} worker(s); "
        f"start work {busy:.2f} s ({busy / count * 1e6:.0f} us per run); {messages} dispatch messages")
    assert started_runs == distinct == count, "every schedule must start exactly one run"
    return {"idle_tick_s": idle, "start_lag_s": lag, "start_work_s": busy, "messages": messages}


def run_stock(count: int, budget: float) -> dict:
    import time_machine
    from django_celery_beat.models import CrontabSchedule, PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from jobtarget_batch.celery import app

    base = (datetime.now(UTC) + timedelta(minutes=10)).replace(second=0, microsecond=0)
    with time_machine.travel(base + timedelta(seconds=20), tick=False):
        crontab = CrontabSchedule.objects.create(minute="*", hour="*", day_of_week="*", day_of_month="*",
                                                 month_of_year="*", timezone="UTC")
        PeriodicTask.objects.bulk_create(
            [PeriodicTask(name=f"stock schedule {i}", task="bench.start_schedule", crontab=crontab,
                          args=json.dumps([i])) for i in range(count)],
            batch_size=2000,
        )
        started = time.perf_counter()
        scheduler = DatabaseScheduler(app=app)
        scheduler.tick()  # loads every entry and builds the heap
        load = time.perf_counter() - started
        say(f"stock: loaded {len(scheduler.schedule)} entries in {load:.2f} s")
        idle = median_time(scheduler.tick, 15)
        say(f"stock: idle tick {idle * 1000:.1f} ms")

    sent = 0
    original = scheduler.apply_async

    def counting(entry, *args, **kwargs):
        nonlocal sent
        if entry.task == "bench.start_schedule":
            sent += 1
        return original(entry, *args, **kwargs)

    scheduler.apply_async = counting
    with time_machine.travel(base + timedelta(minutes=1, seconds=1), tick=False):
        started = time.perf_counter()
        while sent < count and time.perf_counter() - started < budget:
            scheduler.tick()
        elapsed = time.perf_counter() - started
    scheduler._finalize.cancel()  # its exit-time sync would write to a dropped database
    purge_queue()
    rate = sent / elapsed if elapsed else 0.0
    projected = count / rate if rate else float("inf")
    say(f"stock: sent {sent} of the minute's {count} tasks in {elapsed:.1f} s ({rate:.1f}/s): "
        f"all {count} would take ~{projected:.0f} s")
    return {"load_s": load, "idle_tick_s": idle, "rate_per_s": rate, "projected_lag_s": projected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--stock-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2, help="worker processes ticking (beat's tick fans out)")
    options = parser.parse_args()

    database = f"jtb_bench_schedules_{os.getpid()}"
    workdir = tempfile.mkdtemp(prefix="jtb-bench-schedules-")
    env = {"CELERY_BROKER_URL": REDIS, "JTB_DATA_DIR": workdir, "DJANGO_SETTINGS_MODULE": "jobtarget_batch.settings",
           "LOG_LEVEL": "WARNING"}
    with bench_database(database, env=env):
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        purge_queue()
        tick_seconds = float(settings.JTB_SCHEDULE_TICK_SECONDS)
        ours = run_ours(options.schedules, tick_seconds, options.workers)
        stock = run_stock(options.schedules, options.stock_seconds)
        connection.close()

    ratio = stock["idle_tick_s"] / ours["idle_tick_s"]
    say(f"per-tick overhead: stock {stock['idle_tick_s'] * 1000:.1f} ms, ours {ours['idle_tick_s'] * 1000:.2f} ms "
        f"({ratio:.0f}x)")
    say(f"start lag for {options.schedules} every-minute schedules: ours {ours['start_lag_s']:.2f} s "
        f"(tick every {tick_seconds:.0f} s, worst phase), stock ~{stock['projected_lag_s']:.0f} s")
    print(json.dumps({
        "schedules": options.schedules,
        "start_lag_s": round(ours["start_lag_s"], 2),
        "start_work_s": round(ours["start_work_s"], 2),
        "tick_seconds": tick_seconds,
        "workers": options.workers,
        "our_idle_tick_ms": round(ours["idle_tick_s"] * 1000, 3),
        "stock_idle_tick_ms": round(stock["idle_tick_s"] * 1000, 1),
        "stock_load_s": round(stock["load_s"], 2),
        "stock_runs_per_s": round(stock["rate_per_s"], 1),
        "stock_start_lag_s": round(stock["projected_lag_s"], 0),
        "overhead_ratio_vs_stock": round(ratio, 1),
    }))


if __name__ == "__main__":
    main()

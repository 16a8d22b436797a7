"""Every admin and API page of a year's history (1M processes, 5M tasks) against a primary-key page.

    .venv/bin/python bench/history_scale.py [--processes 1000000] [--requests 10] [--keep]

Builds its own PostgreSQL database (created here, dropped at the end unless --keep) with the
project's migrations, then fills it with set-based SQL: 300 jobs whose runs are skewed (the
busiest job has about a quarter of all runs), 200 schedules, PROCESSES runs over 365 days with a
realistic mix (93 % succeeded, 5 % failed, 1.5 % cancelled, a few active; mostly scheduled, some
API, manual and rerun runs; local `pid:N` and AWS Batch executor ids) and 1 to 9 tasks per run
(5 on average). It serves the app with gunicorn as `manage.py run_all` does, logs in as an admin,
and times each page of PAGES (one warm-up request, then --requests timed ones; p95 by linear
interpolation) together with a process detail page read by primary key, the baseline. Then it
purges the oldest 30 days of history with processes.retention (as `purge_history` does) and
reports rows deleted per second.

Add a page by appending to PAGES: (name, path with {placeholders} from `ids()`, text the answer
must contain or None). `--page name=/path` adds one from the command line.

Last line: JSON with `slowest_p95_ms`, `detail_p95_ms`, `slowest_vs_detail` (goal <= 8),
`pages` (how many were timed), `slowest_page`, `purge_rows_per_s` and every page's p95.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.pg_database import bench_database, fill_rollups  # noqa: E402
from bench.timing import say  # noqa: E402

DETAIL_PAGE = "admin process detail (pk)"
PASSWORD = "bench-password-1"

# (name, path, text the page must contain or None). Placeholders come from ids().
PAGES: list[tuple[str, str, str | None]] = [
    (DETAIL_PAGE, "/admin/processes/process/{mid_process}/change/", "{mid_process}"),
    ("admin process list", "/admin/processes/process/", None),
    ("admin process search by id", "/admin/processes/process/?q={mid_process}", "{mid_process}"),
    ("admin process search pid:N", "/admin/processes/process/?q=pid:{pid}", None),
    ("admin process search Batch job id", "/admin/processes/process/?q={batch_job_id}", "{mid_process}"),
    ("admin process search job name", "/admin/processes/process/?q=warehouse", None),
    ("admin process search user", "/admin/processes/process/?q=user:analyst3", None),
    ("admin process search reason", "/admin/processes/process/?q=reason:deadlock", None),
    ("admin process search no match", "/admin/processes/process/?q=no-such-thing", None),
    ("admin process list trigger=rerun", "/admin/processes/process/?trigger__exact=rerun", None),
    ("admin process list job=<busy>", "/admin/processes/process/?job={busy_job}", None),
    ("admin process list job=<quiet>", "/admin/processes/process/?job={quiet_job}", None),
    ("admin process list status=failed", "/admin/processes/process/?status__exact=failed", None),
    ("admin process list created this month", "/admin/processes/process/?created_at__gte={month_start}", None),
    ("admin task list", "/admin/processes/task/", None),
    ("admin task list status=running", "/admin/processes/task/?status__exact=running", None),
    ("admin task list status=failed", "/admin/processes/task/?status__exact=failed", None),
    ("admin task search process id", "/admin/processes/task/?q={mid_process}", None),
    ("admin task search name", "/admin/processes/task/?q=load", None),
    ("admin schedule list", "/admin/jobs/schedule/", "more than"),
    ("admin schedule page <busy>", "/admin/jobs/schedule/{busy_schedule}/change/", None),
    # The jobs list's columns: last run, next run, runs and success rate over 7 days, median, running now.
    ("admin job list", "/admin/jobs/job/", "success"),
    # The job page: grid of the last 25 runs, duration chart, success rate over 30 days.
    ("admin job page <busy>", "/admin/jobs/job/{busy_job}/change/", "jtb-grid-cell"),
    # The console's home, trends computed on every request (JTB_CONSOLE_TRENDS_CACHE_SECONDS=0).
    ("console dashboard 24h", "/admin/?range=24h", "Trends over the last 24 hours"),
    ("console dashboard 7d", "/admin/?range=7d", "Trends over the last 7 days"),
    ("console dashboard 30d", "/admin/?range=30d", "Trends over the last 30 days"),
    ("console live JSON", "/admin/console/live/", "server_time"),
    ("metrics", "/metrics", "jtb_runs_total"),
    ("admin job delete confirmation <busy>", "/admin/jobs/job/{busy_job}/delete/", "Its runs"),
    ("api process list", "/api/v1/processes/", None),
    ("api process list page_size=500", "/api/v1/processes/?page_size=500", None),
    ("api process list created_before", "/api/v1/processes/?created_before={half_year_ago}", None),
    ("api process list created_after", "/api/v1/processes/?created_after={half_year_ago}", None),
    ("api process list job=<busy>", "/api/v1/processes/?job={busy_job}", None),
    ("api process list job=<quiet>", "/api/v1/processes/?job={quiet_job}", None),
    ("api process list trigger=rerun", "/api/v1/processes/?trigger=rerun", None),
    ("api process list status=failed", "/api/v1/processes/?status=failed", None),
    ("api process detail", "/api/v1/processes/{mid_process}/", None),
    ("api schedule list", "/api/v1/schedules/", None),
    ("api job list", "/api/v1/jobs/", None),
]

JOB_WORDS = ["sales export", "warehouse load", "billing sync", "inventory report", "crm import", "email digest",
             "fraud scan", "ledger close", "search reindex", "image resize"]
FAILURES = ["Step load failed: deadlock detected", "Out of memory (exit code 137)", "Timed out after 3600 s",
            "Step extract failed: ConnectionError: timeout", "KeyError: 'customer_id'"]
STEPS = ["extract", "validate", "transform", "load", "report", "notify", "archive", "cleanup", "audit"]


def build(processes: int) -> None:
    """Users, jobs, schedules, runs and tasks in a few set-based statements."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    users = get_user_model()
    users.objects.create_superuser("bench", "bench@example.com", PASSWORD)
    for i in range(20):
        users.objects.create_user(f"analyst{i}", f"analyst{i}@example.com", "x")
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        cur.execute("SET maintenance_work_mem = '256MB'")
        cur.execute("""
            INSERT INTO jobs_job (name, description, enabled, template, python_modules, vcpus, memory_mib, gpus,
                timeout_seconds, retry_attempts, parameters, environment, concurrency_policy, queue, tags,
                notify_emails, created_at, updated_at)
            SELECT initcap((%s::text[])[1 + (j %% 10)]) || ' ' || j, '', true, 'examples/hello.py', '[]', 1, 2048, 0,
                3600, 1, '{}', '{}', 'allow', '', '{}', '[]', now() - interval '400 days', now()
            FROM generate_series(1, 300) j
        """, [JOB_WORDS])
        cur.execute("""
            INSERT INTO jobs_schedule (job_id, cron, timezone, enabled, driver, description, remote_error,
                next_fire_at, created_at, updated_at)
            SELECT id, '*/15 * * * *', 'UTC', true, 'beat', '', '', now() + interval '1 hour',
                now() - interval '400 days', now()
            FROM jobs_job WHERE id <= (SELECT min(id) + 199 FROM jobs_job) ORDER BY id
        """)
        # Job index k (1..300): skewed, k = 1 is the busiest (power 3 of a uniform draw).
        cur.execute("""
            CREATE TEMP TABLE bench_runs AS
            SELECT g,
                   (SELECT min(id) FROM jobs_job) + floor(300 * power(random(), 3))::int AS job_id,
                   now() - interval '365 days' + (g * interval '365 days' / %s) AS created,
                   random() AS r_status, random() AS r_trigger, random() AS r_exec
            FROM generate_series(1, %s) g
        """, [processes, processes])
        user_ids = list(users.objects.filter(is_superuser=False).values_list("pk", flat=True))
        cur.execute("""
            INSERT INTO processes_process (job_id, status, held, trigger, triggered_by_id, schedule_id,
                scheduled_for, parameters, snapshot, executor, external_id, executor_state,
                executor_status_reason, executor_details, attempt, created_at, submitted_at, started_at,
                finished_at, finalized_at, heartbeat_at, exit_code, failure_reason)
            SELECT b.job_id,
                CASE WHEN b.g > %(n)s - 20 THEN 'running'
                     WHEN b.g > %(n)s - 30 THEN 'queued'
                     WHEN b.r_status < 0.05 THEN 'failed'
                     WHEN b.r_status < 0.065 THEN 'cancelled' ELSE 'succeeded' END,
                false,
                CASE WHEN s.id IS NOT NULL AND b.r_trigger < 0.9 THEN 'schedule'
                     WHEN b.r_trigger < 0.93 THEN 'rerun' WHEN b.r_trigger < 0.97 THEN 'api' ELSE 'manual' END,
                CASE WHEN s.id IS NOT NULL AND b.r_trigger < 0.9 THEN NULL
                     ELSE (%(users)s::int[])[1 + (b.g %% %(user_count)s)] END,
                CASE WHEN s.id IS NOT NULL AND b.r_trigger < 0.9 THEN s.id END,
                CASE WHEN s.id IS NOT NULL AND b.r_trigger < 0.9 THEN b.created END,
                '{}',
                '{"template": "examples/hello.py", "python_modules": [], "vcpus": "1", "memory_mib": 2048}',
                CASE WHEN b.r_exec < 0.7 THEN 'local' ELSE 'aws_batch' END,
                CASE WHEN b.r_exec < 0.7 THEN 'pid:' || (1000 + b.g %% 60000)
                     ELSE regexp_replace(md5(b.g::text), '(.{8})(.{4})(.{4})(.{4})(.{12})', '\\1-\\2-\\3-\\4-\\5') END,
                '', '', '{}', 1, b.created, b.created + interval '1 second', b.created + interval '5 seconds',
                CASE WHEN b.g > %(n)s - 30 THEN NULL ELSE b.created + interval '95 seconds' END,
                CASE WHEN b.g > %(n)s - 30 THEN NULL ELSE b.created + interval '96 seconds' END,
                b.created + interval '90 seconds',
                CASE WHEN b.g > %(n)s - 30 THEN NULL WHEN b.r_status < 0.05 THEN 1 ELSE 0 END,
                CASE WHEN b.g > %(n)s - 30 THEN ''
                     WHEN b.r_status < 0.05 THEN (%(failures)s::text[])[1 + (b.g %% 5)] || ' (run ' || b.g || ')'
                     WHEN b.r_status < 0.065 THEN 'Cancelled by analyst' ELSE '' END
            FROM bench_runs b LEFT JOIN jobs_schedule s ON s.job_id = b.job_id
            ORDER BY b.g
        """, {"n": processes, "users": user_ids, "user_count": len(user_ids), "failures": FAILURES})
        say(f"build: {processes:,} processes in {time.perf_counter() - started:.0f} s")
        cur.execute("""
            INSERT INTO processes_task (process_id, name, sequence, status, started_at, finished_at, error, traceback)
            SELECT p.id, (%(steps)s::text[])[s], s,
                CASE WHEN s < 1 + p.id %% 9 THEN 'succeeded'
                     WHEN p.status = 'running' THEN 'running'
                     WHEN p.status IN ('failed', 'cancelled') THEN 'failed' ELSE 'succeeded' END,
                p.started_at + s * interval '10 seconds',
                CASE WHEN p.status = 'running' AND s = 1 + p.id %% 9 THEN NULL
                     ELSE p.started_at + s * interval '10 seconds' + interval '9 seconds' END,
                CASE WHEN p.status = 'failed' AND s = 1 + p.id %% 9 THEN p.failure_reason ELSE '' END, ''
            FROM processes_process p CROSS JOIN LATERAL generate_series(1, 1 + p.id %% 9) s
            WHERE p.status <> 'queued'
        """, {"steps": STEPS})
        say(f"build: tasks done at {time.perf_counter() - started:.0f} s")
        fill_rollups(cur)
        say(f"build: rollups done at {time.perf_counter() - started:.0f} s")
    connection.close()
    # Statistics and the visibility map, as a live database has them (autovacuum).
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    say(f"build: vacuumed at {time.perf_counter() - started:.0f} s")


def ids() -> dict[str, str]:
    """Values for the page placeholders, read from the built database."""
    from django.db.models import Count

    from jobs.models import Job, Schedule
    from processes.models import Process

    newest = Process.objects.order_by("-pk").values_list("pk", flat=True).first()
    mid = Process.objects.filter(pk__lte=newest // 2, executor="aws_batch").order_by("-pk").first()
    busy = Process.objects.filter(pk__gt=newest - 20_000).values("job_id").annotate(n=Count("pk")).order_by("-n")[0]
    quiet = (Job.objects.annotate(n=Count("processes")).filter(n__gt=0).order_by("n").values_list("pk", flat=True)
             .first())
    from django.utils import timezone

    now = timezone.now()
    return {
        "mid_process": str(mid.pk),
        "batch_job_id": mid.external_id,
        "pid": Process.objects.filter(executor="local", pk__lte=newest // 3).values_list("external_id", flat=True)
        .first().removeprefix("pid:"),
        "busy_job": str(busy["job_id"]),
        "quiet_job": str(quiet),
        "busy_schedule": str(Schedule.objects.get(job_id=busy["job_id"]).pk),
        "half_year_ago": (now - timedelta(days=182)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "month_start": now.replace(day=1).strftime("%Y-%m-%d"),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(env: dict) -> tuple[subprocess.Popen, str]:
    """gunicorn with run_all's web arguments (runner.management.commands.run_all), quiet."""
    from runner.management.commands.run_all import child_specs

    port = free_port()
    web = next(spec for spec in child_specs(port, "127.0.0.1") if spec.name == "web").command
    # No access log: drop the option and its file argument.
    cut = web.index("--access-logfile")
    command = web[:cut] + web[cut + 2:]
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    import requests

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(base + "/admin/login/", timeout=30)
            return server, base
        except (requests.ConnectionError, requests.Timeout):
            if server.poll() is not None:
                raise SystemExit("gunicorn exited: " + server.stderr.read().decode()[-2000:]) from None
            time.sleep(0.5)
    raise SystemExit("gunicorn did not answer within 120 s")


def login(base: str):
    import requests

    session = requests.Session()
    page = session.get(base + "/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(base + "/admin/login/?next=/admin/", data={
        "csrfmiddlewaretoken": token, "username": "bench", "password": PASSWORD, "next": "/admin/",
    }, headers={"Referer": base + "/admin/login/"})
    if "/admin/login/" in answer.url:
        raise SystemExit("could not log in to the admin")
    return session


def p95(samples: list[float]) -> float:
    """The 95th percentile by linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(samples)
    rank = 0.95 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def time_pages(session, base: str, pages, values: dict[str, str], requests_per_page: int) -> dict[str, dict]:
    results = {}
    for name, path, expect in pages:
        url = base + path.format(**values)
        answer = session.get(url)  # warm-up: templates, the plan cache
        if answer.status_code != 200:
            raise SystemExit(f"{name}: {url} answered {answer.status_code}: {answer.text[:500]}")
        if expect and expect.format(**values) not in answer.text:
            raise SystemExit(f"{name}: {url} does not show {expect.format(**values)!r}")
        samples = []
        for _ in range(requests_per_page):
            started = time.perf_counter()
            answer = session.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                raise SystemExit(f"{name}: {url} answered {answer.status_code}")
        results[name] = {"p95_ms": round(p95(samples), 1), "median_ms": round(sorted(samples)[len(samples) // 2], 1),
                         "bytes": len(answer.content)}
        say(f"page: {name:45s} p95 {results[name]['p95_ms']:8.1f} ms  median {results[name]['median_ms']:8.1f} ms"
            f"  {results[name]['bytes'] / 1024:7.0f} kB  {path.format(**values)}")
    return results


def purge_30_days(log_dir: Path) -> dict:
    """The oldest 30 days of the 365, as `purge_history --older-than 335d` deletes them."""
    from processes.models import Process
    from processes.retention import history_purge
    from runner.log_retention import process_logs_delete

    # A log file for each run of the first day, so log removal is part of the work measured.
    first_day = list(Process.objects.order_by("pk").values_list("pk", flat=True)[:2800])
    log_dir.mkdir(parents=True, exist_ok=True)
    for pk in first_day:
        (log_dir / f"process-{pk}.log").write_text("hello\n")
    report = history_purge(older_than=timedelta(days=335), batch_size=500, remove_logs=process_logs_delete)
    left = sum(1 for _ in log_dir.glob("process-*.log"))
    say(f"purge: {report.processes:,} processes and {report.tasks:,} tasks in {report.seconds:.1f} s "
        f"({report.rows / report.seconds:,.0f} rows/s, {report.batches} batches); {report.logs} logs removed, "
        f"{left} left")
    return {"purge_rows_per_s": round(report.rows / report.seconds), "purge_processes": report.processes,
            "purge_tasks": report.tasks, "purge_seconds": round(report.seconds, 1), "purge_logs_removed": report.logs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--page", action="append", default=[], help="Another page to time: name=/path")
    parser.add_argument("--keep", action="store_true", help="Keep the database (and reuse it if it exists).")
    parser.add_argument("--database", default=f"jtb_bench_history_{os.getpid()}")
    parser.add_argument("--no-purge", action="store_true",
                        help="Skip the purge (with --keep: time the pages again on the same history).")
    args = parser.parse_args()
    pages = PAGES + [(extra.split("=", 1)[0], extra.split("=", 1)[1], None) for extra in args.page]

    work = Path(tempfile.mkdtemp(prefix="jtb-history-"))
    env = {"JTB_DATA_DIR": str(work), "JTB_LOG_DIR": str(work / "logs"), "DEBUG": "false",
           "CELERY_BROKER_URL": "memory://localhost//", "JTB_CONSOLE_TRENDS_CACHE_SECONDS": "0"}
    server = None
    with bench_database(args.database, keep=args.keep, env=env) as fresh:
        try:
            import django

            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobtarget_batch.settings")
            django.setup()
            from django.core.management import call_command

            if fresh:
                call_command("migrate", verbosity=0)
                build(args.processes)
            values = ids()
            say(f"ids: {values}")
            server, base = serve(dict(os.environ))
            session = login(base)
            results = time_pages(session, base, pages, values, args.requests)
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            server = None
            purge = purge_30_days(work / "logs") if not args.no_purge else {"purge_rows_per_s": None}
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=60)
    timed = {name: result for name, result in results.items() if name != DETAIL_PAGE}
    slowest = max(timed, key=lambda name: timed[name]["p95_ms"])
    detail = results[DETAIL_PAGE]["p95_ms"]
    summary = {
        "slowest_p95_ms": timed[slowest]["p95_ms"],
        "detail_p95_ms": detail,
        "slowest_vs_detail": round(timed[slowest]["p95_ms"] / detail, 2),
        "pages": len(timed),
        "slowest_page": slowest,
        **purge,
        "processes": args.processes,
        "p95_ms": {name: result["p95_ms"] for name, result in results.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

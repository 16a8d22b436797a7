"""The PostgreSQL database a benchmark builds for itself: created (or reused with --keep), the
process environment pointed at it, dropped at the end; and the rollups filled set-based.

Shared by bench/history_scale.py, bench/console_dashboard.py and bench/schedule_scale.py.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

PG = "postgres://postgres@127.0.0.1:5432"


def admin_sql(statement: str, params=None):
    """One statement on the server's `postgres` database (CREATE / DROP DATABASE); its first row."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchone() if cursor.description else None


@contextmanager
def bench_database(name: str, *, keep: bool = False, env: dict | None = None) -> Iterator[bool]:
    """Point DATABASE_URL (and `env`) at database `name` for the block; yields whether it is new.

    With `keep`, an existing database of that name is reused as it is and left in place at the
    end (so a second run skips the build); without, it is made afresh and dropped at the end.
    """
    exists = admin_sql("SELECT 1 FROM pg_database WHERE datname = %s", [name]) is not None
    fresh = not (exists and keep)
    if fresh:
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin_sql(f'CREATE DATABASE "{name}"')
    # Settings refuse to start without a key when DEBUG is off (production settings): a throwaway one.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.update({**(env or {}), "DATABASE_URL": f"{PG}/{name}"})
    try:
        yield fresh
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # Django not set up yet: nothing to close
            pass
        if not keep:
            admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill_rollups(cursor) -> None:
    """ProcessHourly and ProcessTotal from the finalized history, in two set-based statements.

    What processes.rollup writes run by run at finalize, except that a run crossing an hour
    boundary counts its run time only in the hour it finished in (the benchmarks' runs last
    seconds to minutes); `manage.py rebuild_rollups` splits it exactly.
    """
    from processes.models import DURATION_BUCKET_FIELDS, DURATION_BUCKETS, WAIT_BUCKET_FIELDS, WAIT_BUCKETS

    counted = "status IN ('succeeded', 'failed', 'cancelled') AND finalized_at IS NOT NULL"
    duration = "extract(epoch FROM finished_at - started_at)"
    cursor.execute(f"""
        INSERT INTO processes_processhourly (hour, job_id, status, trigger, runs, timed_runs, duration_seconds,
            longest_seconds, busy_seconds, estimated_cost)
        SELECT date_trunc('hour', finished_at), job_id, status, trigger, count(*), count(started_at),
            coalesce(sum({duration}), 0), coalesce(max({duration}), 0),
            coalesce(sum(extract(epoch FROM finished_at - greatest(started_at, date_trunc('hour', finished_at)))), 0),
            coalesce(sum(estimated_cost), 0)
        FROM processes_process WHERE {counted} AND finished_at IS NOT NULL
        GROUP BY 1, 2, 3, 4
    """)
    ran = "started_at IS NOT NULL AND finished_at IS NOT NULL"
    buckets = [f"count(*) FILTER (WHERE {ran} AND {duration} <= {bound})" for bound in DURATION_BUCKETS] + [
        f"count(*) FILTER (WHERE started_at IS NOT NULL AND extract(epoch FROM started_at - created_at) <= {bound})"
        for bound in WAIT_BUCKETS
    ]
    cursor.execute(f"""
        INSERT INTO processes_processtotal (job_id, status, trigger, runs, timed_runs, duration_seconds, waited_runs,
            wait_seconds, {", ".join(DURATION_BUCKET_FIELDS + WAIT_BUCKET_FIELDS)})
        SELECT job_id, status, trigger, count(*), count(*) FILTER (WHERE {ran}),
            coalesce(sum({duration}) FILTER (WHERE {ran}), 0), count(started_at),
            coalesce(sum(extract(epoch FROM started_at - created_at)), 0), {", ".join(buckets)}
        FROM processes_process WHERE {counted}
        GROUP BY job_id, status, trigger
    """)

"""The container runner's claim, before Django is loaded.

In an AWS Batch container nobody has Django loaded: `manage.py run_process` would spend ~0.5 s
setting it up before the claim that must come before the template starts. So the runner makes
its first two statements with the database driver itself — claim the run (queued/submitted →
running, the same conditional UPDATE as processes.services.process_mark_running, which a test
keeps in agreement) and read what the run needs — starts the template, and only then loads
Django for everything else, as the local fast path does.

SQLite and PostgreSQL only; on any other backend, or any error, the caller falls back to the
Django path (`Runner.run`), which claims through the services with db_retry.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

# The statuses a runner may claim a run from (processes.services.process_mark_running).
CLAIMABLE_STATUSES = ("queued", "submitted")
RUNNING = "running"


@dataclass(frozen=True)
class ClaimedRun:
    claimed: bool
    status: str | None  # None: no such process
    job: str = ""
    attempt: int = 1
    snapshot: dict | None = None
    parameters: dict | None = None


def claim_direct(process_id: int) -> ClaimedRun | None:
    """Claim the run and read it in one transaction; None when this backend is not supported here."""
    database = settings.DATABASES["default"]
    engine = database["ENGINE"]
    if engine.endswith("sqlite3"):
        connection = sqlite3.connect(database["NAME"], timeout=30, isolation_level=None)
        # Django stores SQLite datetimes as naive UTC text.
        now, mark = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), "?"
        begin = "BEGIN IMMEDIATE"
    elif engine.endswith("postgresql"):
        import psycopg

        connection = psycopg.connect(
            host=database.get("HOST") or None, port=database.get("PORT") or None, dbname=database["NAME"],
            user=database.get("USER") or None, password=database.get("PASSWORD") or None, autocommit=True,
            connect_timeout=10,
        )
        now, mark, begin = datetime.now(UTC), "%s", "BEGIN"
    else:
        return None
    try:
        cursor = connection.cursor()
        cursor.execute(begin)
        cursor.execute(
            f"SELECT p.status, p.attempt, p.snapshot, p.parameters, j.name FROM processes_process p "
            f"JOIN jobs_job j ON j.id = p.job_id WHERE p.id = {mark}", [process_id],
        )
        row = cursor.fetchone()
        if row is None:
            cursor.execute("ROLLBACK")
            return ClaimedRun(claimed=False, status=None)
        status, attempt, snapshot, parameters, job = row
        claimable = ", ".join([mark] * len(CLAIMABLE_STATUSES))
        cursor.execute(
            f"UPDATE processes_process SET status = {mark}, started_at = {mark}, heartbeat_at = {mark} "
            f"WHERE id = {mark} AND status IN ({claimable})",
            [RUNNING, now, now, process_id, *CLAIMABLE_STATUSES],
        )
        claimed = cursor.rowcount == 1
        cursor.execute("COMMIT")
    finally:
        connection.close()
    return ClaimedRun(
        claimed=claimed, status=RUNNING if claimed else status, job=job, attempt=int(attempt),
        snapshot=_json(snapshot), parameters=_json(parameters),
    )


def _json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value

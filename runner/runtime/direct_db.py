"""The container runner's claim, before Django is loaded.

In an AWS Batch container nobody has Django loaded: `manage.py run_process` would spend ~0.5 s
setting it up before the claim that must come before the template starts. So the runner makes
its first statements itself — SQLite through sqlite3, PostgreSQL through libpq (runner/libpq.py:
psycopg's imports alone cost ~50 ms) — to claim the run (queued/submitted →
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

from jobtarget_batch.conf import settings

# The statuses a runner may claim a run from (processes.services.process_mark_running).
CLAIMABLE_STATUSES = ("queued", "submitted")
RUNNING = "running"
# libpq connection keywords a DATABASE_URL may carry in OPTIONS (e.g. ?sslmode=verify-full).
LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "target_session_attrs")


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
        connection = _SqliteConnection(database["NAME"])
        # Django stores SQLite datetimes as naive UTC text.
        now, begin = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), "BEGIN IMMEDIATE"
    elif engine.endswith("postgresql"):
        from runner.libpq import Connection

        options = database.get("OPTIONS") or {}
        connection = Connection(
            host=database.get("HOST"), port=database.get("PORT"), dbname=database["NAME"],
            user=database.get("USER"), password=database.get("PASSWORD"), connect_timeout=10,
            **{key: options[key] for key in LIBPQ_OPTIONS if key in options},
        )
        now, begin = datetime.now(UTC).isoformat(), "BEGIN"
    else:
        return None
    try:
        connection.execute(begin)
        rows, _ = connection.execute(
            "SELECT p.status, p.attempt, p.snapshot, p.parameters, j.name FROM processes_process p "
            "JOIN jobs_job j ON j.id = p.job_id WHERE p.id = %s", [process_id],
        )
        if not rows:
            connection.execute("ROLLBACK")
            return ClaimedRun(claimed=False, status=None)
        status, attempt, snapshot, parameters, job = rows[0]
        claimable = ", ".join(["%s"] * len(CLAIMABLE_STATUSES))
        _, updated = connection.execute(
            "UPDATE processes_process SET status = %s, started_at = %s, heartbeat_at = %s "
            f"WHERE id = %s AND status IN ({claimable})",
            [RUNNING, now, now, process_id, *CLAIMABLE_STATUSES],
        )
        claimed = updated == 1
        connection.execute("COMMIT")
    finally:
        connection.close()
    return ClaimedRun(
        claimed=claimed, status=RUNNING if claimed else status, job=job, attempt=int(attempt),
        snapshot=_json(snapshot), parameters=_json(parameters),
    )


class _SqliteConnection:
    """sqlite3 behind the same two calls as runner.libpq.Connection (`%s` placeholders)."""

    def __init__(self, name: str) -> None:
        self._connection = sqlite3.connect(name, timeout=30, isolation_level=None)

    def execute(self, sql: str, params: list | tuple = ()) -> tuple[list[tuple], int]:
        cursor = self._connection.execute(sql.replace("%s", "?"), params)
        return cursor.fetchall(), cursor.rowcount

    def close(self) -> None:
        self._connection.close()


def _json(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value

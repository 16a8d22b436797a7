"""What the runner writes to the database: the template's steps, the heartbeat and the outcome.

Every read and write goes through `db_retry` (one connection at most, held only while writing,
retried through an outage) and is safe to repeat. Step times are the times the child observed,
carried in its events, not the moment the write reached the database.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction

from processes import services
from processes.models import Process, TaskStatus
from runner.dbretry import db_retry
from runner.outcomes import CANCELLED, FAILED, ChildReport, Outcome

logger = logging.getLogger("runner")
INSTALL_TASK = "install modules"


def _event_time(event: dict) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(event["at"]), tz=UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


class Recorder:
    def __init__(self, process_id: int) -> None:
        self.process_id = process_id
        self.report = ChildReport()
        # 1 once the run recorded an "install modules" step: the template's steps come after it.
        self.sequence_offset = 0
        self._stop_heartbeat = threading.Event()

    # --- the template's events ------------------------------------------------------------------
    def record_lines(self, lines: list[bytes]) -> None:
        """Record the events read together in one short transaction: one connection, not one per
        event, when hundreds of runners share a limited number of database connections."""
        writes = [self._event_write(json.loads(line)) for line in lines if line.strip()]
        writes = [write for write in writes if write is not None]
        if writes:
            # Each write is idempotent (get_or_create on the step, conditional update), so the
            # whole group can be retried after a lost connection.
            db_retry(lambda: _apply_together(writes))

    def _event_write(self, event: dict):
        kind = event.get("event")
        at = _event_time(event)
        if kind == "task_start":
            sequence = int(event["sequence"]) + self.sequence_offset
            self.report.task_names[sequence] = event["name"]
            return lambda: services.task_start(
                process_id=self.process_id, sequence=sequence, name=event["name"], at=at
            )
        if kind == "task_end":
            sequence = int(event["sequence"]) + self.sequence_offset
            if event["status"] == "failed":
                self.report.failed_tasks.append((self.report.task_names.get(sequence, "?"), event.get("error", "")))
            return lambda: services.task_finish(
                process_id=self.process_id, sequence=sequence, status=event["status"],
                error=event.get("error", ""), traceback=event.get("traceback", ""), at=at,
            )
        if kind == "error":
            self.report.error = event
        return None

    # --- the module environment -------------------------------------------------------------------
    def install_started(self) -> None:
        self.sequence_offset = 1
        db_retry(lambda: services.task_start(process_id=self.process_id, sequence=1, name=INSTALL_TASK))

    def install_finished(self, *, error: str = "") -> None:
        status = TaskStatus.FAILED if error else TaskStatus.SUCCEEDED
        db_retry(lambda: services.task_finish(process_id=self.process_id, sequence=1, status=status, error=error))

    # --- the end ---------------------------------------------------------------------------------
    def interruption_outcome(self, outcome: Outcome, signal_name: str) -> Outcome:
        process = db_retry(
            lambda: Process.objects.filter(pk=self.process_id).only("cancel_requested_at", "failure_reason").first()
        )
        if process is not None and process.cancel_requested_at:
            return Outcome(CANCELLED, process.failure_reason or "Cancelled.", outcome.exit_code)
        return Outcome(FAILED, f"Interrupted ({signal_name}).", outcome.exit_code)

    def finish(self, outcome: Outcome) -> None:
        # Results only: the control plane finds the run finished and finalizes it.
        db_retry(lambda: services.process_finish(
            process_id=self.process_id, status=outcome.status, failure_reason=outcome.reason,
            exit_code=outcome.exit_code, finalize_later=False,
        ))

    # --- heartbeat and cancel requests --------------------------------------------------------------
    def heartbeat_start(self, *, on_cancel: Callable[[], None]) -> None:
        """Beat every JTB_HEARTBEAT_SECONDS and look for a cancel request every
        JTB_CANCEL_CHECK_SECONDS; `on_cancel` is called once when one is found."""
        threading.Thread(target=self._beat, args=(on_cancel,), name="heartbeat", daemon=True).start()

    def heartbeat_stop(self) -> None:
        self._stop_heartbeat.set()

    def _beat(self, on_cancel: Callable[[], None]) -> None:
        check_every = min(settings.JTB_CANCEL_CHECK_SECONDS, settings.JTB_HEARTBEAT_SECONDS)
        next_beat = time.monotonic() + settings.JTB_HEARTBEAT_SECONDS
        cancel_seen = False
        while not self._stop_heartbeat.wait(check_every):
            try:
                # One attempt each: a missed beat or check is harmless, the next one may get through.
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + settings.JTB_HEARTBEAT_SECONDS
                    db_retry(lambda: services.process_heartbeat(process_id=self.process_id), retries=False)
                if not cancel_seen and db_retry(
                    lambda: services.process_cancel_requested(process_id=self.process_id), retries=False
                ):
                    cancel_seen = True
                    on_cancel()
            except Exception:
                logger.warning("heartbeat failed", exc_info=True)


def _apply_together(writes) -> None:
    with transaction.atomic():
        for write in writes:
            write()

"""Run outcomes for the terminal: one line per run that finished since the last look."""

from __future__ import annotations

from datetime import timedelta

from django.db import close_old_connections
from django.db.models import Max, Min

from processes.models import ACTIVE_STATUSES, FINISHED_STATUSES, Process

MARGIN = timedelta(seconds=10)


class OutcomeFeed:
    """Finished runs, read by id range from the lowest run still active: the (status, -id) index
    (process_status_id_idx) serves both queries, however long the history."""

    def __init__(self):
        self.watermark = self._lowest_unfinished_id()
        self.since = None
        self.reported: set[int] = set()

    @staticmethod
    def _lowest_unfinished_id() -> int:
        active = Process.objects.filter(status__in=ACTIVE_STATUSES).aggregate(low=Min("id"))["low"]
        if active is not None:
            return active
        return (Process.objects.aggregate(high=Max("id"))["high"] or 0) + 1

    def lines(self) -> list[str]:
        try:
            query = Process.objects.filter(id__gte=self.watermark, status__in=FINISHED_STATUSES)
            if self.since is not None:
                # A margin for runs committed a little after a later one was stamped finished.
                query = query.filter(finished_at__gte=self.since - MARGIN)
            finished = [
                process for process in query.select_related("job").order_by("finished_at", "id").only(
                    "id", "status", "started_at", "finished_at", "created_at", "failure_reason", "job__name")
                if process.pk not in self.reported
            ]
            stamps = [process.finished_at for process in finished if process.finished_at]
            if stamps:
                self.since = max(stamps)
            self.reported.update(process.pk for process in finished)
            self.watermark = self._lowest_unfinished_id()
            # Only ids a later query can return again are kept (bounded even under a long-running run).
            self.reported = {pk for pk in self.reported if pk >= self.watermark}
            if len(self.reported) > 10_000:
                self.reported = set(sorted(self.reported)[-5_000:])
            return [outcome_line(process) for process in finished]
        finally:
            close_old_connections()


def outcome_line(process: Process) -> str:
    began = process.started_at or process.created_at
    took = f" in {(process.finished_at - began).total_seconds():.1f} s" if process.finished_at and began else ""
    line = f"Run {process.pk} ({process.job.name}) {process.status}{took}"
    if process.status != "succeeded" and process.failure_reason:
        reason = process.failure_reason.strip().splitlines()[-1]
        line += f": {reason[:200]}"
    return line

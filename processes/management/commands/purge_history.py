"""`manage.py purge_history --older-than 90d [--keep-failed 365d] [--dry-run]`: retention by hand.

The same purge runs daily from beat when JTB_PURGE_OLDER_THAN_DAYS is set (processes.retention).
"""

from __future__ import annotations

import re
import sys
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from processes.retention import history_purge
from runner.log_retention import process_logs_delete

UNITS = {"d": "days", "h": "hours", "w": "weeks"}
BAR_WIDTH = 30


def parse_age(text: str, *, option: str) -> timedelta:
    """`90d`, `36h`, `2w` or a plain number of days, as a timedelta."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*([dhw]?)\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise CommandError(f"{option} takes an age such as 90d, 36h or 2w (a positive number), not {text!r}.")
    return timedelta(**{UNITS[match.group(2) or "d"]: int(match.group(1))})


class Command(BaseCommand):
    help = ("Delete finished runs older than an age, with their tasks and logs, in small batches. Active runs "
            "and the latest run of each job are kept.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="Delete runs created before this age, e.g. 90d.")
        parser.add_argument("--keep-failed", help="Keep failed runs until this age instead, e.g. 365d.")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")
        parser.add_argument("--batch-size", type=int, default=settings.JTB_PURGE_BATCH,
                            help=f"Runs deleted per transaction (default {settings.JTB_PURGE_BATCH}).")
        parser.add_argument("--cloudwatch-logs", action="store_true", default=settings.JTB_PURGE_CLOUDWATCH_LOGS,
                            help="Also delete the CloudWatch log streams of purged AWS Batch runs.")

    def handle(self, *args, older_than: str, keep_failed: str | None, dry_run: bool, batch_size: int,
               cloudwatch_logs: bool, **options):
        age = parse_age(older_than, option="--older-than")
        keep = parse_age(keep_failed, option="--keep-failed") if keep_failed else None
        if keep is not None and keep < age:
            raise CommandError("--keep-failed must be at least --older-than (failed runs are kept longer, not less).")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        terminal = self.stdout.isatty() if hasattr(self.stdout, "isatty") else sys.stdout.isatty()
        report = history_purge(
            older_than=age, keep_failed=keep, dry_run=dry_run, batch_size=batch_size,
            remove_logs=lambda runs: process_logs_delete(runs, cloudwatch=cloudwatch_logs),
            progress=self._bar if terminal else None, count_first=terminal,
        )
        if terminal and report.batches:
            self.stdout.write("")
        verb = "Would delete" if dry_run else "Deleted"
        line = f"{verb} {report.processes:,} runs and {report.tasks:,} tasks"
        if not dry_run:
            rate = report.rows / report.seconds if report.seconds else 0
            line += f" and {report.logs:,} logs in {report.seconds:.1f} s ({rate:,.0f} rows/s)"
        self.stdout.write(line + ".")
        for error in report.log_errors:
            self.stderr.write(f"Some logs could not be removed: {error}")

    def _bar(self, done: int, total: int | None) -> None:
        total = max(total or 0, done, 1)
        filled = BAR_WIDTH * done // total
        self.stdout.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * done // total:3d}% "
                          f"{done:,}/{total:,} runs", ending="")
        self.stdout.flush()

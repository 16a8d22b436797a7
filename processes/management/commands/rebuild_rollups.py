"""`manage.py rebuild_rollups`: recount the run rollups (ProcessHourly, ProcessTotal) from the history.

Run it once after upgrading to the version that added them (migration processes 0010 creates
them empty; runs finalized since are counted as they end), or to repair them. It reads the
history one day per transaction; stop the control plane (workers, beat) while it runs, or a run
finalized meanwhile may be counted twice or missed. Runs already purged are not in the history
and cannot be recounted.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from processes.rollup import rollups_rebuild


class Command(BaseCommand):
    help = "Recount the hourly and all-time run rollups that the console and /metrics read, from the history."

    def handle(self, *args, **options):
        def progress(done: int, total: int) -> None:
            if done == total or done % 30 == 0:
                self.stdout.write(f"  {done}/{total} days")

        report = rollups_rebuild(progress=progress)
        self.stdout.write(self.style.SUCCESS(
            f"Counted {report.runs:,} runs over {report.days} days into {report.hourly_rows:,} hourly rows "
            f"and {report.total_rows:,} totals in {report.seconds:.1f} s."
        ))

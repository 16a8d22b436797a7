"""`manage.py schedules_sync`: repair drift between our EventBridge schedules and AWS, both ways."""

from django.core.management.base import BaseCommand, CommandError

from jobs.scheduling.eventbridge import schedules_remote_sync_all


class Command(BaseCommand):
    help = (
        "Create or update the EventBridge Scheduler schedule of every schedule with the eventbridge "
        "driver, and delete remote schedules (with our name prefix) that match none."
    )

    def handle(self, *args, **options):
        report = schedules_remote_sync_all()
        for outcome in ("created", "updated", "unchanged", "deleted", "absent", "failed"):
            ids = report.outcomes.get(outcome, [])
            if ids:
                shown = ", ".join(str(i) for i in ids[:20]) + (" ..." if len(ids) > 20 else "")
                self.stdout.write(f"{outcome}: {len(ids)} ({shown})")
        if not report.outcomes:
            self.stdout.write("Nothing to sync.")
        if report.count("failed"):
            raise CommandError(
                f"{report.count('failed')} schedule(s) failed to sync; their error is shown in the admin."
            )

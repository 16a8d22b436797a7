"""`manage.py batch_sync`: register the runner's AWS Batch job definition(s) when they changed.

Run on every deploy: a new revision appears only when the image, roles, secrets, log settings or
platform settings differ from the latest active revision.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from runner.aws.batch import BatchError, BatchThrottled, batch_job_definition_sync


class Command(BaseCommand):
    help = "Register or update the runner's AWS Batch job definition (one per platform in JTB_BATCH_PLATFORMS)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--platform", action="append", choices=["EC2", "FARGATE"],
            help="Only this platform (repeatable); default: JTB_BATCH_PLATFORMS.",
        )

    def handle(self, *args, platform=None, **options):
        platforms = platform or settings.JTB_BATCH_PLATFORMS
        for name in platforms:
            try:
                revision, registered = batch_job_definition_sync(platform=name)
            except (BatchError, BatchThrottled) as exc:
                raise CommandError(str(exc)) from None
            verb = "registered" if registered else "unchanged"
            self.stdout.write(f"{name}: {revision} {verb}")

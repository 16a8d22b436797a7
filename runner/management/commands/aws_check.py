"""`manage.py aws_check`: the read-only AWS preflight (runner.aws_check), one line per check with the fix."""

from django.core.management.base import BaseCommand, CommandError

from runner.aws_check import aws_checks_run


class Command(BaseCommand):
    help = "Check, read-only, every AWS resource the settings point at; exits non-zero when one fails."

    def handle(self, *args, **options):
        results = aws_checks_run()
        for result in results:
            self.stdout.write(result.line())
        failed = [result for result in results if not result.ok]
        if failed:
            raise CommandError(f"{len(failed)} of {len(results)} checks failed.")
        self.stdout.write(f"All {len(results)} checks passed.")

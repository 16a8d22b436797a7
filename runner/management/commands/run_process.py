"""`manage.py run_process <id>`: run one process; the container's and the local executor's command."""

from django.core.management.base import BaseCommand, CommandError

from runner.runtime.runner import run


class Command(BaseCommand):
    help = "Run one process: fetch its template, install its modules, run main(ctx), record the result."

    def add_arguments(self, parser):
        parser.add_argument("process_id", type=int)

    def handle(self, *args, process_id: int, **options):
        code = run(process_id)
        if code == 2:
            raise CommandError(f"Process {process_id} does not exist.")
        if code:
            raise SystemExit(code)

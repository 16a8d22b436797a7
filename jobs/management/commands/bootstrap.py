"""`manage.py bootstrap`: an admin user and the example jobs, for a first start on a new machine.

Safe to run on every start: it creates what is missing and changes nothing that exists.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from jobs.models import ConcurrencyPolicy, Job
from jobs.services import job_save

EXAMPLE_JOBS = [
    {
        "name": "Hello world",
        "description": "Greets someone in two steps. Try it with the parameters {\"name\": \"Ada\"}.",
        "template": "examples/hello.py",
        "parameters": {"name": "world"},
        "memory_mib": 512,
        "timeout_seconds": 300,
    },
    {
        "name": "Sales ETL (fails at transform)",
        "description": "Extract, transform, load — the transform step raises on a bad row, so the run fails there "
        "and the load step never starts.",
        "template": "examples/etl_fails.py",
        "memory_mib": 512,
        "timeout_seconds": 300,
    },
    {
        "name": "Slow report",
        "description": "Takes about a minute in four steps; only one run at a time (others wait their turn).",
        "template": "examples/slow_report.py",
        "parameters": {"seconds": 15},
        "memory_mib": 512,
        "timeout_seconds": 600,
        "concurrency_policy": ConcurrencyPolicy.QUEUE,
    },
]


class Command(BaseCommand):
    help = "Create an admin user (if none exists) and the example jobs (if missing)."

    def add_arguments(self, parser):
        parser.add_argument("--no-examples", action="store_true", help="Do not create the example jobs.")

    # (username, generated password or None) when this run created the admin user: `run_all --setup`
    # shows them in its banner.
    created_admin: tuple[str, str | None] | None = None

    def handle(self, *args, no_examples: bool = False, **options):
        self._admin_user()
        if not no_examples:
            self._example_jobs()

    def _admin_user(self) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        User.objects.create_superuser(username=username, email=email, password=password)
        self.created_admin = (username, password if generated else None)
        if generated:
            # Printed once: it is not stored anywhere else.
            self.stdout.write(self.style.WARNING(
                f"Created admin user {username!r} with password: {password}\n"
                "Write it down; set DJANGO_SUPERUSER_PASSWORD to choose your own on a new machine."
            ))
        else:
            self.stdout.write(f"Created admin user {username!r}.")

    def _example_jobs(self) -> None:
        created = 0
        with transaction.atomic():
            for fields in EXAMPLE_JOBS:
                if Job.objects.filter(name=fields["name"]).exists():
                    continue
                job_save(job=Job(**fields), reason="bootstrap")
                created += 1
        if created:
            self.stdout.write(f"Created {created} example job(s).")

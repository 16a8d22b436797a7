"""The container image's entrypoint: one image runs the web server, the worker, beat and the runner.

    docker run IMAGE web | worker | beat | migrate | batch_sync | run_process <id>

Anything else is run as given, which is how AWS Batch starts the runner: the job definition's
command `python manage.py run_process <id>` arrives here as arguments. On a Batch retry
(AWS_BATCH_JOB_ATTEMPT > 1, after a Spot reclaim) the run is first handed to the new attempt so
its runner can claim it.
"""

from __future__ import annotations

import os
import sys

MANAGE = ["python", "manage.py"]
COMMANDS = {
    "web": ["gunicorn", "jobtarget_batch.wsgi:application", "--bind", "0.0.0.0:{PORT}", "--workers", "{WEB_CONCURRENCY}",
            "--access-logfile", "-"],
    "worker": ["celery", "-A", "jobtarget_batch", "worker", "--pool", "threads", "--concurrency", "{WORKER_CONCURRENCY}",
               "--loglevel", "INFO"],
    "beat": ["celery", "-A", "jobtarget_batch", "beat", "--loglevel", "INFO"],
    "migrate": [*MANAGE, "migrate", "--no-input"],
    "batch_sync": [*MANAGE, "batch_sync"],
    "run_process": [*MANAGE, "run_process"],
}
DEFAULTS = {"PORT": "8000", "WEB_CONCURRENCY": "3", "WORKER_CONCURRENCY": "8"}


def command_for(args: list[str], environ: dict[str, str]) -> list[str]:
    if not args:
        args = ["web"]
    template = COMMANDS.get(args[0])
    if template is None:
        return list(args)
    values = {**DEFAULTS, **{name: environ[name] for name in DEFAULTS if environ.get(name)}}
    return [part.format(**values) for part in template] + list(args[1:])


def runner_process_id(command: list[str]) -> int | None:
    if command[:3] == [*MANAGE, "run_process"] and len(command) > 3 and command[3].isdigit():
        return int(command[3])
    return None


def prepare_attempt(process_id: int, attempt: int) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobtarget_batch.settings")
    django.setup()
    from runner.executors.aws_batch.tracking import batch_attempt_restart

    batch_attempt_restart(process_id=process_id, attempt=attempt)


def main() -> None:
    command = command_for(sys.argv[1:], dict(os.environ))
    process_id = runner_process_id(command)
    attempt = os.environ.get("AWS_BATCH_JOB_ATTEMPT", "1")
    if process_id is not None and attempt.isdigit() and int(attempt) > 1:
        prepare_attempt(process_id, int(attempt))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Django's command-line utility for JobTarget Batch."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobtarget_batch.settings")
    arguments = sys.argv[1:]
    if len(arguments) == 2 and arguments[0] == "run_process" and arguments[1].isdigit():
        # The container's runner starts the template before Django loads (runner/runtime/direct_db.py):
        # the same command, without ~0.5 s of Django start-up in front of every run.
        from runner.runtime.runner import run_container

        code = run_container(int(arguments[1]))
        if code == 2:
            sys.stderr.write(f"CommandError: Process {arguments[1]} does not exist.\n")
            sys.exit(1)
        sys.exit(code)
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - loads the settings
    except ImproperlyConfigured as exc:
        # Django's command line would swallow this and fail later with "Models aren't loaded yet".
        sys.stderr.write(f"Configuration error: {exc}\n")
        sys.exit(1)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

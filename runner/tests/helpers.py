"""Helpers for tests that run real runners: templates on disk, jobs, and `manage.py run_process`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from django.conf import settings

from jobs.models import Job
from processes.models import Process, Trigger
from processes.services import process_start

REPO = Path(settings.BASE_DIR)


def write_template(root: Path, name: str, source: str) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return name


def start(job: Job, **kwargs) -> Process:
    return process_start(job=job, trigger=kwargs.pop("trigger", Trigger.MANUAL), **kwargs)


def run_process(process: Process, env: dict, *, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "run_process", str(process.pk)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )

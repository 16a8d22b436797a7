"""Helpers for the runner's own tests (test_runner_*): jobs from template text, runners as subprocesses.

Named test_runner_* to sit with the tests it serves; it holds no tests itself.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from django.conf import settings

from jobs.models import Job
from processes.models import Process, Trigger
from processes.services import process_start

REPO = Path(settings.BASE_DIR)


def make_job(root: Path, source: str, *, name: str = "runner job", **fields) -> Job:
    (root / f"{name.replace(' ', '_')}.py").write_text(textwrap.dedent(source))
    fields.setdefault("memory_mib", 512)
    return Job.objects.create(name=name, template=f"{name.replace(' ', '_')}.py", **fields)


def start(job: Job, parameters: dict | None = None) -> Process:
    return process_start(job=job, trigger=Trigger.MANUAL, parameters=parameters)


def runner_popen(process: Process, env: dict) -> subprocess.Popen:
    """The runner as AWS Batch starts it: it claims the run itself (`run_process`'s code path)."""
    return subprocess.Popen(
        [sys.executable, "-m", "runner.runtime", str(process.pk)], env=env, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def runner_run(process: Process, env: dict, *, timeout: float = 180) -> str:
    """Run the runner to the end; its output (the process log)."""
    runner = runner_popen(process, env)
    output, _ = runner.communicate(timeout=timeout)
    return output


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")

"""What tests share: the one job factory, templates on disk, starting and running runs, waiting.

The `make_job` fixture in conftest.py hands out `make_job` below; tests that are not fixtures'
users import it from here.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from django.conf import settings

from jobs.models import Job
from jobs.services import job_save
from processes.models import Process, Trigger
from processes.services import process_start

REPO = Path(settings.BASE_DIR)
_numbers = itertools.count(1)


def write_template(root: Path, name: str, source: str) -> str:
    """Write a template under `root`; returns its path relative to the template root."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return name


def make_job(*, source: str | None = None, root: Path | None = None, **fields) -> Job:
    """A job saved through the same service as the admin and the API (validated), with a unique name.

    With `source`, its template is written to `root` (default: the template root in settings) and
    the job gets a small memory limit fit for test runners.
    """
    fields.setdefault("name", f"job {next(_numbers)}")
    if source is not None:
        filename = re.sub(r"[^A-Za-z0-9]+", "_", fields["name"]).strip("_") + ".py"
        fields.setdefault("template", write_template(Path(root or settings.JTB_TEMPLATE_ROOT), filename, source))
        fields.setdefault("memory_mib", 512)
    fields.setdefault("template", "examples/hello.py")
    return job_save(job=Job(**fields))


def start(job: Job, parameters: dict | None = None, **kwargs) -> Process:
    return process_start(job=job, trigger=kwargs.pop("trigger", Trigger.MANUAL), parameters=parameters, **kwargs)


def count_finished(process: Process) -> None:
    """Count a finished run written straight to the database in the rollups, as the control
    plane's finalize does (claims it, then processes.rollup.rollup_record_run)."""
    from django.utils import timezone

    from processes.models import FINISHED_STATUSES
    from processes.rollup import rollup_record_run

    if Process.objects.filter(pk=process.pk, status__in=FINISHED_STATUSES, finalized_at__isnull=True).update(
        finalized_at=timezone.now()
    ):
        rollup_record_run(process_id=process.pk)


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


def run_process(process: Process, env: dict, *, timeout: float = 120) -> subprocess.CompletedProcess:
    """`manage.py run_process <id>`, the container's command."""
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "run_process", str(process.pk)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


def template_outbox(tmp_path: Path) -> Path:
    """A folder the test's templates may write to (pid files, stamps), made before the run starts.

    The template's sandbox (runner/sandbox.py) lets it create files only in folders that existed
    when it started and are not the control plane's: `tmp_path` holds this test's work and log
    folders, so a template cannot create a file directly in it."""
    folder = tmp_path / "outbox"
    folder.mkdir(exist_ok=True)
    return folder


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll `predicate` until it returns something true (returned) or `timeout` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def admin_sign_in(page, base_url: str, username: str, password: str, next_path: str = "/admin/") -> None:
    """Sign in through the admin's login form in a Playwright page and land on `next_path`."""
    page.goto(f"{base_url}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_load_state()

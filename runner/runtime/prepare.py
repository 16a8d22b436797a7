"""Preparing a run's work folder from its Process (Django loaded): the spec, template and parameters.

Called by the local executor's worker after it claimed the run, and by the container's runner
after its own claim, so both paths start the template from the same files.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from django.conf import settings

from processes.models import Process
from runner.environments import environment_ready
from runner.runtime.spec import CHILD_FILE, PARAMS_FILE, TEMPLATE_FILE, RunSpec
from runner.template_source import TemplateFetchError, template_fetch

CHILD_SCRIPT = Path(__file__).resolve().parent.parent / "child.py"


def run_prepare(*, process_id: int) -> Path:
    """A fresh work folder holding the run's spec, template, child script and parameters."""
    process = Process.objects.select_related("job").get(pk=process_id)
    snapshot = process.snapshot
    workdir = Path(settings.JTB_WORK_DIR) / f"process-{process.pk}-{uuid.uuid4().hex[:8]}"
    workdir.mkdir(parents=True, exist_ok=True)
    modules = list(snapshot.get("python_modules") or [])
    python = template_error = None
    try:
        source = template_fetch(snapshot["template"])
    except TemplateFetchError as exc:
        template_error = str(exc)
    else:
        (workdir / TEMPLATE_FILE).write_text(source, encoding="utf-8")
        shutil.copyfile(CHILD_SCRIPT, workdir / CHILD_FILE)
        (workdir / PARAMS_FILE).write_text(json.dumps(process.parameters), encoding="utf-8")
        ready = environment_ready(modules)
        python = str(ready.python) if ready else None
    RunSpec(
        process_id=process.pk, job=process.job.name, attempt=process.attempt, template=snapshot["template"],
        timeout_seconds=int(snapshot["timeout_seconds"]), memory_mib=int(snapshot["memory_mib"]),
        kill_grace_seconds=settings.JTB_KILL_GRACE_SECONDS, modules=modules,
        environment=dict(snapshot.get("environment") or {}), python=python, template_error=template_error,
    ).write(workdir)
    return workdir

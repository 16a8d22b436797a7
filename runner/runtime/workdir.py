"""A run's work folder: its spec, template, child script and parameters.

Made from the run's record (job settings frozen at start, parameters), without the ORM, so that the
container's runner can make it before Django is loaded, as the local executor's worker makes it
with Django loaded (prepare.py): one way to lay out a run, whoever starts it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from jobtarget_batch.conf import settings
from runner.environments import environment_ready
from runner.runtime.spec import CHILD_FILE, PARAMS_FILE, TEMPLATE_FILE, RunSpec
from runner.template_source import TemplateFetchError, template_fetch

CHILD_SCRIPT = Path(__file__).resolve().parent.parent / "child.py"


def workdir_prepare(*, process_id: int, job: str, attempt: int, snapshot: dict, parameters: dict) -> Path:
    """A fresh work folder holding the run's spec, template, child script and parameters."""
    workdir = Path(settings.JTB_WORK_DIR) / f"process-{process_id}-{os.urandom(4).hex()}"
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
        (workdir / PARAMS_FILE).write_text(json.dumps(parameters), encoding="utf-8")
        ready = environment_ready(modules)
        python = str(ready.python) if ready else None
    RunSpec(
        process_id=process_id, job=job, attempt=attempt, template=snapshot["template"],
        timeout_seconds=int(snapshot["timeout_seconds"]), memory_mib=int(snapshot["memory_mib"]),
        kill_grace_seconds=settings.JTB_KILL_GRACE_SECONDS, modules=modules,
        environment=dict(snapshot.get("environment") or {}), python=python, template_error=template_error,
    ).write(workdir)
    return workdir

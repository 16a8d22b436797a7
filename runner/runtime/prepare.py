"""Preparing a run's work folder from its Process through the ORM (the local executor's worker,
and the container's runner when it cannot claim before Django: see direct_db.py)."""

from __future__ import annotations

from pathlib import Path

from processes.models import Process
from runner.runtime.workdir import workdir_prepare


def run_prepare(*, process_id: int) -> Path:
    process = Process.objects.select_related("job").get(pk=process_id)
    return workdir_prepare(
        process_id=process.pk, job=process.job.name, attempt=process.attempt, snapshot=process.snapshot,
        parameters=process.parameters,
    )

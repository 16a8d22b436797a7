"""What the live pages poll: a small summary of runs that changes whenever their page would.

The process page and the process list ask for it every two seconds while a run they show is
active, and fetch the page itself again only when the `version` changed. Two queries for a process,
two for a list page.
"""

from __future__ import annotations

from django.utils import timezone

from processes.models import ACTIVE_STATUSES, Process, Task


def _version(process: Process, tasks: list[tuple[int, str]]) -> str:
    steps = ",".join(f"{sequence}:{status}" for sequence, status in tasks)
    return f"{process.status}|{int(process.held)}|{process.executor_state}|{steps}"


def _state(process: Process, tasks: list[tuple[int, str]]) -> dict:
    return {
        "id": process.pk,
        "status": process.status,
        "status_label": process.get_status_display(),
        "active": process.status in ACTIVE_STATUSES,
        "started_at": process.started_at.isoformat() if process.started_at else None,
        "finished_at": process.finished_at.isoformat() if process.finished_at else None,
        "version": _version(process, tasks),
    }


_FIELDS = ("pk", "status", "held", "executor_state", "started_at", "finished_at")


def process_live_state(*, process_id: int) -> dict | None:
    process = Process.objects.filter(pk=process_id).only(*_FIELDS).first()
    if process is None:
        return None
    tasks = list(Task.objects.filter(process_id=process_id).order_by("sequence").values_list("sequence", "status"))
    return {**_state(process, tasks), "now": timezone.now().isoformat()}


def processes_live_state(*, process_ids: list[int]) -> dict:
    """The runs of one list page (at most a page's worth of ids): whether any is active, and a version."""
    processes = list(Process.objects.filter(pk__in=process_ids[:200]).only(*_FIELDS).order_by("pk"))
    tasks: dict[int, list[tuple[int, str]]] = {process.pk: [] for process in processes}
    for process_id, sequence, status in (
        Task.objects.filter(process_id__in=list(tasks)).order_by("process_id", "sequence")
        .values_list("process_id", "sequence", "status")
    ):
        tasks[process_id].append((sequence, status))
    states = [_state(process, tasks[process.pk]) for process in processes]
    return {
        "active": any(state["active"] for state in states),
        "version": ";".join(f"{state['id']}={state['version']}" for state in states),
        "processes": states,
        "now": timezone.now().isoformat(),
    }

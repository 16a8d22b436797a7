"""Search of the run history that stays index-backed at millions of runs and tasks.

What one search box term finds in processes (each branch reads an index, never the whole table):
- `123` or `#123`: the process with that id (primary key), or the run whose executor id is that.
- any term: the process whose executor id is exactly the term, e.g. `pid:4242` or an AWS Batch
  job id (process_external_id_idx).
- other text: runs of every job whose name contains it — the small jobs table is searched first and its
  ids (at most SEARCH_MAX_JOBS) become `job_id IN (...)` on process_job_newest_idx; runs started by
  every user whose username contains it, the same way (process_user_newest_idx); and failed or
  cancelled runs whose failure reason contains it, among the newest `JTB_SEARCH_TEXT_WINDOW` runs
  only (an id range on process_status_id_idx), since a reason is free text no index can serve.
  Not for a term shaped like an id (a number, `pid:N`, a UUID): reading reasons would only add cost.
- `job:<text>`, `user:<text>`, `reason:<text>`: only that part.

Tasks: `123` finds the steps of process 123 (task_one_row_per_step); text finds steps whose name
contains it among the newest `JTB_SEARCH_TEXT_WINDOW` tasks.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q

from jobs.models import Job
from processes.models import Process, ProcessStatus, Task

# A name search expands to at most this many jobs or users: a term that matches more is too
# vague to be useful, and the id list must stay short for the planner.
SEARCH_MAX_JOBS = 200
SEARCH_MAX_USERS = 50
MAX_ID = 2**63 - 1
NOTHING = Q(pk__in=[])
PREFIXES = ("job", "user", "reason")
# Executor ids: the local runner's `pid:N`, an AWS Batch job id (a UUID).
EXECUTOR_ID = re.compile(r"pid:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _as_id(term: str) -> int | None:
    digits = term.removeprefix("#")
    if digits.isascii() and digits.isdigit() and int(digits) <= MAX_ID:
        return int(digits)
    return None


def _looks_like_an_id(term: str) -> bool:
    return _as_id(term) is not None or bool(EXECUTOR_ID.fullmatch(term))


def _newest_id_floor(model, window: int) -> int:
    """The id below which rows are older than the newest `window` ones (by id, so no scan)."""
    newest = model.objects.order_by("-pk").values_list("pk", flat=True).first()
    return (newest or 0) - window


def process_search_filter(*, term: str) -> Q:
    """A filter for the process list's search box (see the module docstring)."""
    term = term.strip()
    if not term:
        return Q()
    prefix, _, rest = term.partition(":")
    only = prefix.lower() if rest.strip() and prefix.lower() in PREFIXES else None
    text = rest.strip() if only else term
    condition = NOTHING
    if only is None:
        process_id = _as_id(term)
        if process_id is not None:
            condition |= Q(pk=process_id)
        condition |= Q(external_id=term[:255])
    if only in (None, "job"):
        job_ids = list(Job.objects.filter(name__icontains=text).order_by().values_list("pk", flat=True)[:SEARCH_MAX_JOBS])
        if job_ids:
            condition |= Q(job_id__in=job_ids)
    if only in (None, "user"):
        user_model = get_user_model()
        user_ids = list(user_model.objects.filter(**{f"{user_model.USERNAME_FIELD}__icontains": text})
                        .order_by().values_list("pk", flat=True)[:SEARCH_MAX_USERS])
        if user_ids:
            condition |= Q(triggered_by_id__in=user_ids)
    if only == "reason" or (only is None and not _looks_like_an_id(term)):
        condition |= Q(
            status__in=[ProcessStatus.FAILED, ProcessStatus.CANCELLED],
            pk__gt=_newest_id_floor(Process, settings.JTB_SEARCH_TEXT_WINDOW),
            failure_reason__icontains=text,
        )
    return condition


def task_search_filter(*, term: str) -> Q:
    """A filter for the task list's search box: a process id, or a step name among recent tasks."""
    term = term.strip()
    if not term:
        return Q()
    process_id = _as_id(term)
    if process_id is not None:
        return Q(process_id=process_id)
    return Q(pk__gt=_newest_id_floor(Task, settings.JTB_SEARCH_TEXT_WINDOW), name__icontains=term)

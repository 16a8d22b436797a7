"""The timeline (Gantt) of one run: waiting for capacity, preparing, installing modules, each step.

Read by the process page. Steps the job's last successful run had but this run never reached are
listed after the others ("not reached" once the run has ended, "not started yet" while it runs), so
an operator sees at a glance where a failed run stopped. Three queries, whatever the history size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from processes.models import Process, ProcessStatus, Task

# The step the runner records while it installs the job's Python modules (runner.runtime.INSTALL_TASK).
INSTALL_TASK_NAME = "install modules"

WAITING = "waiting for capacity"
INSTALLING = "installing modules"
PREPARING = "preparing the run"
# A shorter gap between the runner's start and its first step is not worth a row of its own.
PREPARING_SHOWN_FROM = timedelta(seconds=1)


@dataclass(frozen=True)
class TimelineBar:
    label: str
    # succeeded, failed, running, cancelled, waiting, done (a phase that ended), not_reached, pending
    state: str
    state_label: str
    start: datetime | None
    end: datetime | None
    # Position on the time axis in percent of the run's span; None for steps without times.
    left: float | None
    width: float | None
    task_id: int | None = None

    @property
    def duration(self) -> timedelta | None:
        if self.start and self.end:
            return self.end - self.start
        return None


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    bars: list[TimelineBar]
    # True while the run is active: the open bars end "now" and grow on the next refresh.
    live: bool

    @property
    def span(self) -> timedelta:
        return self.end - self.start


def _previous_success_steps(process: Process, seen: set[str]) -> list[str]:
    last_success = (
        Process.objects.filter(job_id=process.job_id, status=ProcessStatus.SUCCEEDED, pk__lt=process.pk)
        .order_by("-pk").values("pk")[:1]
    )
    names = Task.objects.filter(process_id__in=last_success).order_by("sequence").values_list("name", flat=True)
    return [name for name in names if name not in seen and name != INSTALL_TASK_NAME]


def _preparing_phase(process: Process, tasks: list[Task], *, live: bool, now: datetime):
    """(state, state label, end) of the time between the runner's start and its first step.

    The runner fetches the template and readies the job's environment there (or waits while another
    run builds the same one): without this row that time is a blank stretch. A run that ended there
    has its outcome on this row, so it shows where the run stopped."""
    if process.started_at is None:
        return None
    first_step = next((task.started_at for task in tasks if task.started_at), None)
    if first_step is not None:
        if first_step - process.started_at < PREPARING_SHOWN_FROM:
            return None
        return "done", "Done", first_step
    if live:
        return "running", "In progress", now
    return process.status, process.get_status_display(), process.finished_at


def process_timeline(*, process: Process, now: datetime | None = None) -> Timeline:
    now = now or timezone.now()
    live = not process.is_finished
    start = process.created_at
    end = process.finished_at or now
    if end <= start:
        end = start + timedelta(seconds=1)
    span = (end - start).total_seconds()

    def place(begin: datetime | None, finish: datetime | None) -> tuple[float | None, float | None]:
        if begin is None:
            return None, None
        finish = finish or end
        left = max(0.0, min(100.0, (begin - start).total_seconds() / span * 100))
        width = max(0.0, min(100.0 - left, (finish - begin).total_seconds() / span * 100))
        return round(left, 3), round(width, 3)

    bars: list[TimelineBar] = []
    wait_end = process.started_at or process.finished_at
    if wait_end is None:
        wait_state, wait_label = "waiting", "Waiting" + (" for the active run" if process.held else "")
    elif process.started_at is None:
        wait_state, wait_label = process.status, f"Ended before it started ({process.get_status_display().lower()})"
    else:
        wait_state, wait_label = "done", "Done"
    bars.append(TimelineBar(WAITING, wait_state, wait_label, start, wait_end or now, *place(start, wait_end or now)))

    tasks = list(Task.objects.filter(process_id=process.pk).order_by("sequence"))
    preparing = _preparing_phase(process, tasks, live=live, now=now)
    if preparing is not None:
        state, state_label, phase_end = preparing
        bars.append(TimelineBar(PREPARING, state, state_label, process.started_at, phase_end,
                                *place(process.started_at, phase_end)))
    for task in tasks:
        task_end = task.finished_at or (now if live else process.finished_at)
        label = INSTALLING if task.name == INSTALL_TASK_NAME else task.name
        bars.append(TimelineBar(
            label, task.status, task.get_status_display(), task.started_at, task_end, *place(task.started_at, task_end),
            task_id=task.pk,
        ))

    # A run that succeeded skipped nothing: the template simply has other steps now.
    missing = [] if process.status == ProcessStatus.SUCCEEDED else _previous_success_steps(
        process, {task.name for task in tasks})
    state, state_label = ("pending", "Not started yet") if live else ("not_reached", "Not reached")
    bars.extend(TimelineBar(name, state, state_label, None, None, None, None) for name in missing)
    return Timeline(start=start, end=end, bars=bars, live=live)

"""Who may do what, in one place for the admin and the API (both call these functions).

Reading needs the model's `view_` permission; running, rerunning and cancelling need
`jobs.run_job` as well as the right to view what is run (the job, or the process); writing needs
the model's `add_`/`change_`/`delete_` permission.
"""

from __future__ import annotations

RUN_PERMISSION = "jobs.run_job"


def _active(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.is_active)


def user_may_view(user, *, app_label: str, model_name: str) -> bool:
    return _active(user) and user.has_perm(f"{app_label}.view_{model_name}")


def user_may_run_jobs(user) -> bool:
    """Start many runs at once (`POST runs/`): the jobs are named by id, nothing is shown."""
    return _active(user) and user.has_perm(RUN_PERMISSION)


def user_may_run_job(user) -> bool:
    """Run a job from its page (the Run page shows its template and default parameters)."""
    return user_may_run_jobs(user) and user_may_view(user, app_label="jobs", model_name="job")


def user_may_act_on_process(user) -> bool:
    """Rerun or cancel a process."""
    return user_may_run_jobs(user) and user_may_view(user, app_label="processes", model_name="process")

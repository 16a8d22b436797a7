"""EventBridge Scheduler calls (the `scheduler` API, not EventBridge rules).

Thin wrappers over the cached client: errors become SchedulerError with AWS's code and message,
"not found" becomes None/False, and a missing schedule group is created on first use.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from runner.aws.client import aws_client, aws_error_code

NOT_FOUND = "ResourceNotFoundException"
CONFLICT = "ConflictException"


class SchedulerError(Exception):
    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def _call(operation: str, **params) -> dict:
    try:
        return getattr(aws_client("scheduler"), operation)(**params)
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        raise SchedulerError(f"EventBridge Scheduler {operation} failed: {aws_error_code(exc)}: {message}",
                             code=aws_error_code(exc)) from exc
    except BotoCoreError as exc:
        raise SchedulerError(f"EventBridge Scheduler {operation} failed: {exc}", code="connection") from exc


def scheduler_group_ensure(*, group: str) -> None:
    """Create the schedule group unless it exists (looked up first: creating an existing group
    must never be relied on to fail harmlessly)."""
    try:
        _call("get_schedule_group", Name=group)
        return
    except SchedulerError as exc:
        if exc.code != NOT_FOUND:
            raise
    try:
        _call("create_schedule_group", Name=group)
    except SchedulerError as exc:
        if exc.code != CONFLICT:
            raise


def scheduler_schedule_get(*, name: str, group: str) -> dict | None:
    try:
        return _call("get_schedule", Name=name, GroupName=group)
    except SchedulerError as exc:
        if exc.code == NOT_FOUND:
            return None
        raise


def scheduler_schedule_create(*, spec: dict) -> None:
    """CreateSchedule; `spec` holds its parameters (Name, GroupName, ScheduleExpression, ...).

    The group is ensured first: creates are rare (one per new schedule), and a group someone
    deleted would otherwise fail every create.
    """
    scheduler_group_ensure(group=spec["GroupName"])
    _call("create_schedule", **spec)


def scheduler_schedule_update(*, spec: dict) -> None:
    """UpdateSchedule replaces every setting; anything left out returns to its default."""
    _call("update_schedule", **spec)


def scheduler_schedule_delete(*, name: str, group: str) -> bool:
    try:
        _call("delete_schedule", Name=name, GroupName=group)
    except SchedulerError as exc:
        if exc.code == NOT_FOUND:
            return False
        raise
    return True


def scheduler_schedules_list(*, group: str, prefix: str) -> list[dict]:
    """Summaries (Name, State, ...) of the group's schedules whose names start with `prefix`."""
    found: list[dict] = []
    params = {"GroupName": group, "NamePrefix": prefix}
    while True:
        try:
            page = _call("list_schedules", **params)
        except SchedulerError as exc:
            if exc.code == NOT_FOUND:
                return found
            raise
        found.extend(page.get("Schedules", []))
        if not page.get("NextToken"):
            return found
        params["NextToken"] = page["NextToken"]

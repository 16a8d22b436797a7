"""Who may read a job's environment values.

A value is shown only to users who may change the job; everyone else sees the names with the
values masked. Values under names marked secret by their name (containing SECRET, PASSWORD,
PASSWD, TOKEN, CREDENTIAL, PRIVATE or ending in _KEY) are masked for everyone, editors included:
an editor replaces such a value by typing a new one, and sending the mask back keeps the stored
value. Pure code, so the admin, the API and the history all apply the same rule.
"""

from __future__ import annotations

import re

MASK = "********"
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|_KEY$|^KEY$", re.IGNORECASE)
CHANGE_JOB_PERMISSION = "jobs.change_job"


def env_name_is_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(str(name)))


def environment_masked(environment: dict, *, reveal: bool) -> dict:
    """The environment as a user sees it: secret-named values always masked, the rest unless `reveal`."""
    return {
        name: value if reveal and not env_name_is_secret(name) else MASK
        for name, value in environment.items()
    }


def environment_unmasked(submitted: dict, *, stored: dict) -> dict:
    """An edited environment with every value still equal to the mask put back to the stored value."""
    return {
        name: stored[name] if value == MASK and name in stored else value
        for name, value in submitted.items()
    }


def user_may_read_environment(user) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and user.has_perm(CHANGE_JOB_PERMISSION))

"""Fixtures for schedule tests: jobs and schedules saved through the services."""

from __future__ import annotations

import pytest

from jobs.models import Job, Schedule
from jobs.services import schedule_save


@pytest.fixture
def make_schedule(make_job):
    def make(cron: str = "* * * * *", *, job: Job | None = None, **fields) -> Schedule:
        fields.setdefault("timezone", "UTC")
        return schedule_save(schedule=Schedule(job=job or make_job(), cron=cron, **fields))

    return make

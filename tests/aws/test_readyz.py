"""/readyz on AWS also asks Batch whether the default job queue is there and usable (moto server)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_readyz_is_ready_while_the_job_queue_is_enabled_and_valid(client, batch_setup):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["batch_job_queue"]["ok"] is True


def test_readyz_names_a_missing_or_disabled_job_queue(client, batch_setup, settings):
    settings.JTB_BATCH_JOB_QUEUE = "no-such-queue"
    body = client.get("/readyz").json()
    assert body["failed"] == ["batch_job_queue"]
    assert "no-such-queue is missing" in body["checks"]["batch_job_queue"]["error"]

    settings.JTB_BATCH_JOB_QUEUE = "spot-small"
    batch_setup.update_job_queue(jobQueue="spot-small", state="DISABLED")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "spot-small is DISABLED" in response.json()["checks"]["batch_job_queue"]["error"]

"""A real Celery worker on Redis runs jobs end to end: start → dispatch → local executor → runner."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings

from conftest import require_service
from jobs.models import Job
from jobtarget_batch.celery import app as celery_app
from processes.models import Process, ProcessStatus, TaskStatus, Trigger
from processes.services import process_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def redis_broker(monkeypatch, settings):
    """Point this process's Celery app at Redis, on queues private to this test session."""
    require_service("Redis", "127.0.0.1", 6379)
    suffix = f"-test-{os.getpid()}"
    queues = {"JTB_CONTROL_QUEUE": "jtb-control" + suffix, "JTB_LOCAL_QUEUE": "jtb-local" + suffix}
    settings.JTB_LOCAL_QUEUE = queues["JTB_LOCAL_QUEUE"]
    saved = (celery_app.conf.broker_url, celery_app.conf.task_default_queue)
    celery_app.conf.broker_url = REDIS_URL
    celery_app.conf.task_default_queue = queues["JTB_CONTROL_QUEUE"]
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    yield {"CELERY_BROKER_URL": REDIS_URL, **queues}
    celery_app.conf.broker_url, celery_app.conf.task_default_queue = saved
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def worker(redis_broker, subprocess_env, tmp_path):
    env = {**subprocess_env, **redis_broker}
    log = open(tmp_path / "worker.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "jobtarget_batch", "worker", "--pool", "prefork", "-c", "2",
         "-Q", f"{redis_broker['JTB_CONTROL_QUEUE']},{redis_broker['JTB_LOCAL_QUEUE']}",
         "-n", f"test-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    yield tmp_path / "worker.log"
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_until_finished(process: Process, timeout: float = 90) -> Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.refresh_from_db()
        if process.is_finished:
            return process
        time.sleep(0.3)
    raise AssertionError(f"process {process.pk} still {process.status} after {timeout} s")


def test_worker_on_redis_runs_a_succeeding_and_a_failing_job(worker):
    hello = Job.objects.create(name="hello", template="examples/hello.py", memory_mib=512)
    etl = Job.objects.create(name="etl", template="examples/etl_fails.py", memory_mib=512)
    ok = process_start(job=hello, trigger=Trigger.API, parameters={"name": "Redis"})
    bad = process_start(job=etl, trigger=Trigger.API)

    ok = wait_until_finished(ok)
    bad = wait_until_finished(bad)
    log = worker.read_text(errors="replace")
    assert ok.status == ProcessStatus.SUCCEEDED, ok.failure_reason + log
    assert ok.executor == "local"
    assert [t.name for t in ok.tasks.all()] == ["prepare", "greet"]
    assert bad.status == ProcessStatus.FAILED
    assert [(t.name, t.status) for t in bad.tasks.all()] == [
        ("extract", TaskStatus.SUCCEEDED), ("transform", TaskStatus.FAILED)
    ]
    assert bad.failure_reason.startswith("Task 'transform' failed: ValueError")

"""A real control worker on Redis for the end-to-end Batch tests, and this process's Celery app
pointed at the same queue while it runs."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from jobtarget_batch.celery import app as celery_app


def _point_app_at(broker_url: str, queue: str) -> None:
    celery_app.conf.broker_url, celery_app.conf.task_default_queue = broker_url, queue
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextlib.contextmanager
def control_worker(env: dict, *, broker_url: str, queue: str, name: str, log: Path):
    """Start `celery worker` on `queue` with `env` (which must name the same broker and queue)."""
    saved = (celery_app.conf.broker_url, celery_app.conf.task_default_queue)
    _point_app_at(broker_url, queue)
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jobtarget_batch", "worker", "--pool", "threads", "-c", "4",
             "-Q", queue, "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            cwd=settings.BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        _point_app_at(*saved)

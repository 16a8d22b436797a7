"""/healthz and /readyz, answered by the first middleware.

They come before host validation, HTTPS redirects, sessions, authentication and any throttling: a
load balancer probes with its own Host header over plain HTTP, and a probe must neither need
credentials nor be counted against a client's rate. /healthz does no I/O (the process answers);
/readyz checks what a request needs: the database, the Celery broker and, on AWS, the job queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

HEALTH_PATHS = {"/healthz", "/healthz/"}
READY_PATHS = {"/readyz", "/readyz/"}

# Broker and AWS checks run here so that a hung connection answers "timed out" within the limit
# (the database check runs in the request's thread: Django connections belong to their thread).
_probe_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


def check_database() -> str:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        # A broken connection must not be reused by the next request of this thread.
        connection.close_if_unusable_or_obsolete()
        connection.close()
        raise
    return "ok"


def check_broker() -> str:
    from jobtarget_batch.celery import app

    timeout = settings.JTB_READYZ_TIMEOUT_SECONDS
    with app.connection_for_write(connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    return "ok"


def check_batch_queue() -> str:
    from runner.aws.batch import batch_job_queue_state

    state = batch_job_queue_state(queue=settings.JTB_BATCH_JOB_QUEUE)
    if state != "ENABLED/VALID":
        raise RuntimeError(f"job queue {settings.JTB_BATCH_JOB_QUEUE} is {state}")
    return "ok"


def _timed(check: Callable[[], str], *, in_thread: bool) -> dict:
    started = time.monotonic()
    try:
        if in_thread:
            _probe_pool.submit(check).result(timeout=settings.JTB_READYZ_TIMEOUT_SECONDS)
        else:
            check()
        outcome = {"ok": True}
    except FutureTimeout:
        outcome = {"ok": False, "error": f"no answer within {settings.JTB_READYZ_TIMEOUT_SECONDS} s"}
    except Exception as exc:
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    outcome["ms"] = int((time.monotonic() - started) * 1000)
    return outcome


def readiness() -> tuple[bool, dict]:
    checks = {"database": _timed(check_database, in_thread=False), "broker": _timed(check_broker, in_thread=True)}
    if settings.JTB_EXECUTOR == "aws_batch":
        checks["batch_job_queue"] = _timed(check_batch_queue, in_thread=True)
    failed = [name for name, outcome in checks.items() if not outcome["ok"]]
    return not failed, {"status": "not ready" if failed else "ready", "failed": failed, "checks": checks}


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path in HEALTH_PATHS:
            return JsonResponse({"status": "ok"})
        if request.path in READY_PATHS:
            ready, body = readiness()
            return JsonResponse(body, status=200 if ready else 503)
        return self.get_response(request)

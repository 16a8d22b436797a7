"""Real workers: a job fails through two Celery workers on Redis and the local executor; the alert
is delivered to a real receiver, the receiver's 500 is retried by Celery after the backoff."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from alerts.models import Channel, ChannelKind, Delivery, DeliveryStatus
from alerts.tasks import send_due_deliveries
from alerts.tests.receiver import Receiver
from jobs.models import Job
from processes.models import ProcessStatus, Trigger
from processes.services import process_start
from tests.support import wait_for
from tests.test_celery_worker import redis_broker, wait_until_finished  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.slow]

RETRY_BASE_SECONDS = 2


@pytest.fixture
def workers(redis_broker, subprocess_env, tmp_path):  # noqa: F811 (the imported fixture)
    """Two worker processes (one prefork child each) on the test's private queues."""
    env = {**subprocess_env, **redis_broker, "JTB_ALERT_GROUP_SECONDS": "0",
           "JTB_ALERT_RETRY_BASE_SECONDS": str(RETRY_BASE_SECONDS)}
    logs, processes = [], []
    for number in (1, 2):
        log_path = tmp_path / f"worker{number}.log"
        logs.append(log_path)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jobtarget_batch", "worker", "--pool", "prefork", "-c", "1",
             "-Q", f"{redis_broker['JTB_CONTROL_QUEUE']},{redis_broker['JTB_LOCAL_QUEUE']}",
             "-n", f"alerts{number}-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            cwd=settings.BASE_DIR, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        ))
    yield logs
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_failed_run_alert_is_retried_by_celery_after_a_receiver_error(workers):
    with Receiver(statuses=[500]) as receiver:
        channel = Channel.objects.create(name="ops", kind=ChannelKind.WEBHOOK, url=receiver.url, is_default=True)
        job = Job.objects.create(name="etl", template="examples/etl_fails.py", memory_mib=512)
        process = wait_until_finished(process_start(job=job, trigger=Trigger.API))
        assert process.status == ProcessStatus.FAILED
        # The worker that watched the runner finalized the run and raised the alert; beat's sweeper
        # (called here) hands the delivery to a worker.
        wait_for(lambda: Delivery.objects.filter(status=DeliveryStatus.OPEN).exists(), timeout=30)
        send_due_deliveries.delay()
        wait_for(lambda: len(receiver.requests) >= 2, timeout=90)
        delivery = wait_for(lambda: Delivery.objects.filter(status=DeliveryStatus.SENT).first(), timeout=30)
    logs = "\n".join(path.read_text(errors="replace") for path in workers)
    assert len(receiver.requests) == 2, logs
    first, second = receiver.requests
    assert first.body == second.body and first.json["alerts"][0]["process_id"] == process.pk
    assert first.headers["X-JTB-Signature"] == second.headers["X-JTB-Signature"]
    log = list(delivery.attempt_log.order_by("number"))
    assert [(a.number, a.ok, a.status_code) for a in log] == [(1, False, 500), (2, True, 200)]
    # Celery's retry waited the backoff (2 s) between the two attempts.
    assert (log[1].at - log[0].at).total_seconds() >= RETRY_BASE_SECONDS - 0.1, logs
    assert "Retry in 2" in logs
    assert channel.pk == delivery.channel_id

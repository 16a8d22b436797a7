"""/metrics read back with prometheus-client's own parser matches what the database holds, in this
process and through gunicorn with two workers; scrapes need the token or an allowed network."""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts.models import ChannelKind, Delivery, DeliveryStatus, Event
from jobs.models import Job, Schedule
from monitoring.metrics import DURATION_BUCKETS, WAIT_BUCKETS
from processes.models import FINISHED_STATUSES, Process, ProcessStatus, Trigger
from tests.support import count_finished

OURS = ("jtb_runs", "jtb_run_duration_seconds", "jtb_run_wait_seconds", "jtb_runs_active",
        "jtb_schedule_lag_seconds", "jtb_notifications_failed")


def add_run(job: Job, status: str, trigger: str = Trigger.MANUAL, *, wait: float | None = None,
            duration: float | None = None, held: bool = False) -> Process:
    process = Process.objects.create(job=job, status=status, trigger=trigger, held=held)
    base = timezone.now() - timedelta(hours=3)
    started = base + timedelta(seconds=wait) if wait is not None else None
    finished = started + timedelta(seconds=duration) if duration is not None else None
    Process.objects.filter(pk=process.pk).update(created_at=base, started_at=started, finished_at=finished)
    count_finished(process)  # in the rollups /metrics reads, as the control plane's finalize does
    return process


def several_jobs_ran() -> None:
    etl = Job.objects.create(name="etl", template="examples/hello.py")
    report = Job.objects.create(name="report", template="examples/hello.py")
    spot = Job.objects.create(name="spot", template="examples/hello.py")
    for duration in (0.5, 3, 45, 200, 4000):
        add_run(etl, ProcessStatus.SUCCEEDED, Trigger.SCHEDULE, wait=2, duration=duration)
    add_run(etl, ProcessStatus.FAILED, Trigger.MANUAL, wait=700, duration=12)
    add_run(etl, ProcessStatus.FAILED, Trigger.API, wait=1, duration=0.2)
    add_run(report, ProcessStatus.SUCCEEDED, Trigger.API, wait=30, duration=60)  # exactly on a bucket bound
    add_run(report, ProcessStatus.CANCELLED, Trigger.MANUAL)  # cancelled before it started
    add_run(report, ProcessStatus.RUNNING, Trigger.RERUN, wait=5)
    add_run(spot, ProcessStatus.SUBMITTED, Trigger.API)
    add_run(spot, ProcessStatus.QUEUED, Trigger.API)
    add_run(spot, ProcessStatus.QUEUED, Trigger.API, held=True)
    schedule = Schedule.objects.create(job=etl, cron="* * * * *", timezone="UTC")
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=timezone.now() - timedelta(seconds=600))
    for status in (DeliveryStatus.FAILED, DeliveryStatus.FAILED, DeliveryStatus.SENT):
        Delivery.objects.create(channel_key="channel:1", channel_name="ops webhook", kind=ChannelKind.WEBHOOK,
                                job=etl, event=Event.FAILED, status=status, send_after=timezone.now())


def scraped(text: str) -> dict:
    """{(sample name, sorted labels): value} for our families, from prometheus-client's parser."""
    values = {}
    for family in text_string_to_metric_families(text):
        if family.name not in OURS:
            continue
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def expected_from_database(now) -> dict:
    """The same figures computed here in Python from every row, independently of the collector."""
    values: dict = {}
    runs = list(Process.objects.select_related("job"))
    finished = Counter((p.job.name, p.status, p.trigger) for p in runs if p.status in FINISHED_STATUSES)
    for (job, status, trigger), count in finished.items():
        values[("jtb_runs_total", (("job", job), ("status", status), ("trigger", trigger)))] = count

    def histogram(name, buckets, pairs):
        by_job = {}
        for job, seconds in pairs:
            by_job.setdefault(job, []).append(seconds)
        for job, seconds in by_job.items():
            for bound in buckets:
                key = (f"{name}_bucket", (("job", job), ("le", str(float(bound)))))
                values[key] = sum(1 for value in seconds if value <= bound)
            values[(f"{name}_bucket", (("job", job), ("le", "+Inf")))] = len(seconds)
            values[(f"{name}_count", (("job", job),))] = len(seconds)
            values[(f"{name}_sum", (("job", job),))] = pytest.approx(sum(seconds), abs=1e-3)

    histogram("jtb_run_duration_seconds", DURATION_BUCKETS, [
        (p.job.name, (p.finished_at - p.started_at).total_seconds())
        for p in runs if p.status in FINISHED_STATUSES and p.started_at and p.finished_at
    ])
    histogram("jtb_run_wait_seconds", WAIT_BUCKETS, [
        (p.job.name, (p.started_at - p.created_at).total_seconds())
        for p in runs if p.started_at and p.status in FINISHED_STATUSES
    ])
    active = Counter("held" if p.held else p.status for p in runs if p.status not in FINISHED_STATUSES)
    for status in ("queued", "held", "submitted", "running"):
        values[("jtb_runs_active", (("status", status),))] = active[status]
    due = [s.next_fire_at for s in Schedule.objects.filter(enabled=True) if s.next_fire_at and s.next_fire_at <= now]
    values[("jtb_schedule_lag_seconds", ())] = pytest.approx(
        (now - min(due)).total_seconds() if due else 0, abs=30
    )
    failed = Counter(d.channel_name for d in Delivery.objects.filter(status=DeliveryStatus.FAILED))
    for channel, count in failed.items():
        values[("jtb_notifications_failed_total", (("channel", channel),))] = count
    return values


@pytest.mark.django_db
def test_metrics_match_the_database_after_runs_of_several_jobs(client):
    several_jobs_ran()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    values = scraped(response.content.decode())
    assert values == expected_from_database(timezone.now())
    # Spot checks a person would make on the dashboard.
    assert values[("jtb_runs_total", (("job", "etl"), ("status", "failed"), ("trigger", "api")))] == 1
    assert values[("jtb_run_duration_seconds_bucket", (("job", "report"), ("le", "60.0")))] == 1
    assert values[("jtb_runs_active", (("status", "held"),))] == 1
    assert values[("jtb_notifications_failed_total", (("channel", "ops webhook"),))] == 2
    assert 560 < values[("jtb_schedule_lag_seconds", ())] < 700


@pytest.mark.django_db
def test_a_scrape_costs_a_fixed_number_of_queries(client, django_assert_max_num_queries):
    several_jobs_ran()
    with django_assert_max_num_queries(9):
        assert client.get("/metrics").status_code == 200
    for _ in range(20):
        add_run(Job.objects.get(name="etl"), ProcessStatus.FAILED, wait=1, duration=1)
    with django_assert_max_num_queries(9):
        assert client.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_scrapes_need_the_token_when_one_is_set(client, settings):
    settings.JTB_METRICS_TOKEN = "scrape-me"
    settings.JTB_METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert response.status_code == 200 and b"jtb_runs_active" in response.content


@pytest.mark.django_db
def test_scrapes_from_outside_the_allowed_networks_are_refused(client, settings):
    settings.JTB_METRICS_TOKEN = ""
    settings.JTB_METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.5").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    settings.JTB_METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]  # the default without a token
    assert client.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1


@pytest.mark.slow
def test_two_gunicorn_workers_report_the_same_figures_as_the_database(subprocess_env, tmp_path):
    from conftest import service_reachable
    from tests.support import wait_for
    from tests.test_run_all import free_port

    several_jobs_ran()
    port = free_port()
    access_log = tmp_path / "access.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--access-logfile", str(access_log),
         "--access-logformat", "%(p)s %(r)s %(s)s", "jobtarget_batch.wsgi"],
        cwd=settings.BASE_DIR, env=subprocess_env, stdout=subprocess.DEVNULL, stderr=tmp_path.joinpath("err.log").open("wb"),
    )
    try:
        wait_for(lambda: service_reachable("127.0.0.1", port), timeout=60)

        def scrape_many(count: int) -> list[str]:
            texts: list[str] = []

            def one():
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
                    texts.append(response.read().decode())

            threads = [threading.Thread(target=one) for _ in range(count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return texts

        for texts in (scrape_many(16), None):
            if texts is None:
                # A run finishes while gunicorn runs: every worker sees it at the next scrape.
                add_run(Job.objects.get(name="spot"), ProcessStatus.FAILED, Trigger.API, wait=3, duration=7)
                texts = scrape_many(16)
            assert len(texts) == 16
            expected = expected_from_database(timezone.now())
            for text in texts:
                assert scraped(text) == expected
        pids = {line.split()[0] for line in access_log.read_text().splitlines() if "/metrics" in line}
        assert len(pids) == 2, access_log.read_text()
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.django_db
def test_the_scrape_is_byte_for_byte_what_prometheus_client_writes():
    from prometheus_client import CollectorRegistry, generate_latest

    from monitoring.metrics import DatabaseCollector, text_format

    several_jobs_ran()
    odd = Job.objects.create(name='say "hi" \\ twice', template="examples/hello.py")
    add_run(odd, ProcessStatus.FAILED, Trigger.API, wait=1, duration=123456789.5)
    families = list(DatabaseCollector().collect())  # one read: the schedule lag moves with the clock

    class Collected:
        def collect(self):
            return iter(families)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collected())
    expected = generate_latest(registry)
    assert b'say \\"hi\\" \\\\ twice' in expected and b"e+08" in expected
    assert text_format(Collected()) == expected

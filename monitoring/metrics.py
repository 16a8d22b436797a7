"""/metrics: Prometheus figures computed from the database at scrape time.

Why a collector over the database rather than prometheus-client's multiprocess mode: the state
of every run is written through the ORM by many processes that no exporter sees (gunicorn and
Celery workers, local runner subprocesses, runner containers on AWS Batch). Counting in each
process and merging files (PROMETHEUS_MULTIPROC_DIR) would miss every run finished inside AWS
Batch and would reset when a worker is replaced. The database already holds every run, so each
scrape asks it: any gunicorn worker answers with the same figures, and no Celery worker is
involved.

A scrape reads no history: finished runs' counters and histograms come from ProcessTotal (one
row per job, final status and trigger, written once per run when it is finalized:
processes.rollup), active runs through the status index, and the alert tables' own indexes. So
a scrape costs a handful of small queries whatever the number of runs, and the counters never go
down when the retention purge deletes old runs.
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, Min, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from alerts.models import Alert, Delivery, DeliveryStatus
from jobs.models import Job, Schedule, ScheduleDriver
from processes.models import (
    DURATION_BUCKET_FIELDS,
    DURATION_BUCKETS,
    WAIT_BUCKET_FIELDS,
    WAIT_BUCKETS,
    Process,
    ProcessStatus,
    ProcessTotal,
)

__all__ = ["DURATION_BUCKETS", "WAIT_BUCKETS", "DatabaseCollector", "text_format"]


def _histograms(*, count: str, seconds: str, fields: list[str]) -> dict[int, tuple[list[int], int, float]]:
    """Per job: cumulative bucket counts, count and sum in seconds, from ProcessTotal's columns."""
    sums = {name: Sum(name) for name in (count, seconds, *fields)}
    result = {}
    for row in ProcessTotal.objects.order_by().values("job_id").annotate(**sums):
        if row[count]:
            result[row["job_id"]] = ([row[name] for name in fields], row[count], float(row[seconds]))
    return result


def _histogram_family(name: str, documentation: str, buckets, data: dict, names: dict[int, str]):
    family = HistogramMetricFamily(name, documentation, labels=["job"])
    for job_id, (cumulative, count, total) in sorted(data.items()):
        pairs = [(str(float(bound)), value) for bound, value in zip(buckets, cumulative, strict=True)] + [("+Inf", count)]
        family.add_metric([names.get(job_id, str(job_id))], pairs, total)
    return family


class DatabaseCollector(Collector):
    def collect(self):
        names = dict(Job.objects.values_list("pk", "name"))

        runs = CounterMetricFamily(
            "jtb_runs", "Finished runs by job, final status and trigger.", labels=["job", "status", "trigger"],
        )
        rows = ProcessTotal.objects.filter(runs__gt=0).values_list("job_id", "status", "trigger", "runs")
        for job_id, status, trigger, count in sorted(rows):
            runs.add_metric([names.get(job_id, str(job_id)), status, trigger], count)
        yield runs

        yield _histogram_family(
            "jtb_run_duration_seconds", "Run time (started to finished) of finished runs.", DURATION_BUCKETS,
            _histograms(count="timed_runs", seconds="duration_seconds", fields=DURATION_BUCKET_FIELDS),
            names,
        )
        yield _histogram_family(
            "jtb_run_wait_seconds", "Wait to start (created to started) of finished runs that started.",
            WAIT_BUCKETS, _histograms(count="waited_runs", seconds="wait_seconds", fields=WAIT_BUCKET_FIELDS),
            names,
        )

        active = GaugeMetricFamily(
            "jtb_runs_active", "Runs not finished: queued, held (behind an active run of the job), submitted "
            "(with the executor, e.g. RUNNABLE on AWS Batch) and running.", labels=["status"],
        )
        counts: dict[str, int] = defaultdict(int)
        # process_status_id_idx: WHERE status IN (queued, submitted, running).
        for status, held, count in (
            Process.objects.filter(status__in=[ProcessStatus.QUEUED, ProcessStatus.SUBMITTED, ProcessStatus.RUNNING])
            .order_by().values_list("status", "held").annotate(count=Count("pk"))
        ):
            counts["held" if held else status] += count
        for status in ("queued", "held", "submitted", "running"):
            active.add_metric([status], counts[status])
        yield active

        now = timezone.now()
        # schedule_next_fire_idx: the earliest due tick of an enabled beat schedule.
        oldest_due = Schedule.objects.filter(
            enabled=True, driver=ScheduleDriver.BEAT, next_fire_at__lte=now
        ).aggregate(oldest=Min("next_fire_at"))["oldest"]
        lag = GaugeMetricFamily(
            "jtb_schedule_lag_seconds",
            "How late the most overdue beat schedule tick is (0 when none is due); grows while beat or the "
            "workers are down.",
        )
        lag.add_metric([], (now - oldest_due).total_seconds() if oldest_due else 0.0)
        yield lag

        failed = CounterMetricFamily(
            "jtb_notifications_failed", "Alert deliveries given up after every attempt failed, by channel.",
            labels=["channel"],
        )
        # alert_delivery_status_chan_idx.
        for channel, count in sorted(
            Delivery.objects.filter(status=DeliveryStatus.FAILED).order_by()
            .values_list("channel_name").annotate(count=Count("pk"))
        ):
            failed.add_metric([channel], count)
        yield failed

        alerts = CounterMetricFamily("jtb_alerts", "Alerts raised, by event.", labels=["event"])
        for event, count in sorted(Alert.objects.order_by().values_list("event").annotate(count=Count("pk"))):
            alerts.add_metric([event], count)
        yield alerts


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def text_format(collector: Collector) -> bytes:
    """The Prometheus text format of `collector`'s families, as prometheus_client.generate_latest
    writes it (a test compares them byte for byte) for the kinds this module yields (counters,
    gauges, histograms; no timestamps, no created samples).

    Why not generate_latest: with 300 jobs a scrape is ~12,000 samples, and its per-sample escaping
    and name checks cost more than all the queries; label sets are formatted once each here.
    """
    out: list[str] = []
    labels_text: dict[tuple, str] = {}
    for family in collector.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        documentation = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {documentation}\n# TYPE {name} {family.type}\n")
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            text = labels_text.get(key)
            if text is None:
                text = "{" + ",".join(f'{label}="{_label_value(value)}"' for label, value in key) + "}" if key else ""
                labels_text[key] = text
            out.append(f"{sample.name}{text} {floatToGoString(sample.value)}\n")
    return "".join(out).encode("utf-8")

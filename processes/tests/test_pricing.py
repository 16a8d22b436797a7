"""Cost estimates: resources reserved × time × the price settings, Spot runs at a discount."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from processes.costs import process_cost_record
from processes.models import Process, ProcessStatus, Trigger
from processes.pricing import CostRates, estimate_cost

RATES = CostRates.of(vcpu_hour="0.04", gib_hour="0.004", gpu_hour="0.5", spot_factor="0.3", spot_queues=["spot"])


def test_an_hour_of_two_vcpus_and_four_gib_costs_both_prices():
    assert estimate_cost({"vcpus": "2", "memory_mib": 4096, "gpus": 0}, 3600, RATES) == Decimal("0.096000")


def test_a_gpu_adds_its_hourly_price_for_the_run_time():
    assert estimate_cost({"vcpus": "1", "memory_mib": 1024, "gpus": 1}, 1800, RATES) == Decimal("0.272000")


def test_a_run_on_a_spot_queue_pays_the_spot_share():
    on_demand = estimate_cost({"vcpus": "4", "memory_mib": 8192, "queue": "default"}, 7200, RATES)
    spot = estimate_cost({"vcpus": "4", "memory_mib": 8192, "queue": "spot"}, 7200, RATES)
    assert spot == (on_demand * Decimal("0.3")).quantize(Decimal("0.000001"))


def test_a_run_that_never_started_costs_nothing():
    assert estimate_cost({"vcpus": "16", "memory_mib": 65536}, None, RATES) == Decimal("0")


def test_a_short_small_run_still_shows_a_cost():
    assert estimate_cost({"vcpus": "0.25", "memory_mib": 512}, 10, RATES) > 0


def test_a_corrupt_snapshot_is_a_clear_error():
    with pytest.raises(ValueError, match="vcpus is not a number"):
        estimate_cost({"vcpus": "lots"}, 60, RATES)


@pytest.mark.django_db
def test_process_cost_record_stores_the_estimate_of_a_finished_run(make_job, settings):
    settings.JTB_COST_VCPU_HOUR, settings.JTB_COST_GIB_HOUR, settings.JTB_COST_GPU_HOUR = "0.04", "0.004", "0.5"
    settings.JTB_COST_SPOT_QUEUES = []
    job = make_job(vcpus=Decimal("2"), memory_mib=4096)
    started = timezone.now() - timedelta(hours=1)
    process = Process.objects.create(
        job=job, status=ProcessStatus.SUCCEEDED, trigger=Trigger.MANUAL,
        snapshot={"vcpus": "2", "memory_mib": 4096, "gpus": 0, "queue": ""},
        started_at=started, finished_at=started + timedelta(hours=1),
    )

    assert process_cost_record(process_id=process.pk) == Decimal("0.096000")
    process.refresh_from_db()
    assert process.estimated_cost == Decimal("0.096000")


@pytest.mark.django_db
def test_the_default_queue_is_priced_as_spot_when_it_is_a_spot_queue(make_job, settings):
    settings.JTB_COST_VCPU_HOUR, settings.JTB_COST_GIB_HOUR, settings.JTB_COST_GPU_HOUR = "1", "0", "0"
    settings.JTB_COST_SPOT_FACTOR, settings.JTB_BATCH_JOB_QUEUE = "0.5", "jtb-default"
    settings.JTB_COST_SPOT_QUEUES = ["jtb-default"]
    started = timezone.now() - timedelta(hours=1)
    process = Process.objects.create(
        job=make_job(), status=ProcessStatus.FAILED, trigger=Trigger.MANUAL,
        snapshot={"vcpus": "1", "memory_mib": 1024, "queue": ""}, started_at=started,
        finished_at=started + timedelta(hours=2),
    )

    assert process_cost_record(process_id=process.pk) == Decimal("1.000000")


@pytest.mark.django_db
def test_an_active_run_gets_no_estimate_yet(make_job):
    process = Process.objects.create(
        job=make_job(), status=ProcessStatus.RUNNING, trigger=Trigger.MANUAL, snapshot={"vcpus": "1"},
        started_at=timezone.now(),
    )

    assert process_cost_record(process_id=process.pk) is None
    process.refresh_from_db()
    assert process.estimated_cost is None

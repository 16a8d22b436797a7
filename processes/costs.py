"""Record a finished run's estimated cost (the pricing rules are in processes.pricing).

`process_cost_record` is called once a run has finished; calling it again recomputes the same
value, so a retried finish path or a backfill is harmless.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from processes.models import FINISHED_STATUSES, Process
from processes.pricing import CostRates, estimate_cost


def cost_rates_from_settings() -> CostRates:
    return CostRates.of(
        vcpu_hour=settings.JTB_COST_VCPU_HOUR, gib_hour=settings.JTB_COST_GIB_HOUR,
        gpu_hour=settings.JTB_COST_GPU_HOUR, spot_factor=settings.JTB_COST_SPOT_FACTOR,
        spot_queues=settings.JTB_COST_SPOT_QUEUES,
    )


def process_cost_estimate(*, process: Process) -> Decimal | None:
    """The estimate for a finished run; None while it is still active (its duration is unknown)."""
    if process.status not in FINISHED_STATUSES:
        return None
    seconds = process.duration.total_seconds() if process.duration else 0
    # An empty queue in the snapshot means the default queue, which may itself be a Spot queue.
    snapshot = {**process.snapshot, "queue": process.snapshot.get("queue") or settings.JTB_BATCH_JOB_QUEUE}
    return estimate_cost(snapshot, seconds, cost_rates_from_settings())


def process_cost_record(*, process_id: int) -> Decimal | None:
    """Store the estimated cost of a finished run on it; returns it (None: the run is still active)."""
    process = Process.objects.only("status", "snapshot", "started_at", "finished_at").get(pk=process_id)
    cost = process_cost_estimate(process=process)
    if cost is not None:
        Process.objects.filter(pk=process_id).update(estimated_cost=cost)
    return cost

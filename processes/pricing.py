"""What a run cost, estimated from the resources it asked for and how long it ran.

Pure arithmetic with no Django import, so the job page, the dashboard and the finish path all
price a run the same way. Prices are on-demand list prices the operator sets (settings
JTB_COST_*); a run on a Spot queue is priced at the on-demand price times the Spot factor.
The estimate is what the run reserved, not what AWS billed: it ignores idle capacity, EBS, data
transfer and the minimum billing of a Fargate task.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

SECONDS_PER_HOUR = Decimal(3600)
MIB_PER_GIB = Decimal(1024)
# Stored with six decimals: a 10-second run of 0.25 vCPU still shows a non-zero cost.
COST_QUANTUM = Decimal("0.000001")


@dataclass(frozen=True)
class CostRates:
    """On-demand prices per hour, and the share of them a Spot run pays (e.g. 0.3)."""

    vcpu_hour: Decimal
    gib_hour: Decimal
    gpu_hour: Decimal
    spot_factor: Decimal = Decimal("1")
    # Executor queues whose compute is Spot; a run's snapshot names its queue ("" = default).
    spot_queues: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *, vcpu_hour, gib_hour, gpu_hour, spot_factor=1, spot_queues: Iterable[str] = ()) -> CostRates:
        return cls(
            vcpu_hour=Decimal(str(vcpu_hour)), gib_hour=Decimal(str(gib_hour)), gpu_hour=Decimal(str(gpu_hour)),
            spot_factor=Decimal(str(spot_factor)), spot_queues=frozenset(spot_queues),
        )


def _resource(snapshot: dict, key: str) -> Decimal:
    value = snapshot.get(key) or 0
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"The run's {key} is not a number: {value!r}") from None
    if number < 0:
        raise ValueError(f"The run's {key} is negative: {value!r}")
    return number


def estimate_cost(snapshot: dict, seconds: float | Decimal | None, rates: CostRates) -> Decimal:
    """The estimated cost of a run that used `snapshot`'s resources for `seconds`.

    `snapshot` is a Process snapshot (vcpus, memory_mib, gpus, queue). A run that never started
    (`seconds` None or 0) used no compute and costs 0.
    """
    if not seconds or seconds < 0:
        return Decimal(0).quantize(COST_QUANTUM)
    hours = Decimal(str(seconds)) / SECONDS_PER_HOUR
    per_hour = (
        _resource(snapshot, "vcpus") * rates.vcpu_hour
        + _resource(snapshot, "memory_mib") / MIB_PER_GIB * rates.gib_hour
        + _resource(snapshot, "gpus") * rates.gpu_hour
    )
    if (snapshot.get("queue") or "") in rates.spot_queues:
        per_hour *= rates.spot_factor
    return (per_hour * hours).quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)

"""What the benchmarks print and how they time a call: shared so every bench reports alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def say(message: str) -> None:
    """A progress line, flushed at once (benchmarks run for minutes; their output is followed live)."""
    print(message, flush=True)


def median_time(call: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)

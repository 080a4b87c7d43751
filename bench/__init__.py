"""Benchmarks: ``python -m bench`` (or ``make bench``) runs every ``bench/bench_*.py``.

Each module defines ``run() -> list[Figure]``. A figure is a median of several runs
next to a baseline measured in the same run, so the ratio means something on a noisy
machine. Results are printed as a table and written to ``bench/results/<time>.json``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    area: str
    name: str
    median: float
    unit: str  # "ms", "µs", "per s"
    baseline_name: str | None = None
    baseline_median: float | None = None
    runs: int = 0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline_median in (None, 0):
            return None
        return self.median / self.baseline_median

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def median_seconds(fn: Callable[[], object], *, runs: int = 15, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` over ``runs`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)

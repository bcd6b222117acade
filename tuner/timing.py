"""Wall-clock timing the way every tunebird benchmark states it: warm-up, repeats, median and spread,
inputs rotated across several batches so caches are not flattered."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

METHODOLOGY = (
    "{warmup} warm-up calls, then timed calls on {n_batches} rotating input batches until at least "
    "{min_repeats} calls and {min_seconds:g} s; median and interquartile range reported"
)


@dataclass(frozen=True)
class Timing:
    median_s: float
    p25_s: float
    p75_s: float
    repeats: int

    @property
    def spread_s(self) -> float:
        return self.p75_s - self.p25_s


def time_calls(fn: Callable[[Any], Any], batches: Sequence[Any], *, warmup: int = 3, min_repeats: int = 10,
               min_seconds: float = 0.5, max_repeats: int = 100_000) -> Timing:
    """Time ``fn(batch)`` over rotating ``batches``."""
    for i in range(warmup):
        fn(batches[i % len(batches)])
    times = []
    start = time.perf_counter()
    i = 0
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < min_seconds):
        x = batches[i % len(batches)]
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
        i += 1
    p25, med, p75 = np.percentile(times, [25, 50, 75])
    return Timing(float(med), float(p25), float(p75), len(times))


def rotating_batches(X: Any, batch: int, n_batches: int = 4, seed: int = 0) -> list[Any]:
    """``n_batches`` distinct batches of ``batch`` rows drawn from ``X`` (C-contiguous copies; a DataFrame's
    batches are DataFrames)."""
    rng = np.random.default_rng(seed)
    if hasattr(X, "iloc"):
        return [X.iloc[rng.integers(0, len(X), size=batch)].reset_index(drop=True) for _ in range(n_batches)]
    return [np.ascontiguousarray(X[rng.integers(0, len(X), size=batch)]) for _ in range(n_batches)]

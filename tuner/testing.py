"""Test doubles for the tuner: a measurer that times nothing (STYLE: fakes, not compilers, test the search)."""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping, Sequence

from .measure import MeasureResult, TaskInputs


def synthetic_latency(config: Mapping[str, Any], batch: int) -> float:
    """A deterministic latency with structure a cost model can learn: strategy, threads, chunking, knobs."""
    base = {"tiled_traversal": 1.0, "perfect_tree_traversal": 3.0, "tree_traversal": 5.0, "gemm": 8.0}.get(
        config["strategy"], 4.0)
    backend = {"tvm-tir": 1.0, "tvm": 1.5, "torchscript": 2.0, "inductor": 1.8, "torch": 3.0}.get(config["backend"], 2.5)
    threads = 1.0 / math.sqrt(config.get("threads", 1)) if batch > 64 else 1.0 + 0.1 * (config.get("threads", 1) - 1)
    chunk = 1.0 + 0.2 * abs(math.log2(max(config.get("batch_size", batch), 1) / max(batch, 1)))
    knob = 1.0 + 0.05 * (sum(hash(str(v)) % 7 for v in config.get("knobs", {}).values()) % 5)
    return 1e-6 * (20 + batch) * base * backend * threads * chunk * knob


class FakeMeasurer:
    """Returns ``latency_fn(config, batch)`` instantly; remembers every (config, batch) it was asked to measure."""

    def __init__(self, latency_fn: Callable[[Mapping[str, Any], int], float] = synthetic_latency,
                 delay_s: float = 0.0, status_fn: Callable[[Mapping[str, Any]], str] | None = None):
        self.latency_fn = latency_fn
        self.delay_s = delay_s
        self.status_fn = status_fn
        self.calls: list[tuple[dict[str, Any], int]] = []

    def measure(self, ops: Sequence[Any], config: Mapping[str, Any], inputs: TaskInputs, *,
                best_s: float | None = None, timeout_s: float | None = None) -> MeasureResult:
        batch = len(inputs.batches[0])
        self.calls.append((dict(config), batch))
        if self.delay_s:
            time.sleep(self.delay_s)
        status = self.status_fn(config) if self.status_fn else "ok"
        if status != "ok":
            return MeasureResult(status, error=f"injected {status}")
        lat = self.latency_fn(config, batch)
        return MeasureResult("ok", lat, lat * 0.02, 0.0, 10)

    def close(self) -> None:
        pass

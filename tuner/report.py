"""What ``tune`` tried and found: per job and per batch size, and where the time went."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JobReport:
    task: str
    workload_hash: str
    batch_size: int
    trials: int
    best_config: dict[str, Any] | None
    best_latency_s: float | None
    default_latency_s: float | None
    statuses: dict[str, int]


@dataclass
class TuneReport:
    """What ``tune`` tried and found.  ``speedup[b]`` is untuned default latency / tuned latency at batch b."""

    model: str
    device: str
    db: str
    jobs: list[JobReport]
    tuned_latency_s: dict[int, float]
    default_latency_s: dict[int, float]
    chosen: dict[int, list[dict[str, Any]]]
    trials_measured: int
    seconds: float
    artifacts: int = 0
    # where the time went: "prepare" (conversion, sample inputs, partitions), "search" (proposing,
    # measuring, learning), "builds" (the winners' artifacts); and the artifacts skipped at the deadline
    time_s: dict[str, float] = field(default_factory=dict)
    skipped_builds: int = 0

    @property
    def speedup(self) -> dict[int, float]:
        return {
            b: self.default_latency_s[b] / t
            for b, t in self.tuned_latency_s.items()
            if b in self.default_latency_s and t > 0
        }

    def time_line(self) -> str:
        """Where the time went, in one line."""
        parts = [f"{name} {self.time_s[name]:.1f} s" for name in ("prepare", "search", "builds") if name in self.time_s]
        skipped = f"; {self.skipped_builds} artifact builds skipped at the deadline" if self.skipped_builds else ""
        return f"Time: {', '.join(parts)} (total {self.seconds:.1f} s){skipped}"

    def rows(self) -> list[list[str]]:
        """One row per batch size: tuned vs untuned latency and the chosen strategy per task."""
        out = []
        for b in sorted(self.tuned_latency_s):
            t = self.tuned_latency_s[b]
            d = self.default_latency_s.get(b)
            choice = " + ".join(f"{c['strategy']}@{c['backend']}" for c in self.chosen.get(b, []))
            out.append([
                str(b), _fmt_s(d), _fmt_s(t), f"{d / t:.2f}x" if d and t else "-",
                f"{b / t:,.0f}" if t else "-", choice,
            ])
        return out


def _fmt_s(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms"

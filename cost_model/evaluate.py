"""Leave-one-workload-out evaluation: does a model trained on other workloads rank a new one's candidates?

For every workload, a fresh model is fitted on the trials of all other
workloads and predicts that workload's trials.  Per (workload, batch size,
device) group with at least ``min_group`` ok trials it scores the Spearman
rank correlation between predicted and measured latency, and whether the
measured best is among the ``k`` best predicted (top-k recall).  The figures
are the mean Spearman over groups and the fraction of groups with a hit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr

from .base import CostModel
from .store import Dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupScore:
    """How one model ranked one (workload, batch size, device) group of held-out trials."""

    group: str
    workload: str
    batch_size: int
    n: int
    spearman: float  # NaN when the predictions are all equal
    best_predicted_rank: int  # 0-based position of the measured best in the predicted order

    def hit(self, k: int) -> bool:
        return self.best_predicted_rank < k


@dataclass(frozen=True)
class EvalResult:
    """One model's scores over every group."""

    name: str
    groups: tuple[GroupScore, ...]
    k: int

    @property
    def n_trials(self) -> int:
        return sum(g.n for g in self.groups)

    @property
    def spearman(self) -> float:
        """Mean Spearman over groups (a group with constant predictions counts as 0)."""
        vals = [0.0 if math.isnan(g.spearman) else g.spearman for g in self.groups]
        return float(np.mean(vals)) if vals else math.nan

    @property
    def recall(self) -> float:
        """Fraction of groups whose measured best is among the top ``k`` predicted."""
        return float(np.mean([g.hit(self.k) for g in self.groups])) if self.groups else math.nan

    def by_batch(self) -> dict[int, EvalResult]:
        out: dict[int, list[GroupScore]] = {}
        for g in self.groups:
            out.setdefault(g.batch_size, []).append(g)
        return {b: EvalResult(self.name, tuple(gs), self.k) for b, gs in sorted(out.items())}


def score_groups(data: Dataset, predictions: np.ndarray, *, min_group: int = 10) -> list[GroupScore]:
    """Per-group Spearman and the predicted rank of the measured best (groups smaller than ``min_group`` skipped)."""
    groups = data.groups
    out = []
    for g in sorted(set(groups.tolist())):
        idx = np.flatnonzero(groups == g)
        if len(idx) < min_group:
            continue
        pred, lat = np.asarray(predictions)[idx], data.latencies[idx]
        rho = math.nan if np.ptp(pred) == 0 else float(spearmanr(pred, lat).statistic)
        order = np.argsort(pred, kind="stable")
        best = int(np.argmin(lat))
        c = data.candidates[idx[0]]
        out.append(GroupScore(g, c.task_hash, int(c.batch_size), len(idx), rho, int(np.flatnonzero(order == best)[0])))
    return out


def leave_one_workload_out(data: Dataset, make_model: Callable[[], CostModel], *, name: str, k: int = 5,
                           min_group: int = 10) -> EvalResult:
    """Fit ``make_model()`` without each workload in turn and score its predictions on that workload."""
    workloads = data.workloads
    predictions = np.full(len(data), np.nan)
    for w in sorted(set(workloads.tolist())):
        test = workloads == w
        train = data.subset(~test)
        model = make_model()
        if len(train):
            model.fit(train.candidates, train.latencies)
        held = data.subset(test)
        predictions[test] = model.predict(held.candidates)
        log.debug("%s: held out %s (%d trials)", name, w[:12], int(test.sum()))
    return EvalResult(name, tuple(score_groups(data, predictions, min_group=min_group)), k)


def evaluate(data: Dataset, models: Mapping[str, Callable[[], CostModel]], *, k: int = 5,
             min_group: int = 10) -> list[EvalResult]:
    """:func:`leave_one_workload_out` for each named model factory."""
    return [leave_one_workload_out(data, make, name=name, k=k, min_group=min_group) for name, make in models.items()]


def format_results(results: Sequence[EvalResult]) -> str:
    """A table: one line per model (and per model and batch size)."""
    if not results:
        return "(no models)"
    k = results[0].k
    header = ("model", "batch", "groups", "trials", "spearman", f"top-{k} recall")
    rows = []
    for r in results:
        rows.append((r.name, "all", str(len(r.groups)), str(r.n_trials), f"{r.spearman:.3f}", f"{r.recall:.3f}"))
        for b, rb in r.by_batch().items():
            rows.append(("", str(b), str(len(rb.groups)), str(rb.n_trials), f"{rb.spearman:.3f}", f"{rb.recall:.3f}"))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)

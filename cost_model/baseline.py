"""The trivial baseline: the untuned heuristic default first, the rest by an analytic estimate."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from strategies.compile import resolve_config
from strategies.ground.errors import InvalidConfigError
from strategies.ir import Op

from .base import CostModel, check_training_data, register_model
from .features import Candidate, _device_dict, analytic_seconds


def default_config(ops: Sequence[Op], batch_size: int, threads: int | None = None) -> dict[str, Any] | None:
    """The untuned default (``strategies.compile.default_strategy`` on its default backend) at ``batch_size``.

    Its chunk size is capped at ``batch_size`` (a larger chunk serves the same
    rows), so it is one of ``tuner.space.TaskSpace(ops, batch_size)``'s configs.
    ``threads`` defaults to the cores this process may use.  None when the
    default cannot be built here (its backend is unavailable).
    """
    try:
        cfg = resolve_config(tuple(ops), {"threads": threads} if threads else {})
    except InvalidConfigError:
        return None
    return cfg.replace(batch_size=min(cfg.batch_size, int(batch_size)))


def same_config(a: Mapping[str, Any], b: Mapping[str, Any], batch_size: int) -> bool:
    """Whether two configs serve ``batch_size`` rows identically (chunk sizes above it are equal)."""
    keys = ("strategy", "backend", "threads", "fuse_post")
    return (
        all(a.get(k) == b.get(k) for k in keys)
        and dict(a.get("knobs") or {}) == dict(b.get("knobs") or {})
        and min(int(a.get("batch_size") or batch_size), batch_size) == min(int(b.get("batch_size") or batch_size), batch_size)
    )


@register_model
class HeuristicCostModel(CostModel):
    """What an untuned system knows: the default config ranks first (cost 0), others by
    :func:`~cost_model.features.analytic_seconds`.  Needs no training; ``fit`` / ``update`` only count."""

    kind: ClassVar[str] = "heuristic"

    def __init__(self) -> None:
        self._defaults: dict[tuple, dict[str, Any] | None] = {}
        self._n_trials = 0

    def fit(self, candidates: Sequence[Candidate], latencies: Any) -> HeuristicCostModel:
        self._n_trials = len(check_training_data(candidates, latencies)[0])
        return self

    def update(self, candidates: Sequence[Candidate], latencies: Any) -> HeuristicCostModel:
        self._n_trials += len(check_training_data(candidates, latencies)[0])
        return self

    def _default(self, c: Candidate) -> dict[str, Any] | None:
        threads = _device_dict(c.device).get("n_cores") or None
        key = (c.task_hash, int(c.batch_size), threads)
        if key not in self._defaults:
            self._defaults[key] = default_config(c.ops, c.batch_size, threads)
        return self._defaults[key]

    def is_default(self, c: Candidate) -> bool:
        """Whether ``c`` is its task's untuned default config."""
        d = self._default(c)
        return d is not None and same_config(c.config, d, int(c.batch_size))

    def predict(self, candidates: Sequence[Candidate]) -> np.ndarray:
        return np.array([0.0 if self.is_default(c) else analytic_seconds(c) for c in candidates], dtype=np.float64)

    @property
    def n_trials(self) -> int:
        return self._n_trials

    def _payload(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        return {"n_trials": self._n_trials}, {}

    @classmethod
    def _from_payload(cls, meta: Mapping[str, Any], parts: Mapping[str, bytes]) -> HeuristicCostModel:
        model = cls()
        model._n_trials = int(meta.get("n_trials", 0))
        return model

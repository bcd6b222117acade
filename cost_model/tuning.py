"""The cost model a tuning run uses: the device's learned model, the heuristic until it has learned enough.

:class:`DeviceCostModel` implements the :class:`~cost_model.base.CostModel`
interface the tuner's search strategies rank with.  It predicts with the
learned model once that has seen ``min_trials`` trials (with the heuristic
baseline before, and always ranking the untuned default first), learns from
every update, stores each new task's operators in the records database (so
later sessions can retrain from the records) and saves the learned model for
the device every ``save_every`` trials and on :meth:`save`.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from records import Database, TrialStatus

from .base import CostModel
from .baseline import HeuristicCostModel
from .features import Candidate
from .model import XGBCostModel
from .store import MODEL_NAME, load_model, save_model, store_workload_ir, train_for_device

log = logging.getLogger(__name__)


class DeviceCostModel(CostModel):
    """A learned model for one device, persisted in the records database, with a heuristic warm-up."""

    kind: ClassVar[str] = "device"

    def __init__(self, db: Database, device: Any, model: CostModel | None = None, *, min_trials: int = 8,
                 save_every: int = 64) -> None:
        self.db = db
        self.device = device
        self.model = model if model is not None else XGBCostModel()
        self.baseline = HeuristicCostModel()
        self.min_trials = min_trials
        self.save_every = save_every
        self._unsaved = 0
        self._stored: set[str] = set()

    @property
    def fingerprint(self) -> str:
        return self.device.fingerprint

    @property
    def n_trials(self) -> int:
        return self.model.n_trials

    def predict(self, candidates: Sequence[Candidate]) -> np.ndarray:
        """Predicted seconds per call (the untuned default gets 0: it is measured first)."""
        if not candidates:
            return np.zeros(0)
        if self.model.n_trials >= self.min_trials:
            pred = self.model.predict(candidates)
            default = np.array([self.baseline.is_default(c) for c in candidates], dtype=bool)
            return np.where(default, 0.0, pred)
        return self.baseline.predict(candidates)

    def fit(self, candidates: Sequence[Candidate], latencies: Any) -> DeviceCostModel:
        self.model.fit(candidates, latencies)
        return self

    def update(self, candidates: Sequence[Candidate], latencies: Any) -> DeviceCostModel:
        """Learn from measured candidates (non-finite latencies, failed trials, are not learned from)."""
        for c in candidates:
            h = c.task_hash
            if h not in self._stored:
                store_workload_ir(self.db, c.ops, self.fingerprint, workload_hash_=h)
                self._stored.add(h)
        if not candidates:
            return self
        self.model.update(candidates, latencies)
        self._unsaved += len(candidates)
        if self._unsaved >= self.save_every:
            self.save()
        return self

    def save(self) -> None:
        """Persist the learned model for the device now (if it has learned anything new)."""
        if self.model.n_trials and self._unsaved:
            save_model(self.db, self.model, self.fingerprint)
            self._unsaved = 0

    def close(self) -> None:
        self.save()

    def to_bytes(self) -> bytes:
        return self.model.to_bytes()

    def _payload(self) -> tuple[dict[str, Any], dict[str, bytes]]:  # pragma: no cover - to_bytes delegates
        return self.model._payload()

    @classmethod
    def _from_payload(cls, meta: Mapping[str, Any], parts: Mapping[str, bytes]) -> CostModel:  # pragma: no cover
        raise TypeError("a DeviceCostModel is persisted as its learned model; load that with model_from_bytes")


def for_device(db: Database, device: Any, **options: Any) -> DeviceCostModel:
    """The device's cost model: the saved one, or one retrained from the records when the saved one is
    missing, stale (another feature schema) or has seen fewer trials than the records hold."""
    fp = device.fingerprint
    model = load_model(db, fp, name=MODEL_NAME)
    recorded = len(db.trials(device_fingerprint=fp, status=TrialStatus.OK))
    if model is None or model.n_trials < recorded:
        fresh = train_for_device(db, fp, XGBCostModel())
        if fresh is not None:
            model = fresh
    if model is not None:
        log.info("cost model for device %s: learned from %d trials", fp[:12], model.n_trials)
    return DeviceCostModel(db, device, model, **options)

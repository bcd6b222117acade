"""The tuner's view of the cost model: rank a task's configs, learn from each round, persist per device.

``tuner.search`` calls ``predict(task, configs, batch)`` (seconds per call,
lower is better; 0 means "measure it first") and ``observe(task, batch,
configs, results)``.  ``task`` is anything with ``ops`` (and optionally
``workload_hash``); results have ``ok`` and ``median_s`` (``tuner.measure.MeasureResult``).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np

from records import Database, TrialStatus

from .base import CostModel
from .baseline import HeuristicCostModel
from .features import Candidate
from .model import XGBCostModel
from .store import MODEL_NAME, load_model, save_model, store_workload_ir, train_for_device

log = logging.getLogger(__name__)


class ModelRanker:
    """Ranks with ``model`` once it has learned from ``min_trials`` trials (before that, the heuristic baseline).

    Every observed round updates the model; it is saved to ``db`` for the
    device every ``save_every`` new trials and by :meth:`save`.  The first time
    a task is observed its operators are stored, so later sessions can retrain
    from the records.
    """

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

    def _candidates(self, task: Any, configs: Sequence[Mapping[str, Any]], batch: int) -> list[Candidate]:
        h = getattr(task, "workload_hash", None)
        return [Candidate(tuple(task.ops), c, int(batch), self.device, h) for c in configs]

    def predict(self, task: Any, configs: Sequence[Mapping[str, Any]], batch: int) -> np.ndarray:
        """Predicted seconds per call for each config (the default config and unknown tasks get 0: try them)."""
        cands = self._candidates(task, configs, batch)
        if self.model.n_trials >= self.min_trials:
            pred = self.model.predict(cands)
            default = np.array([self.baseline.is_default(c) for c in cands], dtype=bool)
            return np.where(default, 0.0, pred)
        return self.baseline.predict(cands)

    def observe(self, task: Any, batch: int, configs: Sequence[Mapping[str, Any]], results: Sequence[Any]) -> None:
        """Learn from one round's measurements (failed ones are not learned from)."""
        cands = self._candidates(task, configs, batch)
        if not cands:
            return
        h = cands[0].task_hash
        if h not in self._stored:
            store_workload_ir(self.db, cands[0].ops, self.fingerprint, workload_hash_=h)
            self._stored.add(h)
        lat = [r.median_s if r.ok and r.median_s else math.nan for r in results]
        self.model.update(cands, lat)
        self._unsaved += len(cands)
        if self._unsaved >= self.save_every:
            self.save()

    def save(self) -> None:
        """Persist the model for the device now (if it has learned anything)."""
        if self.model.n_trials and self._unsaved:
            save_model(self.db, self.model, self.fingerprint)
            self._unsaved = 0

    def close(self) -> None:
        self.save()


def ranker_for(db: Database, device: Any, **options: Any) -> ModelRanker:
    """The device's cost model as a tuner ranker: the saved one, or one retrained from the records when
    the saved one is missing, stale (another feature schema) or has seen fewer trials than the records hold."""
    fp = device.fingerprint
    model = load_model(db, fp, name=MODEL_NAME)
    recorded = len(db.trials(device_fingerprint=fp, status=TrialStatus.OK))
    if model is None or model.n_trials < recorded:
        fresh = train_for_device(db, fp, XGBCostModel())
        if fresh is not None:
            model = fresh
    if model is not None:
        log.info("cost model for device %s: learned from %d trials", fp[:12], model.n_trials)
    return ModelRanker(db, device, model, **options)

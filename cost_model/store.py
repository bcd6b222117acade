"""Cost models and training data in the records database.

* One model per device, saved with ``Database.save_cost_model`` under
  :data:`MODEL_NAME`; loading one trained on another feature schema gives None
  (and a log line), so the caller retrains instead of misusing it.
* Trials name their workload by hash only, so the operators of each workload
  are kept beside them (``to_bytes`` of the task's ops, saved as a cost-model
  record named ``workload-ir:<hash>``): that is what lets a model be retrained
  from the records, and ``tunebird costmodel eval`` featurize past trials.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from records import CostModelRecord, Database, TrialStatus, WorkloadRecord
from strategies.ir import Op, from_bytes, to_bytes

from .base import CostModel, StaleCostModelError, model_from_bytes
from .features import Candidate, workload_hash

log = logging.getLogger(__name__)

MODEL_NAME = "xgboost"
IR_PREFIX = "workload-ir:"


def save_model(db: Database, model: CostModel, device_fingerprint: str, *, name: str | None = None) -> CostModelRecord:
    """Persist ``model`` as the device's cost model ``name`` (default: its kind; the device must be registered)."""
    return db.save_cost_model(device_fingerprint=device_fingerprint, name=name or model.kind, payload=model.to_bytes(),
                              n_trials=model.n_trials)


def load_model(db: Database, device_fingerprint: str, *, name: str = MODEL_NAME) -> CostModel | None:
    """The device's newest saved cost model, or None when there is none or it is stale (needs retraining)."""
    found = db.load_cost_model(device_fingerprint, name)
    if found is None:
        return None
    record, payload = found
    try:
        return model_from_bytes(payload)
    except StaleCostModelError as exc:
        log.info("not using cost model %r of device %s: %s", name, device_fingerprint[:12], exc)
        return None


def store_workload_ir(db: Database, ops: Sequence[Op], device_fingerprint: str, *,
                      workload_hash_: str | None = None, summary: str | None = None) -> str:
    """Register the workload of ``ops`` (if new) and keep its operators; returns its workload hash."""
    ops = tuple(ops)
    h = workload_hash_ or workload_hash(ops)
    if db.get_workload(h) is None:
        db.register_workload(WorkloadRecord(h, summary or " -> ".join(op.summary() for op in ops),
                                            tuple(op.kind for op in ops)))
    if not db.cost_models(name=IR_PREFIX + h):
        db.save_cost_model(device_fingerprint=device_fingerprint, name=IR_PREFIX + h, payload=to_bytes(ops),
                           n_trials=0)
    return h


def load_workload_ir(db: Database, workload_hash_: str) -> tuple[Op, ...] | None:
    """The operators stored for a workload, or None."""
    found = db.cost_models(name=IR_PREFIX + workload_hash_)
    if not found:
        return None
    return tuple(from_bytes(db.fetch_cost_model(found[0])))


@dataclass
class Dataset:
    """Measured candidates and their median latencies (seconds per call)."""

    candidates: list[Candidate] = field(default_factory=list)
    latencies: np.ndarray = field(default_factory=lambda: np.zeros(0))
    skipped_workloads: tuple[str, ...] = ()  # workloads with trials but no stored operators

    def __len__(self) -> int:
        return len(self.candidates)

    @property
    def workloads(self) -> np.ndarray:
        return np.array([c.task_hash for c in self.candidates], dtype=str)

    @property
    def groups(self) -> np.ndarray:
        return np.array([c.group for c in self.candidates], dtype=str)

    def subset(self, mask: np.ndarray) -> Dataset:
        idx = np.flatnonzero(mask)
        return Dataset([self.candidates[i] for i in idx], self.latencies[idx], self.skipped_workloads)


def load_dataset(db: Database, device_fingerprint: str | None = None) -> Dataset:
    """Every ok trial (of one device, or all) whose workload's operators are stored, as a :class:`Dataset`."""
    devices = {d.fingerprint: d for d in db.devices()}
    ops_of: dict[str, tuple[Op, ...] | None] = {}
    cands, lats, skipped = [], [], set()
    for t in db.trials(device_fingerprint=device_fingerprint, status=TrialStatus.OK):
        if t.workload_hash not in ops_of:
            ops_of[t.workload_hash] = load_workload_ir(db, t.workload_hash)
        ops = ops_of[t.workload_hash]
        if ops is None:
            skipped.add(t.workload_hash)
            continue
        cands.append(Candidate(ops, t.config, t.batch_size, devices.get(t.device_fingerprint), t.workload_hash))
        lats.append(t.latency_median_s)
    if skipped:
        log.warning("%d workload(s) have trials but no stored operators; their trials are left out", len(skipped))
    return Dataset(cands, np.asarray(lats, dtype=np.float64), tuple(sorted(skipped)))


def train_for_device(db: Database, device_fingerprint: str, model: CostModel, *, save: bool = True) -> CostModel | None:
    """Fit ``model`` on the device's records (saving it when ``save``); None when there is nothing to learn from."""
    data = load_dataset(db, device_fingerprint)
    if not len(data):
        return None
    model.fit(data.candidates, data.latencies)
    if save:
        save_model(db, model, device_fingerprint)
    return model

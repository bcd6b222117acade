"""The cost-model interface: rank candidates before they are measured; learn as trials arrive."""

from __future__ import annotations

import abc
import io
import json
import zipfile
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from strategies.ground.errors import TunebirdError

from .features import Candidate

PAYLOAD_VERSION = 1


class StaleCostModelError(TunebirdError):
    """A persisted cost model was trained on a different feature schema (or payload format) than this code's."""


class CostModel(abc.ABC):
    """Predicts which candidates of a task are fast, from features of (task, config, batch size, device).

    Lifecycle: construct (the constructor only stores its arguments), then
    :meth:`fit` on measured candidates, :meth:`predict` to rank new ones,
    :meth:`update` as trials arrive (it fits when nothing was fitted yet), and
    :meth:`to_bytes` / :func:`model_from_bytes` to persist it (the records
    database keeps one per device).  Predictions are costs, lower is better,
    comparable among the candidates of one task at one batch size; models that
    can, return estimated seconds per call of ``batch_size`` rows.

    ``latencies`` are the trials' median seconds per call; a non-finite
    latency (a failed trial) is left out of training.  Not thread-safe.
    """

    kind: ClassVar[str]

    @abc.abstractmethod
    def fit(self, candidates: Sequence[Candidate], latencies: Any) -> CostModel:
        """Learn from scratch from measured candidates; returns self.

        Raises:
            ValueError: ``latencies`` does not have one entry per candidate.
        """

    @abc.abstractmethod
    def update(self, candidates: Sequence[Candidate], latencies: Any) -> CostModel:
        """Add new measurements to what the model has learned; returns self."""

    @abc.abstractmethod
    def predict(self, candidates: Sequence[Candidate]) -> np.ndarray:
        """One cost per candidate (lower is better).

        Raises:
            sklearn.exceptions.NotFittedError: the model needs training and has none.
        """

    @property
    @abc.abstractmethod
    def n_trials(self) -> int:
        """How many measured trials the model has learned from."""

    @abc.abstractmethod
    def _payload(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        """JSON metadata and named binary parts that :meth:`_from_payload` restores."""

    @classmethod
    @abc.abstractmethod
    def _from_payload(cls, meta: Mapping[str, Any], parts: Mapping[str, bytes]) -> CostModel:
        """Inverse of :meth:`_payload`.

        Raises:
            StaleCostModelError: the payload was made for another feature schema.
        """

    def rank(self, candidates: Sequence[Candidate]) -> np.ndarray:
        """Indices of ``candidates``, predicted best first (ties keep their order)."""
        return np.argsort(self.predict(candidates), kind="stable")

    def to_bytes(self) -> bytes:
        """The model as a zip of ``meta.json`` and binary parts (no pickle)."""
        meta, parts = self._payload()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("meta.json", json.dumps({"kind": self.kind, "payload_version": PAYLOAD_VERSION, **meta},
                                                sort_keys=True))
            for name, data in sorted(parts.items()):
                zf.writestr(name, data)
        return buf.getvalue()


_KINDS: dict[str, type[CostModel]] = {}


def register_model(cls: type[CostModel]) -> type[CostModel]:
    """Class decorator: make ``cls`` loadable by :func:`model_from_bytes`."""
    _KINDS[cls.kind] = cls
    return cls


def model_from_bytes(data: bytes) -> CostModel:
    """The cost model that :meth:`CostModel.to_bytes` wrote.

    Raises:
        StaleCostModelError: written for another feature schema or payload version (retrain it).
        ValueError: not a tunebird cost-model payload, or of an unknown kind.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            meta = json.loads(zf.read("meta.json"))
            parts = {n: zf.read(n) for n in zf.namelist() if n != "meta.json"}
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a tunebird cost-model payload: {exc}") from None
    if meta.get("payload_version") != PAYLOAD_VERSION:
        raise StaleCostModelError(
            f"cost-model payload version {meta.get('payload_version')!r}, this tunebird reads {PAYLOAD_VERSION}; "
            "retrain it (tunebird costmodel train)"
        )
    cls = _KINDS.get(meta.get("kind"))
    if cls is None:
        raise ValueError(f"unknown cost-model kind {meta.get('kind')!r}; expected one of {sorted(_KINDS)}")
    return cls._from_payload(meta, parts)


def check_training_data(candidates: Sequence[Candidate], latencies: Any) -> tuple[list[Candidate], np.ndarray]:
    """The candidates with a finite positive latency, and those latencies (float64)."""
    lat = np.asarray(latencies, dtype=np.float64).reshape(-1)
    if lat.shape[0] != len(candidates):
        raise ValueError(f"latencies has {lat.shape[0]} entries, but {len(candidates)} candidates were given")
    keep = np.isfinite(lat) & (lat > 0)
    return [c for c, k in zip(candidates, keep) if k], lat[keep]

"""Batch scoring on a cluster, the engine-free half: what the driver ships and what a worker loads.

The driver turns a model (tuned in the records database) or an artifact file
into artifact bytes and their SHA-256 (:func:`artifact_for`), and works out the
output's columns and dtypes (:func:`output_layout`).  Each worker process loads
the predictor once per artifact (:func:`worker_predictor`, cached by SHA-256):
it checks the SHA-256 of the bytes it received and that the device recorded in
the artifact is the device it runs on, then refuses the artifact or, when asked,
falls back to the untuned default of the model inside the artifact.

``tuner.dask`` and ``tuner.spark`` are the engines' halves; nothing here imports
an engine.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from strategies.ground.errors import ArtifactIntegrityError, TunebirdError

from .predictor import Predictor

log = logging.getLogger(__name__)

OnMismatch = Literal["raise", "default"]
ON_MISMATCH: tuple[str, ...] = ("raise", "default")


class DeviceMismatchError(TunebirdError, RuntimeError):
    """An artifact was built for another device than the worker that was asked to load it."""


@dataclass(frozen=True)
class OutputLayout:
    """What a method returns, as a table: column names and dtypes (one column for a 1-D result)."""

    method: str
    columns: tuple[str, ...]
    dtypes: tuple[np.dtype, ...]
    one_d: bool

    def frame(self, values: np.ndarray, index: Any = None) -> Any:
        """The method's output ``values`` as a pandas DataFrame with these columns."""
        import pandas as pd

        if self.one_d:
            return pd.DataFrame({self.columns[0]: values}, index=index, copy=False)
        return pd.DataFrame(values, index=index, columns=list(self.columns), copy=False)


# --------------------------------------------------------------------------- the driver


def artifact_for(model: Any = None, *, db: Any = None, artifact: Any = None, sha256: str | None = None,
                 strict: bool = False) -> tuple[bytes, str, Predictor]:
    """The artifact bytes to ship, their SHA-256 and the predictor (loaded here, for the output layout).

    Exactly one of ``model`` (an estimator, a model path or a Predictor; its tuned
    predictor is looked up in ``db`` as ``tuner.load`` does, with ``strict``) and
    ``artifact`` (a file written by ``Predictor.save``, or its bytes).  ``sha256``:
    the digest the artifact must have (checked here and on every worker).
    """
    if (model is None) == (artifact is None):
        raise TypeError("give either a model (with db=) or artifact=, "
                        f"got {'both' if model is not None else 'neither'}")
    if artifact is not None:
        data = artifact if isinstance(artifact, (bytes, bytearray, memoryview)) else Path(artifact).read_bytes()
        data = bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        if sha256 is not None and sha256 != digest:
            raise ArtifactIntegrityError(f"artifact: SHA-256 is {digest}, expected {sha256}; refusing to ship it")
        what = str(artifact) if isinstance(artifact, (str, Path)) else "artifact"
        return data, digest, Predictor.from_artifact(data, expected_sha256=digest, what=what)
    if isinstance(model, Predictor):
        predictor = model
    else:
        from .deploy import load

        predictor = load(model, db=db, strict=strict)
    from .artifact import model_artifact_bytes

    predictor.warm_up()
    data = model_artifact_bytes(predictor.model, predictor.plans, tuned=predictor.tuned)
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and sha256 != digest:
        raise ArtifactIntegrityError(f"{predictor.model.source}: SHA-256 is {digest}, expected {sha256}")
    return data, digest, predictor


def output_layout(predictor: Predictor, method: str, sample: Any) -> OutputLayout:
    """Columns and dtypes of ``predictor.<method>``, found by running it on ``sample`` (a few rows shaped and
    typed like the data).  A classifier's ``predict_proba`` has one column per class, named by the class;
    a 1-D result is one column named after the method."""
    if method not in predictor.methods:
        raise AttributeError(f"{predictor.model.source} has no method {method!r}; it has {', '.join(predictor.methods)}")
    if any(m == method for m, _ in predictor.model.head.splits):
        raise ValueError(f"{predictor.model.source}'s {method} returns a list of arrays (one per output); "
                         "distributed scoring writes one array per partition, so it cannot score it")
    if method == "kneighbors":
        raise ValueError(f"{predictor.model.source}'s kneighbors returns two arrays (distances and indices); "
                         "distributed scoring writes one array per partition, so it cannot score it (score "
                         f"{', '.join(m for m in predictor.methods if m != 'kneighbors')})")
    value = np.asarray(getattr(predictor, method)(sample))
    if value.ndim == 1:
        return OutputLayout(method, (method,), (value.dtype,), one_d=True)
    k = value.shape[1]
    classes = predictor.model.head.classes
    if method in ("predict_proba", "decision_function") and classes is not None and len(classes) == k:
        names = tuple(str(c) for c in classes)
    else:
        names = tuple(f"{method}_{j}" for j in range(k))
    return OutputLayout(method, names, (value.dtype,) * k, one_d=False)


def check_on_mismatch(on_device_mismatch: str) -> None:
    if on_device_mismatch not in ON_MISMATCH:
        raise ValueError(f"on_device_mismatch must be one of {ON_MISMATCH}, got {on_device_mismatch!r}")


# --------------------------------------------------------------------------- the workers

_CACHE: dict[tuple[str, str], Predictor] = {}
_LOCK = threading.Lock()


def worker_predictor(data: bytes, sha256: str, on_device_mismatch: OnMismatch = "raise") -> Predictor:
    """The predictor in ``data``, loaded once per process (cached by SHA-256).

    Raises ``ArtifactIntegrityError`` when ``data`` does not hash to ``sha256``, and
    ``DeviceMismatchError`` when the artifact's device fingerprint is not this
    machine's (unless ``on_device_mismatch="default"``: then the model's untuned
    default, with a warning).
    """
    key = (sha256, on_device_mismatch)
    predictor = _CACHE.get(key)
    if predictor is None:
        with _LOCK:
            predictor = _CACHE.get(key)
            if predictor is None:
                predictor = _CACHE[key] = _load(data, sha256, on_device_mismatch)
    return predictor


def _load(data: bytes, sha256: str, on_device_mismatch: str) -> Predictor:
    from strategies.ground.device import Device, current_device

    from .artifact import _unpack

    manifest, payload = _unpack(bytes(data), f"artifact {sha256[:12]}", sha256)
    here = current_device()
    built = manifest.get("device")
    built_fp = Device.from_dict(built).fingerprint if built else None
    if built_fp == here.fingerprint:
        log.debug("loading artifact %s on %s", sha256[:12], here.summary())
        return Predictor.from_artifact(data, what=f"artifact {sha256[:12]}")
    where = Device.from_dict(built).summary() if built else "an unrecorded device"
    msg = (f"artifact {sha256[:12]} was built for device {(built_fp or '?')[:12]} ({where}), but this worker is "
           f"device {here.fingerprint[:12]} ({here.summary()})")
    if on_device_mismatch == "raise":
        raise DeviceMismatchError(msg + "; tune the model on this kind of worker, or pass "
                                  "on_device_mismatch='default' to score with the untuned default")
    from strategies.model import ConvertedModel

    from .api import compile as compile_default

    warnings.warn(msg + "; using the model's untuned default", stacklevel=2)
    log.warning("%s; using the model's untuned default", msg)
    return compile_default(ConvertedModel.from_bytes(payload["model.ir"]))


def clear_cache() -> None:
    """Forget the predictors this process loaded."""
    with _LOCK:
        _CACHE.clear()

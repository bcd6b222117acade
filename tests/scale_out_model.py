"""The model and rows the Dask and Spark scoring tests share (built once per test process)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

N_FEATURES = 10
PART_ROWS = 250_000
N_PARTS = 8  # 2 million rows


def rows(part: int, n: int = PART_ROWS) -> np.ndarray:
    """Part ``part`` of the scoring rows: float32 normals with some NaN, inf and exact zeros."""
    rng = np.random.default_rng(1000 + part)
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    X[rng.random(X.shape) < 0.01] = np.nan
    X[rng.random(X.shape) < 0.001] = np.inf
    X[rng.random(X.shape) < 0.01] = 0.0
    return X


def all_rows(n_parts: int = N_PARTS, n: int = PART_ROWS) -> np.ndarray:
    return np.concatenate([rows(i, n) for i in range(n_parts)])


@functools.cache
def model():
    """A 3-class XGBoost classifier trained on the fly."""
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, N_FEATURES)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    return xgb.XGBClassifier(n_estimators=20, max_depth=4, random_state=0).fit(X, y)


@functools.cache
def artifact() -> Path:
    """A tvm-tir artifact of :func:`model` (1 thread, 65,536-row batches), written by ``Predictor.save``."""
    import tuner

    path = Path(tempfile.mkdtemp(prefix="tunebird-scale-out-")) / "model.tb"
    tuner.compile(model(), backend="tvm-tir", batch_size=65_536, threads=1).save(str(path))
    return path


def with_device(src: Path, dst: Path, **changes) -> Path:
    """A copy of an artifact whose recorded device differs by ``changes`` (its payload untouched)."""
    import json
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "manifest.json":
                manifest = json.loads(data)
                manifest["device"].update(changes)
                data = json.dumps(manifest, indent=1, sort_keys=True).encode()
            zout.writestr(name, data)
    return dst

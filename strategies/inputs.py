"""Input validation shared by the reference evaluator and every predictor."""

from __future__ import annotations

from typing import Any

import numpy as np

from .head import InputSpec


def as_2d_float(X: Any, spec: InputSpec, *, what: str = "this model") -> np.ndarray:
    """Return ``X`` as a 2-D float32/float64 NumPy array with ``spec.n_features`` columns.

    Accepts NumPy arrays, pandas DataFrames, torch tensors and nested lists.
    float32 and float64 arrays pass through without a copy; integer and boolean
    arrays become float64.  Raises ``ValueError`` / ``TypeError`` with a message
    that names what was expected and what was given.
    """
    X = _to_numpy(X, spec)
    if X.ndim != 2:
        hint = " Reshape with X.reshape(1, -1) for one sample or X.reshape(-1, 1) for one feature." if X.ndim == 1 else ""
        raise ValueError(
            f"Expected a 2-D array of shape (n_samples, {spec.n_features}), "
            f"got a {X.ndim}-D array of shape {X.shape}.{hint}"
        )
    if X.dtype.kind in "biu":
        X = X.astype(np.float64)
    elif X.dtype.kind == "f":
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float32 if X.dtype.itemsize < 4 else np.float64)
    else:
        raise TypeError(f"Expected a numeric array (float or int), got dtype {X.dtype}.")
    if X.shape[1] != spec.n_features:
        raise ValueError(f"X has {X.shape[1]} features, but {what} is expecting {spec.n_features} features as input.")
    if X.size and not (spec.allow_nan and spec.allow_inf):
        _check_finite(X, spec, what)
    return X


def _to_numpy(X: Any, spec: InputSpec) -> np.ndarray:
    if isinstance(X, np.ndarray):
        return X
    mod = type(X).__module__
    if mod.startswith("pandas"):
        if hasattr(X, "dtypes") and hasattr(X, "columns"):
            bad = [str(c) for c, dt in zip(X.columns, X.dtypes) if getattr(dt, "kind", "O") not in "biuf"]
            if bad:
                raise TypeError(
                    f"Expected numeric DataFrame columns; columns {bad[:5]} are not numeric "
                    "(encode categories as integer codes first)."
                )
            if spec.feature_names is not None and tuple(map(str, X.columns)) != spec.feature_names:
                raise ValueError(
                    f"DataFrame columns {list(map(str, X.columns))[:8]} do not match the feature names "
                    f"the model was fitted with {list(spec.feature_names)[:8]}."
                )
        return X.to_numpy()
    if mod.startswith("torch"):
        return X.detach().cpu().numpy()
    try:
        return np.asarray(X)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"Expected an array-like of shape (n_samples, {spec.n_features}), got {type(X).__name__}: {e}") from None


def _check_finite(X: np.ndarray, spec: InputSpec, what: str) -> None:
    # Summing is far cheaper than isfinite over every entry; fall back when it says "maybe".
    if np.isfinite(np.sum(X, dtype=np.float64)):
        return
    if not spec.allow_nan and np.isnan(X).any():
        raise ValueError(f"Input X contains NaN, which {what} does not accept (the original model rejects it too).")
    if not spec.allow_inf and np.isinf(X).any():
        raise ValueError(f"Input X contains infinity, which {what} does not accept (the original model rejects it too).")

"""The input boundary shared by the reference evaluator and every predictor.

Everything a model is given becomes one 2-D float array here: NumPy arrays
(numeric or object), pandas DataFrames with numeric, object, ``string`` and
``category`` columns, torch tensors, nested lists.  String cells become integer
codes by a vectorised dictionary lookup (``pandas.Index.get_indexer``: hashing,
no Python loop per row); the graph only ever sees numbers.  Then every check the
original model makes: feature count and names, NaN / inf where it refuses
them, categories unknown to an encoder with ``handle_unknown='error'``.  Each
error names what was expected, what was given and, where there is one, the column.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .head import NONE_CODE, UNKNOWN_CODE, ColumnSpec, InputSpec


def as_2d_float(X: Any, spec: InputSpec, *, what: str = "this model") -> np.ndarray:
    """Return ``X`` as a 2-D float32/float64 NumPy array with ``spec.n_features`` columns.

    float32 and float64 numeric arrays pass through without a copy; integer and
    boolean arrays become float64; string columns become codes (float64).
    Raises ``ValueError`` / ``TypeError`` naming what was expected and what was given.
    """
    if spec.ndim == 1:
        X = _one_d(X, what)
    if _is_frame(X):
        X = _from_frame(X, spec, what)
    else:
        X = _to_numpy(X, spec)
        X = _check_shape(X, spec, what)
        X = _numeric(X, spec, what)
    if X.size and not (spec.allow_nan and spec.allow_inf):
        _check_finite(X, spec, what)
    if spec.columns is not None and X.size:
        _check_known(X, spec, what)
    return X


def _one_d(X: Any, what: str) -> Any:
    if _is_frame(X) or type(X).__module__.startswith("pandas"):
        X = X.to_numpy() if hasattr(X, "to_numpy") else X
    a = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{what} expects a 1-D array (n_samples,), got shape {a.shape}")
    return a.reshape(-1, 1)


def _is_frame(X: Any) -> bool:
    return type(X).__module__.startswith("pandas") and hasattr(X, "columns") and hasattr(X, "dtypes")


def _to_numpy(X: Any, spec: InputSpec) -> np.ndarray:
    if isinstance(X, np.ndarray):
        return X
    mod = type(X).__module__
    if mod.startswith("torch"):
        return X.detach().cpu().numpy()
    if mod.startswith("pandas"):  # a Series
        return X.to_numpy()
    try:
        return np.asarray(X)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"Expected an array-like of shape (n_samples, {spec.n_features}), got {type(X).__name__}: {e}") from None


def _check_shape(X: np.ndarray, spec: InputSpec, what: str) -> np.ndarray:
    if X.ndim != 2:
        hint = " Reshape with X.reshape(1, -1) for one sample or X.reshape(-1, 1) for one feature." if X.ndim == 1 else ""
        raise ValueError(
            f"Expected a 2-D array of shape (n_samples, {spec.n_features}), "
            f"got a {X.ndim}-D array of shape {X.shape}.{hint}"
        )
    if X.shape[1] != spec.n_features:
        raise ValueError(f"X has {X.shape[1]} features, but {what} is expecting {spec.n_features} features as input.")
    return X


def _numeric(X: np.ndarray, spec: InputSpec, what: str) -> np.ndarray:
    """A 2-D array (checked shape) as floats; object arrays column by column."""
    if X.dtype.kind == "f":
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float32 if X.dtype.itemsize < 4 else np.float64)
        if spec.has_strings:
            _refuse_numbers_for_strings(spec, what)
        return X
    if X.dtype.kind in "biu":
        if spec.has_strings:
            _refuse_numbers_for_strings(spec, what)
        return X.astype(np.float64)
    if X.dtype.kind in "OUS":
        out = np.empty(X.shape, dtype=np.float64)
        for j in range(X.shape[1]):
            out[:, j] = _encode_column(X[:, j], spec.column(j), spec.column_name(j), what)
        return out
    raise TypeError(f"Expected a numeric array (float or int) or an object array, got dtype {X.dtype}.")


def _refuse_numbers_for_strings(spec: InputSpec, what: str) -> None:
    cols = [spec.column_name(j) for j, c in enumerate(spec.columns or ()) if c.kind == "string"]
    raise TypeError(
        f"{what} expects strings in column(s) {', '.join(cols[:5])}, but X is a numeric array: "
        "pass a pandas DataFrame or an object array holding the strings"
    )


def _from_frame(df: Any, spec: InputSpec, what: str) -> np.ndarray:
    names = [str(c) for c in df.columns]
    if spec.feature_names is not None:
        want = list(spec.feature_names)
        missing = [n for n in want if n not in set(names)]
        extra = [n for n in names if n not in set(want)]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing column(s) {missing[:8]}")
            if extra:
                parts.append(f"unexpected column(s) {extra[:8]}")
            raise ValueError(f"X does not have the columns {what} was fitted with: {'; '.join(parts)}.")
        if len(set(names)) != len(names):
            raise ValueError(f"X has duplicate column names: {sorted({n for n in names if names.count(n) > 1})[:8]}")
        if names != want:
            df = df[[df.columns[names.index(n)] for n in want]]
    elif df.shape[1] != spec.n_features:
        raise ValueError(f"X has {df.shape[1]} features, but {what} is expecting {spec.n_features} features as input.")
    n = df.shape[0]
    out = np.empty((n, spec.n_features), dtype=np.float64)
    simple = spec.columns is None and all(getattr(dt, "kind", "O") in "biuf" for dt in df.dtypes)
    if simple:
        a = df.to_numpy()
        return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)
    for j in range(spec.n_features):
        out[:, j] = _encode_column(df.iloc[:, j], spec.column(j), spec.column_name(j), what)
    return out


def _encode_column(col: Any, cs: ColumnSpec, name: str, what: str) -> np.ndarray:
    """One column (a pandas Series or a 1-D array) as float64: numbers as they are, strings as codes."""
    import pandas as pd

    s = col if isinstance(col, pd.Series) else pd.Series(col, copy=False)
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        cats = s.cat.categories
        if cats.dtype.kind in "OUS" or str(cats.dtype) in ("str", "string"):
            if cs.kind != "string":
                raise TypeError(f"column {name} of X holds strings ({list(cats[:3])}), but {what} expects numbers there")
            table = _code_table(cs, np.asarray(cats, dtype=object))
        else:
            if cs.kind == "string":
                raise TypeError(f"column {name} of X holds numbers ({list(cats[:3])}), but {what} expects strings there")
            table = np.asarray(cats, dtype=np.float64)
        codes = s.cat.codes.to_numpy()
        return np.where(codes < 0, np.nan, table[np.maximum(codes, 0)] if table.size else np.nan)
    kind = getattr(dt, "kind", "O")
    if cs.kind == "string":
        if kind in "biuf" and str(dt) not in ("str", "string"):
            if s.notna().any():
                raise TypeError(f"column {name} of X holds numbers ({s[s.notna()].iloc[0]!r}), "
                                f"but {what} expects strings there")
            return np.full(len(s), np.nan)
        return _codes(s, cs, name, what)
    if kind in "biuf" and str(dt) not in ("str", "string"):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    values = s.to_numpy(dtype=object)
    try:
        return np.asarray(values, dtype=np.float64) if not pd.isna(values).any() else \
            np.where(pd.isna(values), np.nan, values).astype(np.float64)
    except (TypeError, ValueError):
        bad = next((v for v in values if isinstance(v, (str, bytes))), values[0])
        raise TypeError(f"column {name} of X holds strings (e.g. {bad!r}), but {what} expects numbers there") from None


def _code_table(cs: ColumnSpec, values: np.ndarray) -> np.ndarray:
    import pandas as pd

    idx = pd.Index(list(cs.vocabulary), dtype=object).get_indexer(values).astype(np.float64)
    return np.where(idx < 0, UNKNOWN_CODE, idx)


def _codes(s: Any, cs: ColumnSpec, name: str, what: str) -> np.ndarray:
    import pandas as pd

    values = s.to_numpy(dtype=object)
    codes = _code_table(cs, values)
    missing = pd.isna(values)
    if missing.any():
        codes[missing] = np.nan
        if s.dtype == object:
            codes[np.equal(values, None)] = NONE_CODE
    unknown = codes == UNKNOWN_CODE
    if unknown.any():
        bad = values[unknown]
        numbers = [v for v in bad[:64] if not isinstance(v, (str, np.str_))]
        if numbers:
            raise TypeError(f"column {name} of X mixes strings and numbers ({numbers[0]!r}); "
                            f"{what} was fitted on strings there")
    return codes


def _check_finite(X: np.ndarray, spec: InputSpec, what: str) -> None:
    # Summing is far cheaper than isfinite over every entry; fall back when it says "maybe".
    if np.isfinite(np.sum(X, dtype=np.float64)):
        return
    for kind, test, flag in (("NaN", np.isnan, "allow_nan"), ("infinity", np.isinf, "allow_inf")):
        if spec.columns is None:
            if not getattr(spec, flag) and test(X).any():
                raise ValueError(f"Input X contains {kind}, which {what} does not accept (the original model rejects it too).")
            continue
        cols = [j for j, c in enumerate(spec.columns) if not getattr(c, flag)]
        if not cols:
            continue
        bad = test(X[:, cols]).any(axis=0)
        if bad.any():
            j = cols[int(np.flatnonzero(bad)[0])]
            raise ValueError(f"Input X contains {kind} in column {spec.column_name(j)}, which {what} does not accept "
                             "(the original model rejects it too).")


def _check_known(X: np.ndarray, spec: InputSpec, what: str) -> None:
    for j, c in enumerate(spec.columns or ()):
        if c.refused is not None:
            hit = np.isin(X[:, j], c.refused) | (np.isnan(X[:, j]) & np.isnan(c.refused).any())
            if hit.any():
                raise ValueError(f"The feature {spec.column_name(j)} has missing values ({c.decode(X[hit, j][0])!r}) "
                                 f"in transform but had none in fit ({c.refused_by or what}, error_on_new=True)")
        if c.known is None:
            continue
        col = X[:, j]
        ok = np.isin(col, c.known)
        if np.isnan(c.known).any():
            ok |= np.isnan(col)
        if not ok.all():
            bad = sorted({repr(c.decode(v)) for v in col[~ok][:100]})[:5]
            raise ValueError(f"Found unknown categories [{', '.join(bad)}] in column {spec.column_name(j)} during "
                             f"transform: {c.known_by or what} was fitted with handle_unknown='error'")

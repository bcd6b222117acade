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

from .head import UNKNOWN_CODE, ColumnSpec, InputSpec


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
    if not type(X).__module__.startswith("pandas"):
        return False
    import pandas as pd

    return isinstance(X, pd.DataFrame)


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
    positions = _positions(df, spec, what)
    n = df.shape[0]
    simple = spec.columns is None and all(getattr(dt, "kind", "O") in "biuf" for dt in df.dtypes)
    if simple and positions == list(range(spec.n_features)):
        a = df.to_numpy()
        return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)
    out = np.empty((n, spec.n_features), dtype=np.float64)
    for j, p in enumerate(positions):
        out[:, j] = _encode_column(_column(df, p), spec.column(j), spec.column_name(j), what)
    return out


def _positions(df: Any, spec: InputSpec, what: str) -> list[int]:
    """Where each of the model's columns is in ``df`` (by name when the model knows its names)."""
    names = df.columns.tolist()
    if spec.feature_names is not None and names == list(spec.feature_names):
        return list(range(spec.n_features))
    names = [str(c) for c in names]
    if spec.feature_names is None:
        if len(names) != spec.n_features:
            raise ValueError(f"X has {len(names)} features, but {what} is expecting {spec.n_features} features as input.")
        return list(range(spec.n_features))
    want = spec.feature_names
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
    return [names.index(n) for n in want]


def _column(df: Any, j: int) -> Any:
    """Column ``j``'s array (NumPy or pandas extension array), without building a Series."""
    mgr = getattr(df, "_mgr", None)
    if mgr is not None and hasattr(mgr, "iget_values"):  # pandas internals: microseconds instead of tens
        try:
            return mgr.iget_values(j)
        except (IndexError, TypeError, ValueError):
            pass
    return df.iloc[:, j].array


def _encode_column(col: Any, cs: ColumnSpec, name: str, what: str) -> np.ndarray:
    """One column (a NumPy array, pandas array or Series) as float64: numbers as they are, strings as codes."""
    if cs.kind == "number" and isinstance(col, np.ndarray) and col.dtype.kind in "fiub":
        return col if col.dtype == np.float64 else col.astype(np.float64)
    if hasattr(col, "categories") and hasattr(col, "codes"):  # pandas Categorical
        return _categorical(col, cs, name, what)
    dt = getattr(col, "dtype", None)
    kind = getattr(dt, "kind", "O")
    is_text = str(dt) in ("str", "string") or kind in "OUS"
    if not is_text:  # numbers (NumPy or nullable pandas arrays)
        if cs.kind == "string":
            values = _as_numpy(col, np.float64)
            if (~np.isnan(values)).any():
                raise TypeError(f"column {name} of X holds numbers ({values[~np.isnan(values)][0].item()!r}), "
                                f"but {what} expects strings there")
            return values
        return _as_numpy(col, np.float64)
    values = _as_numpy(col, object)
    if cs.kind == "string":
        return _codes(values, cs, name, what)
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        import pandas as pd

        missing = pd.isna(values)
        try:
            return np.where(missing, np.nan, np.where(missing, 0, values)).astype(np.float64)
        except (TypeError, ValueError):
            bad = next((v for v in values if isinstance(v, (str, bytes))), values[0])
            raise TypeError(f"column {name} of X holds strings (e.g. {bad!r}), but {what} expects numbers there") from None


def _as_numpy(col: Any, dtype: Any) -> np.ndarray:
    if isinstance(col, np.ndarray):
        return col if col.dtype == dtype else col.astype(dtype)
    if dtype is object:
        if getattr(col, "dtype", None) == object:  # keeps None apart from NaN, as scikit-learn does
            return np.asarray(col, dtype=object)
        if not hasattr(col, "isna"):
            return np.asarray(col, dtype=object)
        if getattr(col.dtype, "na_value", np.nan) is not np.nan and str(getattr(col.dtype, "na_value", "")) == "<NA>":
            return col.to_numpy(dtype=object)  # pd.NA stays pd.NA: scikit-learn's encoders see an unknown value
        return col.to_numpy(dtype=object, na_value=np.nan)
    return col.to_numpy(dtype=dtype, na_value=np.nan) if hasattr(col, "isna") else np.asarray(col, dtype=dtype)


def _categorical(cat: Any, cs: ColumnSpec, name: str, what: str) -> np.ndarray:
    cats = cat.categories
    if cats.dtype.kind in "OUS" or str(cats.dtype) in ("str", "string"):
        if cs.kind != "string":
            raise TypeError(f"column {name} of X holds strings ({list(cats[:3])}), but {what} expects numbers there")
        table = _code_table(cs, np.asarray(cats, dtype=object))
    else:
        if cs.kind == "string":
            raise TypeError(f"column {name} of X holds numbers ({list(cats[:3])}), but {what} expects strings there")
        table = np.asarray(cats, dtype=np.float64)
    codes = np.asarray(cat.codes)
    out = np.where(codes < 0, np.nan, table[np.maximum(codes, 0)]) if table.size else np.full(codes.shape, np.nan)
    if cs.kind == "string":
        _check_categories(out, np.asarray(cat, dtype=object), cs, name, what)
    return out


def _code_table(cs: ColumnSpec, values: np.ndarray) -> np.ndarray:
    """Each cell's code by one hash lookup: strings, None and (float) NaN; ``UNKNOWN_CODE`` for the rest."""
    index, codes = cs.lookup_index()
    engine = getattr(index, "_engine", None)  # pandas' hash table, without a per-call Index set-up
    if engine is not None:
        try:
            return codes[engine.get_indexer(values)]  # -1 (not found) reads UNKNOWN_CODE, the last code
        except (TypeError, ValueError):
            pass
    # the public method matches None and NaN to each other: look up the strings only
    strings = index[:-2]
    pos = strings.get_indexer(values)
    return np.where(pos < 0, UNKNOWN_CODE, codes[np.maximum(pos, 0)] if len(strings) else UNKNOWN_CODE)


def _codes(values: np.ndarray, cs: ColumnSpec, name: str, what: str) -> np.ndarray:
    """Codes of an object array of strings: vocabulary index; None its own code when an encoder knows it;
    NaN stays NaN; pd.NA and any other value are unknown (as scikit-learn's encoders see them)."""
    codes = _code_table(cs, values)
    unknown = codes == UNKNOWN_CODE
    if unknown.any():
        import pandas as pd

        bad = values[unknown]
        try:
            missing = np.asarray(bad != bad, dtype=bool)  # NaN is the one value unequal to itself
        except (TypeError, ValueError):  # pd.NA in the column: it compares to NA, and is no NaN
            missing = np.fromiter((isinstance(v, float) and v != v for v in bad), bool, len(bad))
        none = np.equal(bad, None)
        sub = codes[unknown]
        sub[missing] = np.nan
        sub[none] = cs.none_code
        codes[unknown] = sub
        rest = bad[~missing & ~none]
        if rest.size and pd.api.types.infer_dtype(rest, skipna=True) not in ("string", "empty"):
            numbers = [v for v in rest if not isinstance(v, (str, np.str_)) and v is not pd.NA]
            if numbers:
                raise TypeError(f"column {name} of X mixes strings and numbers ({numbers[0]!r}); "
                                f"{what} was fitted on strings there")
    _check_categories(codes, values, cs, name, what)
    return codes


def _check_categories(codes: np.ndarray, values: np.ndarray, cs: ColumnSpec, name: str, what: str) -> None:
    """A string column read by an encoder with ``handle_unknown='error'``: every value must be one it knows
    (checked here, where the strings are at hand to name)."""
    if cs.known is None:
        return
    ok = np.isin(codes, cs.known) | (np.isnan(codes) & bool(np.isnan(cs.known).any()))
    if ok.all():
        return
    bad: list[str] = []
    for v in values[~ok]:
        if repr(v) not in bad:
            bad.append(repr(v))
        if len(bad) == 5:
            break
    raise ValueError(f"Found unknown categories [{', '.join(bad)}] in column {name} during transform: "
                     f"{cs.known_by or what} was fitted with handle_unknown='error'")


def _check_finite(X: np.ndarray, spec: InputSpec, what: str) -> None:
    # Summing is far cheaper than isfinite over every entry; fall back when it says "maybe"
    # (inf - inf, and overflow of large finite values, are such a "maybe": no warning for them).
    with np.errstate(over="ignore", invalid="ignore"):
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
        if c.kind == "string" and c.refused is None:
            continue  # its categories were checked with the strings (``_codes``)
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

"""Categorical encoders (OneHotEncoder, OrdinalEncoder, TargetEncoder, LabelEncoder) as ``lookup`` ops.

Each encoder's table is read off the fitted encoder's own ``transform``: every
category (and, unless unknown values are an error, one value it has never
seen) is passed through it once, and the outputs say where each category
lands.  So ``drop``, infrequent grouping (``min_frequency``,
``max_categories``), ``unknown_value``, ``encoded_missing_value`` and
``handle_unknown`` come out exactly as scikit-learn computes them, without
re-deriving its rules here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from ...head import Head
from ...ir.columns import Lookup
from ._common import name_of, require, unsupported
from ._graph import Builder, Col, Value

UNSEEN_STRING = "\x00tunebird: a category never seen\x00"


def _is_string_categories(cats: np.ndarray) -> bool:
    return cats.dtype.kind in "OUS" and any(isinstance(c, (str, np.str_)) for c in cats.tolist())


def _unseen(cats: np.ndarray) -> Any:
    """A value of the categories' kind that is not one of them."""
    if _is_string_categories(cats):
        return UNSEEN_STRING
    finite = np.asarray([c for c in cats.tolist() if c is not None and not (isinstance(c, float) and np.isnan(c))],
                        dtype=np.float64)
    return float(finite.max() + 1.5) if finite.size else 0.5


def _probe(model: Any, categories: Sequence[np.ndarray], unknown: bool) -> tuple[np.ndarray, list[int]]:
    """``model.transform`` of rows that walk every feature through its categories (and an unseen value).

    Returns the dense output and, per feature, how many probe rows are its categories."""
    n_rows = max(len(c) for c in categories) + (1 if unknown else 0)
    columns = []
    for cats in categories:
        col = list(cats.tolist())
        if unknown:
            col.append(_unseen(cats))
        col += [cats[0]] * (n_rows - len(col))
        is_str = _is_string_categories(cats) or cats.dtype == object
        columns.append(np.array(col, dtype=object if is_str else np.float64))
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        import pandas as pd

        # object columns stay object (pandas would infer its string dtype and turn None into NaN)
        X: Any = pd.DataFrame({str(n): pd.Series(c, dtype=c.dtype) for n, c in zip(names, columns)})
    elif all(c.dtype != object for c in columns):
        X = np.column_stack(columns)
    else:
        X = np.empty((n_rows, len(columns)), dtype=object)
        for j, c in enumerate(columns):
            X[:, j] = c
    out = model.transform(X)
    if hasattr(out, "toarray"):
        out = out.toarray()
    return np.asarray(out, dtype=np.float64), [len(c) for c in categories]


def _input_cols(model: Any, b: Builder, x: Value, categories: Sequence[np.ndarray]) -> list[Col]:
    cols = []
    for j, cats in enumerate(categories):
        col = x.cols[j]
        if _is_string_categories(cats):
            col = b.string_col(col, model)
        elif col.kind == "string":
            raise unsupported(model, f"feature {j} holds strings but its categories are numbers")
        cols.append(col)
    return cols


def encoder_lookup(model: Any, b: Builder, x: Value, categories: Sequence[np.ndarray],
                   widths: Sequence[int], unknown_is_error: bool) -> Value:
    """A ``lookup`` reproducing ``model.transform`` on ``x``; ``widths[j]`` outputs belong to feature ``j``."""
    require(x.width == len(categories), model, f"it reads {len(categories)} features, its input has {x.width}")
    cols = _input_cols(model, b, x, categories)
    numeric_cols = [c for c in cols if c.kind == "number"]
    if numeric_cols:
        b.refuse(numeric_cols, ["inf"], model)  # encoders check numeric input with ensure_all_finite="allow-nan"
    out, _ = _probe(model, categories, unknown=not unknown_is_error)
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(int)
    entries: list[tuple[int, float, int, float]] = []  # (input column, category value, output, weight)
    source, unknown = [], []
    out_cols: list[Col] = []
    for j, cats in enumerate(categories):
        lo, hi = offsets[j], offsets[j + 1]
        codes = [b.code(cols[j], c, model) for c in cats.tolist()]
        nan_weight = False
        for r, code in enumerate(codes):
            row = out[r, lo:hi]
            written = [o for o in range(hi - lo) if row[o] != 0 or hi - lo == 1]
            entries += [(j, code, lo + o, float(row[o])) for o in written]  # one entry per output it writes
            nan_weight |= bool(np.isnan(row[written]).any()) if written else False
            if not written:  # a known category that writes nothing (dropped)
                entries.append((j, code, -1, 0.0))
        s = cols[j].source
        if unknown_is_error:
            b.require_known(cols[j], codes, model)
            unk = np.zeros(hi - lo)
        else:
            unk = out[len(cats), lo:hi]
        taint: set = set()
        if nan_weight:  # the missing category encodes as NaN: input NaN reaches the outputs
            taint |= {t for t in cols[j].taint if t[0] == "nan"}
        if np.isnan(unk).any() and s is not None:  # unknown values encode as NaN
            taint.add(("unknown", s))
            b.unknown_known[s] = (np.array(codes, dtype=np.float64), name_of(model))
        for o in range(lo, hi):
            source.append(j)
            unknown.append(unk[o - lo])
            out_cols.append(Col(taint=frozenset(taint)))
    column, value, target, weight = (list(t) for t in zip(*entries)) if entries else ([], [], [], [])
    op = Lookup(n_features=x.width, column=np.array(column, np.int32), value=np.array(value, np.float64),
                target=np.array(target, np.int32), weight=np.array(weight, np.float64),
                source=np.array(source, np.int32), unknown=np.array(unknown, np.float64))
    return b.add(op, [x], out_cols)


def one_hot_encoder(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    cats = [np.asarray(c) for c in model.categories_]
    widths = list(model._n_features_outs)
    out = encoder_lookup(model, b, x, cats, widths, unknown_is_error=model.handle_unknown == "error")
    return replace(out, sparse=bool(model.sparse_output)), None


def ordinal_encoder(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    cats = [np.asarray(c) for c in model.categories_]
    return encoder_lookup(model, b, x, cats, [1] * len(cats), unknown_is_error=model.handle_unknown == "error"), None


def target_encoder(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    cats = [np.asarray(c) for c in model.categories_]
    per = len(model.classes_) if model.target_type_ == "multiclass" else 1
    return encoder_lookup(model, b, x, cats, [per] * len(cats), unknown_is_error=False), None


def label_encoder(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """LabelEncoder: a 1-D input of labels -> their index in ``classes_``; an unseen label is an error."""
    classes = np.asarray(model.classes_)
    col = x.cols[0]
    if _is_string_categories(classes):
        col = b.string_col(col, model)
    codes = [b.code(col, c, model) for c in classes.tolist()]
    b.require_known(col, codes, model)
    op = Lookup(n_features=1, column=np.zeros(len(codes), np.int32), value=np.array(codes, np.float64),
                target=np.zeros(len(codes), np.int32), weight=np.arange(len(codes), dtype=np.float64),
                source=np.zeros(1, np.int32), unknown=np.zeros(1))
    return b.add(op, [Value(x.index, (col,))], [Col()]), Head("transformer", ("transform",), squeeze=True)

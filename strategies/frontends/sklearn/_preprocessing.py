"""scikit-learn transformers of numbers and strings: scalers, normalizer, imputers, missing indicators,
binarizer, and feature selection (a gather of the support mask)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...head import Head
from ...ir import Imputer, Normalizer, Op, Scaler
from ...ir.columns import Binarize, Concat, Indicator
from ._common import Step, nan_flow, require
from ._graph import Builder, Col, Value, without


def _scaler(model: Any) -> Step:
    n = model.n_features_in_
    zeros, ones = np.zeros(n), np.ones(n)
    kind = type(model).__name__
    require(not getattr(model, "clip", False), model, "clip=True is not supported")
    if kind == "MinMaxScaler":
        op: Op = Scaler(offset=model.min_, scale=model.scale_, mode="mul_add")
    elif kind == "StandardScaler":
        op = Scaler(offset=model.mean_ if model.with_mean else zeros,
                    scale=model.scale_ if model.with_std else ones)
    elif kind == "RobustScaler":
        op = Scaler(offset=model.center_ if model.with_centering else zeros,
                    scale=model.scale_ if model.with_scaling else ones)
    else:
        op = Scaler(offset=zeros, scale=model.scale_)
    return Step((op,), None, "pass", "reject")


def _normalizer(model: Any) -> Step:
    return Step((Normalizer(n_features=model.n_features_in_, norm=model.norm),), None, "reject", "reject")


def _missing_marker(model: Any, col: Col, b: Builder) -> float:
    """The code or value that ``missing_values`` matches in ``col`` (NaN, None or a number/string)."""
    mv = model.missing_values
    if mv is None:
        return b.code(b.string_col(col, model), None, model)
    if isinstance(mv, float) and np.isnan(mv):
        return float("nan")
    if isinstance(mv, (str, np.str_)):
        return b.code(b.string_col(col, model), mv, model)
    require(isinstance(mv, (int, float, np.number)) and not isinstance(mv, bool), model,
            f"missing_values={mv!r} is neither NaN, None, a number nor a string")
    return float(mv)


def _is_nan(v: Any) -> bool:
    return isinstance(v, (float, np.floating)) and bool(np.isnan(v))


def simple_imputer(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """SimpleImputer on numbers or strings, every strategy, optionally with its missing indicator."""
    stats = list(np.asarray(model.statistics_, dtype=object if model.statistics_.dtype == object else None))
    strings = np.dtype(model._fill_dtype).kind not in "fiub"
    if not strings:
        # scikit-learn validates numeric input: NaN only when it is the missing marker, never inf
        b.refuse(x, ["inf"] if _is_nan(model.missing_values) else ["nan", "inf"], model)
    keep = np.arange(len(stats)) if model.keep_empty_features else \
        np.flatnonzero([not _is_nan(s) for s in stats])
    fill, markers, cols = [], [], []
    for j, (s, col) in enumerate(zip(stats, x.cols)):
        if isinstance(s, (str, np.str_)):
            col = b.string_col(col, model)
        marker = _missing_marker(model, col, b)
        value = b.code(col, s, model) if not _is_nan(s) else float("nan")
        absorbs = _is_nan(marker) and not _is_nan(value)
        cols.append(Col(col.kind, col.source, without(col.taint, ["nan"]) if absorbs else col.taint,
                        col.filled | {marker}))
        fill.append(value)
        markers.append(marker)
    op = Imputer(fill=np.array(fill), keep=keep, missing_value=markers[0] if len(set(map(str, markers))) == 1
                 else float("nan"), missing_per_column=None if len(set(map(str, markers))) == 1 else markers)
    out = b.add(op, [x], [cols[k] for k in keep])
    if not model.add_indicator:
        return out, None
    ind = indicator_value(model.indicator_, b, x)
    return b.add(Concat((out.width, ind.width)), [out, ind], list(out.cols) + list(ind.cols)), None


def indicator_value(model: Any, b: Builder, x: Value) -> Value:
    """MissingIndicator reading ``x``: one 0/1 column per feature in ``features_``."""
    features = np.asarray(model.features_, dtype=np.int64)
    markers = [_missing_marker(model, x.cols[j], b) for j in range(x.width)]
    if all(c.kind == "number" for c in x.cols) and not isinstance(model.missing_values, (str, np.str_)):
        # scikit-learn's check on numeric input: finite, or NaN when NaN is the marker
        b.refuse(x, ["inf"] if _is_nan(model.missing_values) else ["nan", "inf"], model)
    if model.features == "missing-only" and model.error_on_new:
        for j in sorted(set(range(x.width)) - set(features.tolist())):
            b.refuse_value(x.cols[j], markers[j], model)
    marks = [markers[j] for j in features.tolist()]
    same = len({str(m) for m in marks}) <= 1
    op = Indicator(x.width, features, missing_value=marks[0] if marks and same else float("nan"),
                   missing_per_column=None if same else marks)
    return b.add(op, [x], [Col() for _ in features])


def missing_indicator(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    return indicator_value(model, b, x), None


def binarizer(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    nan = nan_flow(model)
    b.refuse(x, ["inf"] if nan == "pass" else ["nan", "inf"], model)
    out = b.add(Binarize(x.width, float(model.threshold)), [x], [Col() for _ in x.cols])
    return out, None


def selector(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """Feature selection: the columns of the support mask."""
    nan = nan_flow(model)
    if nan == "reject":
        b.refuse(x, ["nan", "inf"], model)
    else:
        b.refuse(x, ["inf"], model)
    support = np.asarray(model.get_support(indices=True), dtype=np.int64)
    return b.gather(x, support), None


SELECTORS = ("SelectKBest", "SelectPercentile", "SelectFpr", "SelectFdr", "SelectFwe", "GenericUnivariateSelect",
             "VarianceThreshold", "SelectFromModel", "RFE", "RFECV", "SequentialFeatureSelector")

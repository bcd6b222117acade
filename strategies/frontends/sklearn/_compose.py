"""Compositions: Pipeline, ColumnTransformer, FeatureUnion, FunctionTransformer (identity), the
hyper-parameter searches (their ``best_estimator_``), and XGBoost / LightGBM estimators inside them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ...ground.errors import UnsupportedModelError
from ...head import Head
from ...ir import INPUT, Imputer, Node, Scaler
from ...ir.columns import Concat
from ._common import name_of, require
from ._graph import Builder, Col, Value


def _is_skip(est: Any) -> bool:
    return est is None or (isinstance(est, str) and est in ("passthrough", "drop"))


def _step(model: Any, b: Builder, x: Value, where: str) -> tuple[Value, Head | None]:
    try:
        return b.convert(model, b, x)
    except UnsupportedModelError as e:
        msg = str(e)
        raise UnsupportedModelError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def pipeline(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """Steps in order; only the last may be an estimator (``None`` / ``'passthrough'`` steps are skipped)."""
    active = [(name, est) for name, est in model.steps if not _is_skip(est)]
    head = None
    for i, (name, est) in enumerate(active):
        x, h = _step(est, b, x, f"pipeline step {name!r}")
        require(h is None or i == len(active) - 1 or h.task == "transformer", model,
                f"step {name!r} ({name_of(est)}) is an estimator but is not the last step")
        head = h if i == len(active) - 1 else None
    return x, (head if head is not None and head.task != "transformer" else None)


def _weight(b: Builder, v: Value, w: float | None) -> Value:
    if w is None or w == 1:
        return v
    op = Scaler(offset=np.zeros(v.width), scale=np.full(v.width, float(w)), mode="mul_add")
    return replace(b.add(op, [v], [Col(taint=c.taint) for c in v.cols]), sparse=v.sparse)


def _concat(b: Builder, parts: list[Value], x: Value, sparse: bool) -> Value:
    parts = [p for p in parts if p.width > 0]
    if not parts:
        out = b.gather(x, [])
    elif len(parts) == 1:
        out = parts[0]
    else:
        out = b.add(Concat(tuple(p.width for p in parts)), parts, [c for p in parts for c in p.cols])
    return replace(out, sparse=sparse)


def column_transformer(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """Each transformer on its columns (resolved by scikit-learn at fit time), outputs side by side."""
    weights = model.transformer_weights or {}
    indices = model._transformer_to_input_indices
    parts = []
    for name, trans, _ in model.transformers_:
        cols = list(indices.get(name, []))
        if _is_skip(trans) and trans != "passthrough" or not cols:
            continue
        sub = b.gather(x, cols)
        if trans == "passthrough":
            out = sub
        else:
            out, _ = _step(trans, b, sub, f"ColumnTransformer transformer {name!r}")
        parts.append(_weight(b, out, weights.get(name)))
    return _concat(b, parts, x, bool(getattr(model, "sparse_output_", False))), None


def feature_union(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    weights = model.transformer_weights or {}
    parts = []
    for name, trans in model.transformer_list:
        if trans is None or trans == "drop":
            continue
        out = x if trans == "passthrough" else _step(trans, b, x, f"FeatureUnion transformer {name!r}")[0]
        parts.append(_weight(b, out, weights.get(name)))
    return _concat(b, parts, x, any(p.sparse for p in parts)), None


def function_transformer(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    require(model.func is None, model, f"func={getattr(model.func, '__name__', model.func)!r} is arbitrary Python "
            "code; only the identity (func=None) is supported")
    return x, None


def search_cv(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """GridSearchCV and friends predict with ``best_estimator_`` (fitted with ``refit=True``)."""
    require(hasattr(model, "best_estimator_"), model, "it was fitted with refit=False, so it has no best_estimator_")
    return _step(model.best_estimator_, b, x, f"{name_of(model)}.best_estimator_")


def foreign(model: Any, b: Builder, x: Value) -> tuple[Value, Head | None]:
    """An XGBoost or LightGBM estimator: its own frontend's graph, spliced in after ``x``."""
    from .. import convert

    conv = convert(model)
    require(conv.input.n_features == x.width, model,
            f"it expects {conv.input.n_features} features, the pipeline gives it {x.width}")
    kinds = [k for k, ok in (("nan", conv.input.allow_nan), ("inf", conv.input.allow_inf)) if not ok]
    if kinds:
        b.refuse(x, kinds, model)
    if x.sparse and type(model).__module__.startswith("xgboost"):
        # XGBoost reads a sparse matrix's zeros (the entries it does not store) as missing values
        zeros = Imputer(fill=np.full(x.width, np.nan), keep=np.arange(x.width), missing_value=0.0)
        x = b.add(zeros, [x], list(x.cols))
    base = len(b.nodes)
    for node in conv.graph.nodes:
        b.nodes.append(Node(node.op, tuple(x.index if v == INPUT else base + v for v in node.inputs)))
    width = conv.graph.n_outputs
    return Value(len(b.nodes) - 1, tuple(Col() for _ in range(width))), conv.head


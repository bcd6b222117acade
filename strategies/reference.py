"""Plain NumPy evaluator of the IR, float64 accumulation: the oracle every strategy is tested against.

Slow and obvious on purpose.  It follows each operator's documented semantics
(``strategies.ir``) and nothing else.  Operator families outside the core keep
their rule beside their definition: an op with a ``reference(x)`` method (float64
``(n, width)`` in and out, before the post-transform) is evaluated by it.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .inputs import as_2d_float
from .ir import (
    INPUT,
    NORM_TINY,
    ZERO_MISSING_THRESHOLD,
    Graph,
    Imputer,
    Linear,
    Normalizer,
    Op,
    PostTransform,
    Scaler,
    Tree,
    TreeEnsemble,
)
from .ir.columns import Binarize, Concat, Constant, Gather, Indicator, Lookup
from .ir.ensembles import Activation
from .ir.expansions import Bucketize, Polynomial, Spline
from .model import ConvertedModel

Output = Literal["raw", "out"]


def predict(model: ConvertedModel, X: Any, method: str = "predict") -> np.ndarray:
    """The reference result of ``model.<method>(X)``, validated like the native method."""
    model.head.check_method(method)
    X = as_2d_float(X, model.input, what=model.source)
    value = evaluate(model.graph, X, output=model.head.source(method))
    return model.head.finish(method, value)


def evaluate(graph: Graph, X: np.ndarray, output: Output | str = "out") -> np.ndarray:
    """Run the graph on ``X`` (2-D); ``output="raw"`` skips the last post-transform (and the stage its last op's
    ``raw_op`` leaves out); another name is that output of the last op (its ``reference_output``: a
    ``kneighbors`` op's neighbours)."""
    x = np.asarray(X, dtype=np.float64) if X.dtype != np.float32 else X
    values: list[np.ndarray] = []
    last = len(graph.nodes) - 1
    for i, node in enumerate(graph.nodes):
        args = [x if v == INPUT else values[v] for v in node.inputs]
        if i == last and output not in ("raw", "out"):
            values.append(_named_output(node.op, output, *args))
            continue
        values.append(evaluate_op(node.op, *args, output="raw" if (i == last and output == "raw") else "out"))
    return values[-1]


def _named_output(op: Op, output: str, *args: np.ndarray) -> np.ndarray:
    rule = getattr(op, "reference_output", None)
    if rule is None:
        raise ValueError(f"operator {op.kind} has no output {output!r} (only 'raw' and 'out')")
    return np.asarray(rule(output, *(np.asarray(a, dtype=np.float64) for a in args)), dtype=np.float64)


def evaluate_op(op: Op, X: np.ndarray, *more: np.ndarray, output: Output = "out") -> np.ndarray:
    """One operator on 2-D float arrays (several for ``concat``); returns float64 ``(n, width)``.
    ``output="raw"``: the value of ``op.raw_op()`` before its post-transform."""
    if output == "raw":
        op = op.raw_op()
    if isinstance(op, Concat):
        parts = [np.asarray(a, dtype=np.float64) for a in (X, *more)]
        return np.concatenate(parts, axis=1) if parts else np.zeros((X.shape[0], 0))
    if more and not callable(getattr(op, "reference", None)):
        raise TypeError(f"operator {op.kind} takes one input, got {1 + len(more)}")
    if isinstance(op, TreeEnsemble):
        raw = _tree_ensemble(op, X)
    elif isinstance(op, Linear):
        raw = np.asarray(X, dtype=np.float64) @ op.coef.T + op.intercept
    elif isinstance(op, Scaler):
        x = np.asarray(X, dtype=np.float64)
        raw = (x - op.offset) / op.scale if op.mode == "sub_div" else x * op.scale + op.offset
    elif isinstance(op, Normalizer):
        raw = _normalize(np.asarray(X, dtype=np.float64), op.norm)
    elif isinstance(op, Imputer):
        x = np.asarray(X, dtype=np.float64)
        raw = np.where(_missing(x, op.markers()), op.fill, x)[:, op.keep]
    elif isinstance(op, Gather):
        raw = np.asarray(X, dtype=np.float64)[:, op.columns]
    elif isinstance(op, Constant):
        raw = np.broadcast_to(op.value, (X.shape[0], op.value.shape[0])).copy()
    elif isinstance(op, Lookup):
        raw = _lookup(op, np.asarray(X, dtype=np.float64))
    elif isinstance(op, Indicator):
        x = np.asarray(X, dtype=np.float64)[:, op.columns]
        raw = _missing(x, op.markers()).astype(np.float64)
    elif isinstance(op, Binarize):
        with np.errstate(invalid="ignore"):
            raw = (np.asarray(X, dtype=np.float64) > op.threshold).astype(np.float64)
    elif isinstance(op, Bucketize):
        raw = _bucketize(op, np.asarray(X, dtype=np.float64))
    elif isinstance(op, Polynomial):
        raw = _polynomial(op, np.asarray(X, dtype=np.float64))
    elif isinstance(op, Spline):
        raw = _spline(op, np.asarray(X, dtype=np.float64))
    elif isinstance(op, Activation):
        y = apply_post_transform(op.transform, np.asarray(X, dtype=np.float64))
        raw = np.column_stack([1 - y[:, 0], y[:, 0]]) if op.pair else y
    elif callable(getattr(op, "reference", None)):
        raw = np.asarray(op.reference(*(np.asarray(a, dtype=np.float64) for a in (X, *more))), dtype=np.float64)
    else:
        raise TypeError(f"the reference evaluator has no rule for operator {type(op).__name__}")
    return raw if output == "raw" else apply_post_transform(op.post_transform, raw)


def apply_post_transform(pt: PostTransform, raw: np.ndarray) -> np.ndarray:
    """The post-transform of ``strategies.ir.PostTransform`` in float64."""
    if pt.kind == "identity":
        return raw
    if pt.kind == "sigmoid":
        return _expit(pt.param * raw)
    if pt.kind == "softmax":
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if pt.kind == "exp":
        return np.exp(raw)
    if pt.kind == "ovr_normalize":
        p = _expit(raw)
        if p.shape[1] == 1:
            return p
        s = p.sum(axis=1, keepdims=True)
        return np.where(s == 0, 1.0 / p.shape[1], p / np.where(s == 0, 1.0, s))
    if pt.kind == "isolation":
        return -(2.0 ** (-raw / pt.param))
    if pt.kind == "modified_huber":  # SGDClassifier._predict_proba
        p = (np.clip(raw, -1.0, 1.0) + 1.0) / 2.0
        if p.shape[1] == 1:
            return p
        s = p.sum(axis=1, keepdims=True)
        return np.where(s == 0, 1.0 / p.shape[1], p / np.where(s == 0, 1.0, s))
    raise ValueError(f"unknown post-transform {pt.kind!r}")


def _missing(x: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """Entries equal to their column's marker (NaN markers match NaN)."""
    return np.where(np.isnan(markers), np.isnan(x), x == markers)


def _lookup(op: Lookup, x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    out = np.zeros((n, op.source.shape[0]))
    known = np.zeros((n, op.n_features), dtype=bool)
    for c, v, t, w in zip(op.column, op.value, op.target, op.weight):
        col = x[:, c]
        hit = np.isnan(col) if np.isnan(v) else col == v
        known[:, c] |= hit
        if t >= 0:
            out[hit, t] = w
    return np.where(known[:, op.source], out, op.unknown)


def _bucketize(op: Bucketize, x: np.ndarray) -> np.ndarray:
    if op.compare_dtype == "float32":
        x = x.astype(np.float32).astype(np.float64)
    out = np.empty(x.shape)
    for j in range(op.n_features):
        out[:, j] = np.searchsorted(op.column_edges(j), x[:, j], side="right")
    return out


def _polynomial(op: Polynomial, x: np.ndarray) -> np.ndarray:
    out = np.ones((x.shape[0], op.powers.shape[0]))
    for o, factors in enumerate(op.factors()):
        if factors:
            v = x[:, factors[0]].copy()
            for j in factors[1:]:
                v = v * x[:, j]
            out[:, o] = v
    return out


def _spline_basis(t: np.ndarray, k: int, C: np.ndarray, u: np.ndarray) -> np.ndarray:
    """SciPy's ``BSpline`` evaluation at every ``u`` (extrapolating): interval, de Boor, combination by ``C``."""
    n = t.shape[0] - k - 1
    # the largest i in [k, n - 1] with t[i] <= u (k below the base interval)
    ell = k + np.searchsorted(t[k + 1:n], u, side="right")
    h = [np.ones_like(u)] + [np.zeros_like(u) for _ in range(k)]
    for j in range(1, k + 1):
        hh = [v.copy() for v in h[:j]]
        h[0] = np.zeros_like(u)
        for m in range(1, j + 1):
            xb, xa = t[ell + m], t[ell + m - j]
            same = xb == xa
            with np.errstate(divide="ignore", invalid="ignore"):
                w = hh[m - 1] / (xb - xa)
                h[m - 1] = np.where(same, h[m - 1], h[m - 1] + w * (xb - u))
                h[m] = np.where(same, 0.0, w * (u - xa))
    out = np.zeros((u.shape[0], C.shape[1]))
    with np.errstate(invalid="ignore"):
        for a in range(k + 1):
            out = out + C[ell - k + a] * h[a][:, None]
    out[np.isnan(u)] = np.nan
    return out


def _spline(op: Spline, x: np.ndarray) -> np.ndarray:
    k, C, mask = op.degree, op.combination(), op.edge_mask()
    blocks = []
    for f in range(op.n_features):
        t, v = op.knots[f], x[:, f]
        lo, hi = op.bounds[f]
        with np.errstate(invalid="ignore"):
            if op.extrapolation == "periodic":
                u = op.lower[f] + np.remainder(v - op.lower[f], op.upper[f] - op.lower[f])
            else:
                u = v
            y = _spline_basis(t, k, C, u)
            below, above = v < lo, v > hi
            if op.extrapolation == "error":
                y[below | above] = np.nan
            elif op.extrapolation == "constant":
                y[below] = op.edge_value[f, 0]
                y[above] = op.edge_value[f, 1]
            elif op.extrapolation == "linear":
                for side, rows, bound in ((0, below, lo), (1, above, hi)):
                    ext = op.edge_value[f, side] + (v[rows, None] - bound) * op.edge_slope[f, side]
                    y[rows] = np.where(mask[f, side], ext, 0.0)
        y[np.isnan(v)] = 0.0
        blocks.append(y)
    out = np.concatenate(blocks, axis=1) if blocks else np.zeros((x.shape[0], 0))
    return out[:, op.kept()]


def _expit(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _normalize(x: np.ndarray, norm: str) -> np.ndarray:
    if norm == "l1":
        n = np.abs(x).sum(axis=1)
    elif norm == "l2":
        n = np.sqrt(np.einsum("ij,ij->i", x, x))
    else:
        n = np.max(np.abs(x), axis=1) if x.shape[1] else np.zeros(x.shape[0])
    n[n < NORM_TINY] = 1.0
    return x / n[:, None]


def _tree_ensemble(op: TreeEnsemble, X: np.ndarray) -> np.ndarray:
    x = np.asarray(X).astype(op.compare_dtype).astype(np.float64)
    n = x.shape[0]
    acc = np.zeros((n, op.n_outputs), dtype=np.float64)
    if op.aggregation == "sum":
        acc += op.base_score
    for t, tree in enumerate(op.trees):
        leaf = tree_leaves(tree, x, op.comparison, op.category_rounding)
        if op.tree_output is None:
            acc += tree.value[leaf]
        else:
            acc[:, op.tree_output[t]] += tree.value[leaf, 0]
    if op.aggregation == "mean":
        acc = acc / op.trees_per_output() + op.base_score
    return acc


def tree_leaves(tree: Tree, x: np.ndarray, comparison: str, rounding: str = "trunc") -> np.ndarray:
    """Leaf index reached by every row of ``x`` (float64, already rounded to the compare dtype)."""
    n = x.shape[0]
    rows = np.arange(n)
    node = np.zeros(n, dtype=np.int64)
    for _ in range(tree.depth):
        feat = tree.feature[node]
        internal = feat >= 0
        v = x[rows, np.maximum(feat, 0)]
        nan = np.isnan(v)
        with np.errstate(invalid="ignore"):
            go_left = v <= tree.threshold[node] if comparison == "<=" else v < tree.threshold[node]
        missing = nan
        if tree.zero_missing is not None:
            missing = missing | (tree.zero_missing[node] & (np.abs(v) <= ZERO_MISSING_THRESHOLD))
        go_left = np.where(missing, tree.missing_left[node], go_left)
        if tree.is_categorical is not None:
            go_left = np.where(tree.is_categorical[node], _category_left(tree, node, v, rounding), go_left)
        node = np.where(internal, np.where(go_left, tree.left[node], tree.right[node]), node)
    return node


def _category_left(tree: Tree, node: np.ndarray, v: np.ndarray, rounding: str) -> np.ndarray:
    words = tree.cat_bitset.shape[1]
    nan = np.isnan(v)
    with np.errstate(invalid="ignore"):
        c = np.floor(v) if rounding == "floor" else np.trunc(v)
        valid = ~nan & (c >= 0) & (c < 32 * words)
        if rounding == "exact":
            valid &= c == v
    idx = np.where(valid, c, 0).astype(np.int64)
    bit = (tree.cat_bitset[node, idx >> 5] >> (idx & 31).astype(np.uint32)) & 1
    return np.where(nan, tree.missing_left[node], np.where(valid, bit.astype(bool), tree.cat_unknown_left[node]))

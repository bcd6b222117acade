"""Plain NumPy evaluator of the IR, float64 accumulation: the oracle every strategy is tested against.

Slow and obvious on purpose.  It follows each operator's documented semantics
(``strategies.ir``) and nothing else.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .inputs import as_2d_float
from .ir import (
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
from .model import ConvertedModel

Output = Literal["raw", "out"]


def predict(model: ConvertedModel, X: Any, method: str = "predict") -> np.ndarray:
    """The reference result of ``model.<method>(X)``, validated like the native method."""
    model.head.check_method(method)
    X = as_2d_float(X, model.input, what=model.source)
    value = evaluate(model.graph, X, output=model.head.source(method))
    return model.head.finish(method, value)


def evaluate(graph: Graph, X: np.ndarray, output: Output = "out") -> np.ndarray:
    """Run the chain on ``X`` (2-D); ``output="raw"`` skips the last post-transform."""
    v = np.asarray(X, dtype=np.float64) if X.dtype != np.float32 else X
    last = len(graph.ops) - 1
    for i, op in enumerate(graph.ops):
        v = evaluate_op(op, v, output="raw" if (i == last and output == "raw") else "out")
    return v


def evaluate_op(op: Op, X: np.ndarray, output: Output = "out") -> np.ndarray:
    """One operator on a 2-D float array; returns float64 ``(n, width)``."""
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
        missing = np.isnan(x) if np.isnan(op.missing_value) else (x == op.missing_value)
        raw = np.where(missing, op.fill, x)[:, op.keep]
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
    raise ValueError(f"unknown post-transform {pt.kind!r}")


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

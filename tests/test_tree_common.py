"""The predicate form (strategies.trees.common) is exact against the reference evaluator."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import reference
from strategies.sampling import sample_inputs
from strategies.testing import as_model, random_ensemble
from strategies.trees.common import CATEGORICAL, forest_arrays, le_thresholds, perfect_forest, special_go_left


def walk(fa, x, rounding):
    n = x.shape[0]
    node = np.broadcast_to(fa.roots, (n, fa.n_trees)).copy()
    rows = np.arange(n)[:, None]
    for _ in range(fa.depth):
        v = x[rows, fa.feature[node]]
        with np.errstate(invalid="ignore"):
            p = fa.sign[node] * v <= fa.threshold[node]
        if fa.has_special:
            sp = fa.kind[node] != 0
            p = np.where(sp, special_go_left(fa, node, v, rounding), p)
        node = np.where(p, fa.true_child[node], fa.false_child[node])
    return node


CASES = [
    dict(comparison="<", compare_dtype="float32"),
    dict(comparison="<=", compare_dtype="float32"),
    dict(comparison="<=", compare_dtype="float64", zero_missing=True),
    dict(comparison="<=", compare_dtype="float64", categorical=frozenset({1, 3}), rounding="trunc"),
    dict(comparison="<", compare_dtype="float32", categorical=frozenset({0}), rounding="floor"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_predicate_form_matches_reference(case):
    op = random_ensemble(3, n_trees=20, depth=5, **case)
    fa = forest_arrays(op)
    X = sample_inputs(as_model(op), 3000, seed=1, special_fraction=0.4)
    x = X.astype(fa.dtype)
    leaves = walk(fa, x, op.category_rounding)
    assert fa.is_leaf[leaves].all()
    got = op.base_score + fa.leaf_value[leaves, 0].sum(axis=1)
    want = reference.evaluate_op(op, X, output="raw")[:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # and per-leaf identity, not just the sum
    for t, tree in enumerate(op.trees):
        ref_leaf = reference.tree_leaves(tree, X.astype(op.compare_dtype).astype(np.float64), op.comparison, op.category_rounding)
        np.testing.assert_array_equal(leaves[:, t] - fa.tree_start[t], ref_leaf)


def test_perfect_layout_matches_sparse():
    op = random_ensemble(5, n_trees=8, depth=6, comparison="<=")
    fa = forest_arrays(op)
    pf = perfect_forest(fa)
    X = sample_inputs(as_model(op), 2000, seed=2).astype(np.float32)
    idx = np.zeros((X.shape[0], fa.n_trees), np.int64)
    rows = np.arange(X.shape[0])[:, None]
    trees = np.arange(fa.n_trees)[None, :]
    for _ in range(pf.depth):
        v = X[rows, pf.feature[trees, idx]]
        p = pf.sign[trees, idx] * v <= pf.threshold[trees, idx]
        idx = 2 * idx + 2 - p
    got = pf.leaf_value[trees, idx - (2**pf.depth - 1), 0].sum(axis=1)
    want = fa.leaf_value[walk(fa, X, "trunc"), 0].sum(axis=1)
    np.testing.assert_array_equal(got, want)


def test_le_thresholds_exact_for_representable_inputs():
    rng = np.random.default_rng(0)
    t = rng.normal(size=200)
    x = np.concatenate([t.astype(np.float32), np.nextafter(t.astype(np.float32), np.float32(np.inf)),
                        np.nextafter(t.astype(np.float32), np.float32(-np.inf))])
    for cmp in ("<", "<="):
        u = le_thresholds(t, cmp, np.dtype(np.float32))
        for ti, ui in zip(t, u):
            want = x.astype(np.float64) < ti if cmp == "<" else x.astype(np.float64) <= ti
            np.testing.assert_array_equal(x <= ui, want)

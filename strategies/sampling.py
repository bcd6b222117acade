"""Inputs drawn from a model's own split points: exact thresholds, their float neighbours, NaN, +-inf.

Used by the conformance tests and by the tuner when the user gives no sample data.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .ir import Graph, TreeEnsemble
from .model import ConvertedModel


def split_points(op: TreeEnsemble) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    """Per feature, the sorted distinct numeric thresholds; and per categorical feature, the category range."""
    thr: dict[int, list[np.ndarray]] = defaultdict(list)
    cats: dict[int, int] = {}
    for tree in op.trees:
        internal = tree.left >= 0
        numeric = internal if tree.is_categorical is None else internal & ~tree.is_categorical
        for f in np.unique(tree.feature[numeric]):
            thr[int(f)].append(tree.threshold[numeric & (tree.feature == f)])
        if tree.is_categorical is not None:
            for f in np.unique(tree.feature[tree.is_categorical]):
                cats[int(f)] = max(cats.get(int(f), 0), 32 * tree.cat_bitset.shape[1])
    finite = {f: np.unique(np.concatenate(v)) for f, v in thr.items()}
    finite = {f: t[np.isfinite(t)] for f, t in finite.items()}
    return {f: t for f, t in finite.items() if t.size}, cats


def sample_inputs(
    model: ConvertedModel | Graph,
    n: int,
    *,
    seed: int = 0,
    base: np.ndarray | None = None,
    special_fraction: float = 0.3,
    nan: bool = True,
    inf: bool = True,
) -> np.ndarray:
    """``n`` rows of float64 input for ``model``.

    Rows start from ``base`` (sample data, recycled) or from a spread that covers
    the first tree ensemble's thresholds; then ``special_fraction`` of the entries
    are replaced by exact thresholds, their nearest float neighbours in the
    compare dtype, NaN (if ``nan``) and +-inf (if ``inf``).
    """
    graph = model.graph if isinstance(model, ConvertedModel) else model
    rng = np.random.default_rng(seed)
    F = graph.n_features
    first = graph.ops[0]
    thr, cats = split_points(first) if isinstance(first, TreeEnsemble) else ({}, {})
    if base is not None and len(base):
        X = np.asarray(base, dtype=np.float64)[rng.integers(0, len(base), size=n)].copy()
    else:
        X = rng.normal(size=(n, F))
        for f, t in thr.items():
            lo, hi = t[0], t[-1]
            span = max(hi - lo, 1e-3 * max(abs(lo), abs(hi), 1.0))
            X[:, f] = rng.uniform(lo - 0.25 * span, hi + 0.25 * span, size=n)
    for f, k in cats.items():
        X[:, f] = rng.integers(-1, min(k, 64) + 2, size=n)
    if n == 0 or F == 0:
        return X
    mask = rng.random((n, F)) < special_fraction
    rows, cols = np.nonzero(mask)
    kinds = ["thr", "thr", "thr", "next", "next"] + (["nan"] if nan else []) + (["inf"] if inf else [])
    pick = rng.integers(0, len(kinds), size=rows.size)
    dtype = np.float32 if getattr(first, "compare_dtype", "float64") == "float32" else np.float64
    for r, c, k in zip(rows, cols, pick):
        kind = kinds[k]
        if kind in ("thr", "next") and c in thr:
            t = thr[c][rng.integers(0, thr[c].size)]
            if kind == "next":
                t = float(np.nextafter(dtype(t), dtype(np.inf if rng.random() < 0.5 else -np.inf)))
            X[r, c] = t
        elif kind == "nan":
            X[r, c] = np.nan
        elif kind == "inf":
            X[r, c] = np.inf if rng.random() < 0.5 else -np.inf
    return X

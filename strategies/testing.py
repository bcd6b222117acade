"""Random IR for tests and benchmarks: ensembles that exercise every normal-form feature."""

from __future__ import annotations

import numpy as np

from .head import Head, InputSpec
from .ir import Graph, PostTransform, Tree, TreeEnsemble
from .model import ConvertedModel


def random_tree(
    rng: np.random.Generator,
    n_features: int,
    depth: int,
    *,
    n_values: int = 1,
    leaf_prob: float = 0.15,
    categorical: frozenset[int] = frozenset(),
    zero_missing: bool = False,
    threshold_pool: np.ndarray | None = None,
    cat_words: int = 1,
) -> Tree:
    """A random tree of depth <= ``depth`` in normal form (pre-order numbering)."""
    feature, threshold, left, right, ml, value, zm, is_cat, bits, unk = ([] for _ in range(10))

    def grow(d: int) -> int:
        i = len(feature)
        for lst in (feature, threshold, left, right, ml, zm, is_cat, unk):
            lst.append(0)
        value.append(np.zeros(n_values))
        bits.append(np.zeros(cat_words, np.uint32))
        if d == depth or (d > 0 and rng.random() < leaf_prob):
            left[i] = right[i] = -1
            value[i] = np.round(rng.normal(size=n_values), 3)
            return i
        f = int(rng.integers(0, n_features))
        feature[i] = f
        ml[i] = bool(rng.random() < 0.5)
        if f in categorical:
            is_cat[i] = True
            bits[i] = rng.integers(0, 2**32, size=cat_words, dtype=np.uint64).astype(np.uint32)
            unk[i] = bool(rng.random() < 0.5)
        else:
            pool = threshold_pool if threshold_pool is not None else None
            threshold[i] = float(rng.choice(pool)) if pool is not None else float(np.round(rng.normal(), 2))
            zm[i] = zero_missing and rng.random() < 0.3
        left[i] = grow(d + 1)
        right[i] = grow(d + 1)
        return i

    grow(0)
    return Tree(
        feature=feature, threshold=threshold, left=left, right=right, missing_left=ml,
        value=np.array(value), zero_missing=zm if zero_missing else None,
        is_categorical=is_cat if categorical else None,
        cat_bitset=np.array(bits) if categorical else None, cat_unknown_left=unk if categorical else None,
    )


def random_ensemble(
    seed: int = 0,
    *,
    n_trees: int = 10,
    depth: int = 4,
    n_features: int = 5,
    n_outputs: int = 1,
    per_tree_output: bool = True,
    comparison: str = "<",
    compare_dtype: str = "float32",
    aggregation: str = "sum",
    post: PostTransform = PostTransform(),
    categorical: frozenset[int] = frozenset(),
    zero_missing: bool = False,
    rounding: str = "trunc",
) -> TreeEnsemble:
    """A random ensemble; thresholds come from a small pool so inputs can hit them exactly."""
    rng = np.random.default_rng(seed)
    pool = np.round(rng.normal(size=16), 2)
    if compare_dtype == "float32":
        pool = pool.astype(np.float32).astype(np.float64)
    vector = n_outputs > 1 and not per_tree_output
    trees = tuple(
        random_tree(rng, n_features, depth, n_values=n_outputs if vector else 1, categorical=categorical,
                    zero_missing=zero_missing, threshold_pool=pool)
        for _ in range(n_trees)
    )
    return TreeEnsemble(
        trees=trees, n_features=n_features, n_outputs=n_outputs, comparison=comparison,
        compare_dtype=compare_dtype, base_score=np.round(rng.normal(size=n_outputs), 2),
        tree_output=None if vector else np.arange(n_trees) % n_outputs, aggregation=aggregation,
        post_transform=post, category_rounding=rounding,
    )


def as_model(op: TreeEnsemble) -> ConvertedModel:
    """Wrap a single ensemble as a regressor (or booster for several outputs)."""
    task = "regressor" if op.n_outputs == 1 else "booster"
    methods = ("predict",) if task == "regressor" else ("predict", "decision_function")
    return ConvertedModel(Graph(op.n_features, (op,)), Head(task, methods), InputSpec(op.n_features), "tunebird.testing")

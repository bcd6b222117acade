"""The tensor form of a tree ensemble shared by every tree strategy.

Every numeric split of the IR (``x <= t`` or ``x < t``, NaN going left or
right) becomes one *predicate*

    P = sign * x <= u          (in the compare dtype; NaN makes P false)

with a ``true_child`` and a ``false_child``.  A node whose missing values go
right keeps ``sign = +1`` and the "<=" threshold; a node whose missing values
go left is flipped (``sign = -1``, ``u = -nextup(t)``, true child = right) so
that NaN, which fails every comparison, still lands on the false child.  The
rewrite is exact: thresholds are rounded to the compare dtype in the direction
that keeps every comparison of a representable input unchanged.  Multiplying by
-1 is exact, including for +-inf.

Categorical and zero-as-missing nodes ("special" nodes) cannot be one
comparison; for them ``P`` means "goes left" and is computed from
``special_*`` arrays.  Strategies that meet special nodes must handle them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import ZERO_MISSING_THRESHOLD, TreeEnsemble

NUMERIC, CATEGORICAL, ZERO_MISSING = 0, 1, 2


def ensemble_reason(strategy: str, op) -> str | None:
    """Why a tree kernel cannot compute ``op`` (not a tree ensemble, or one without input features), or None."""
    if not isinstance(op, TreeEnsemble):
        return f"{strategy} computes tree ensembles, not {op.kind}"
    if op.n_features < 1:
        return "the ensemble has no input features"
    return None


def single_ensemble(strategy: str, ops) -> TreeEnsemble:
    """The one tree ensemble a tree kernel's task holds (anything else is refused, naming what was given)."""
    from ..ground.errors import InvalidConfigError

    if len(ops) != 1 or not isinstance(ops[0], TreeEnsemble):
        raise InvalidConfigError(f"strategy {strategy!r} computes exactly one tree_ensemble, not {[op.kind for op in ops]}")
    return ops[0]


def round_down(t: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Largest value of ``dtype`` that is <= t (elementwise, t float64)."""
    r = t.astype(dtype)
    above = r.astype(np.float64) > t
    return np.where(above, np.nextafter(r, dtype.type(-np.inf)), r).astype(dtype)


def le_thresholds(t: np.ndarray, comparison: str, dtype: np.dtype) -> np.ndarray:
    """``u`` with ``x <cmp> t  <=>  x <= u`` for every x representable in ``dtype``."""
    down = round_down(t, dtype)
    if comparison == "<=":
        return down
    # x < t  <=>  x <= the largest representable value strictly below t
    exact = down.astype(np.float64) == t
    return np.where(exact, np.nextafter(down, dtype.type(-np.inf)), down).astype(dtype)


@dataclass(frozen=True, eq=False)
class ForestArrays:
    """All trees' nodes concatenated (global indices), in predicate form; leaves loop to themselves."""

    dtype: np.dtype
    feature: np.ndarray  # int32 (N,); 0 at leaves
    sign: np.ndarray  # dtype (N,), +1 / -1
    threshold: np.ndarray  # dtype (N,); +inf at leaves
    true_child: np.ndarray  # int32 (N,)
    false_child: np.ndarray  # int32 (N,)
    is_leaf: np.ndarray  # bool (N,)
    leaf_value: np.ndarray  # float64 (N, k); 0 at internal nodes
    tree_start: np.ndarray  # int32 (T + 1,) node offsets; tree t is nodes [start[t], start[t+1])
    depth: int
    # special nodes (None when the ensemble has none)
    kind: np.ndarray | None  # int8 (N,): NUMERIC / CATEGORICAL / ZERO_MISSING
    missing_left: np.ndarray | None  # bool (N,)
    le_threshold: np.ndarray | None  # dtype (N,): "<=" threshold for zero-missing nodes
    cat_row: np.ndarray | None  # int32 (N,): row of cat_table for categorical nodes, else 0
    cat_table: np.ndarray | None  # uint8 (rows, C): 1 if category c goes left
    cat_unknown_left: np.ndarray | None  # bool (N,)

    @property
    def n_nodes(self) -> int:
        return int(self.feature.shape[0])

    @property
    def n_trees(self) -> int:
        return int(self.tree_start.shape[0] - 1)

    @property
    def roots(self) -> np.ndarray:
        return self.tree_start[:-1]

    @property
    def has_special(self) -> bool:
        return self.kind is not None

    @property
    def n_categories(self) -> int:
        return 0 if self.cat_table is None else int(self.cat_table.shape[1])


def forest_arrays(op: TreeEnsemble, dtype: str | np.dtype | None = None) -> ForestArrays:
    """Flatten ``op`` into predicate form, comparing in ``dtype`` (default: the op's compare dtype).

    Comparing in float32 a model whose compare dtype is float64 is exact only for
    inputs that are themselves float32 values; callers decide whether that is allowed.
    """
    dt = np.dtype(dtype or op.compare_dtype)
    starts = np.cumsum([0] + [t.n_nodes for t in op.trees]).astype(np.int32)
    cat = lambda name: np.concatenate([getattr(t, name) if getattr(t, name) is not None else np.zeros(t.n_nodes, bool) for t in op.trees])  # noqa: E731
    feature = np.concatenate([t.feature for t in op.trees]).astype(np.int32)
    thr64 = np.concatenate([t.threshold for t in op.trees])
    missing_left = np.concatenate([t.missing_left for t in op.trees])
    offs = np.repeat(starts[:-1], [t.n_nodes for t in op.trees])
    left = np.concatenate([t.left for t in op.trees]).astype(np.int64)
    right = np.concatenate([t.right for t in op.trees]).astype(np.int64)
    is_leaf = left < 0
    ids = np.arange(feature.shape[0])
    left = np.where(is_leaf, ids, left + offs)
    right = np.where(is_leaf, ids, right + offs)
    is_cat = cat("is_categorical")
    zero_missing = cat("zero_missing")
    special = is_cat | zero_missing

    le = le_thresholds(thr64, op.comparison, dt)
    flip = missing_left & ~special & ~is_leaf
    # flipped: P = x > t_le  <=>  x >= nextup(t_le)  <=>  -x <= -nextup(t_le)
    up = np.nextafter(le, dt.type(np.inf))
    threshold = np.where(flip, -up, le).astype(dt)
    threshold = np.where(is_leaf, dt.type(np.inf), threshold).astype(dt)
    sign = np.where(flip, -1, 1).astype(dt)
    true_child = np.where(flip, right, left).astype(np.int32)
    false_child = np.where(flip, left, right).astype(np.int32)
    leaf_value = np.concatenate([t.value for t in op.trees])

    kind = le_out = cat_row = cat_table = unknown_left = ml = None
    if special.any():
        kind = np.where(is_cat, CATEGORICAL, np.where(zero_missing, ZERO_MISSING, NUMERIC)).astype(np.int8)
        le_out = le.astype(dt)
        ml = missing_left.copy()
        unknown_left = cat("cat_unknown_left")
        if is_cat.any():
            n_cat = 32 * op.cat_words
            tables = [t.cat_table(n_cat)[t.is_categorical] for t in op.trees if t.is_categorical is not None]
            cat_table = np.concatenate(tables).astype(np.uint8)
            cat_row = np.zeros(feature.shape[0], np.int32)
            cat_row[np.flatnonzero(is_cat)] = np.arange(int(is_cat.sum()), dtype=np.int32)
        feature = np.where(is_leaf, 0, feature).astype(np.int32)
    else:
        feature = np.where(is_leaf, 0, feature).astype(np.int32)
    return ForestArrays(
        dtype=dt, feature=feature, sign=sign, threshold=threshold, true_child=true_child,
        false_child=false_child, is_leaf=is_leaf, leaf_value=leaf_value, tree_start=starts,
        depth=op.max_depth, kind=kind, missing_left=ml, le_threshold=le_out, cat_row=cat_row,
        cat_table=cat_table, cat_unknown_left=unknown_left,
    )


def special_go_left(fa: ForestArrays, node: np.ndarray, x: np.ndarray, rounding: str) -> np.ndarray:
    """NumPy definition of P ("goes left") at special nodes; ``x`` is the node's feature value."""
    nan = np.isnan(x)
    with np.errstate(invalid="ignore"):
        numeric_left = x <= fa.le_threshold[node]
        zm = np.abs(x) <= ZERO_MISSING_THRESHOLD
        c = np.floor(x) if rounding == "floor" else np.trunc(x)
        valid = ~nan & (c >= 0) & (c < fa.n_categories)
        if rounding == "exact":
            valid &= c == x
    out = np.where(nan | zm, fa.missing_left[node], numeric_left)
    if fa.cat_table is not None:
        idx = np.where(valid, c, 0).astype(np.int64)
        cat_left = np.where(nan, fa.missing_left[node],
                            np.where(valid, fa.cat_table[fa.cat_row[node], idx] > 0, fa.cat_unknown_left[node]))
        out = np.where(fa.kind[node] == CATEGORICAL, cat_left, out)
    return out


@dataclass(frozen=True, eq=False)
class PerfectForest:
    """Trees padded to perfect binary trees of depth ``depth``; node i's true child is 2i+1, false 2i+2.

    Arrays are ``(T, 2**depth - 1)`` for internal nodes and ``(T, 2**depth, k)`` for leaves.
    Padding nodes (below a leaf that sat above ``depth``) compare against +inf and
    both their subtrees repeat that leaf, so any decision there is harmless.
    """

    dtype: np.dtype
    depth: int
    feature: np.ndarray
    sign: np.ndarray
    threshold: np.ndarray
    leaf_value: np.ndarray
    kind: np.ndarray | None  # int8 (T, I) or None
    node_id: np.ndarray  # int32 (T, I): global ForestArrays index of each perfect node (-1 for padding)


def perfect_forest(fa: ForestArrays, max_depth: int | None = None) -> PerfectForest:
    """Pad to perfect trees of ``fa.depth`` (at least 1) levels."""
    D = max(fa.depth, 1)
    if max_depth is not None and D > max_depth:
        raise ValueError(f"perfect layout limited to depth {max_depth}, the ensemble has depth {D}")
    T, I, L = fa.n_trees, 2**D - 1, 2**D
    k = fa.leaf_value.shape[1]
    feature = np.zeros((T, I), np.int32)
    sign = np.ones((T, I), fa.dtype)
    threshold = np.full((T, I), np.inf, fa.dtype)
    node_id = np.full((T, I), -1, np.int32)
    leaf_value = np.zeros((T, L, k), np.float64)
    # position p at level d holds ForestArrays node cur[p]; walk level by level for all trees at once
    cur = fa.roots.astype(np.int64)[:, None]  # (T, 1)
    for d in range(D):
        pos = np.arange(2**d - 1, 2 ** (d + 1) - 1)
        leaf = fa.is_leaf[cur]
        feature[:, pos] = np.where(leaf, 0, fa.feature[cur])
        sign[:, pos] = np.where(leaf, 1, fa.sign[cur])
        threshold[:, pos] = np.where(leaf, np.inf, fa.threshold[cur])
        node_id[:, pos] = np.where(leaf, -1, cur)
        tc = np.where(leaf, cur, fa.true_child[cur])
        fc = np.where(leaf, cur, fa.false_child[cur])
        cur = np.stack([tc, fc], axis=2).reshape(T, -1)
    leaf_value[:] = fa.leaf_value[cur]
    kind = None
    if fa.kind is not None:
        kind = np.where(node_id >= 0, fa.kind[np.maximum(node_id, 0)], NUMERIC).astype(np.int8)
    return PerfectForest(fa.dtype, D, feature, sign, threshold, leaf_value, kind, node_id)

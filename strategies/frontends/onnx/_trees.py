"""ONNX-ML tree ensembles (``TreeEnsembleClassifier`` / ``TreeEnsembleRegressor``) -> the IR's normal form.

ONNX Runtime semantics carried over:

* a node sends a row to its *true* child when ``x <mode> threshold`` holds (``BRANCH_LEQ``, ``LT``, ``GTE``,
  ``GT``), compared in the precision of the input (float32 for a float tensor); NaN fails every comparison,
  so it goes to the false child unless ``nodes_missing_value_tracks_true`` is set;
* every mode becomes ``x <= t`` with ``t`` in the compare precision (float32 for a float input, float64 for
  a double one: ``x < t`` is ``x <= the value below t``), the true child on the left for LEQ / LT and on
  the right for GT / GTE;
* a leaf adds each of its ``(target, weight)`` entries to the row's score; the regressor's ``AVERAGE``
  divides the sum by the number of trees; ``base_values`` are added last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...ir import Tree
from ...ground.errors import UnsupportedModelError

_MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "LEAF")


def _below(t: float, strict: bool, dtype: str) -> float:
    """The largest ``f`` of ``dtype`` with ``f <= t`` (``f < t`` when ``strict``): ``x <= f`` is ``x <= t``
    (``x < t``) for every ``x`` of ``dtype``."""
    kind = np.float32 if dtype == "float32" else np.float64
    f = kind(t)
    if np.isnan(f):
        return float("nan")
    if float(f) > t or (strict and float(f) == t):
        f = np.nextafter(f, kind(-np.inf))
    return float(f)


@dataclass
class ParsedTrees:
    """The trees of one ensemble node in normal form, and what the classifier logic needs to know."""

    trees: list[Tree]
    targets_used: set[int]  # target / class ids any leaf writes
    always_scored: set[int]  # targets some tree writes at every leaf (every row gets a score for them)
    weights_nonnegative: bool


def parse_trees(attrs: dict[str, Any], prefix: str, n_targets: int, what: str, compare: str) -> ParsedTrees:
    """Build :class:`Tree` objects from the ``nodes_*`` and ``<prefix>_*`` (``class`` / ``target``) attributes;
    splits as ``x <= t`` for ``x`` of the ``compare`` dtype."""
    tree_ids = np.asarray(attrs["nodes_treeids"], dtype=np.int64)
    node_ids = np.asarray(attrs["nodes_nodeids"], dtype=np.int64)
    feats = np.asarray(attrs["nodes_featureids"], dtype=np.int64)
    values = attrs.get("nodes_values_as_tensor")
    if values is None:
        values = attrs.get("nodes_values", [])
    values = np.asarray(values, dtype=np.float64)
    modes = [m.decode() if isinstance(m, bytes) else str(m) for m in attrs["nodes_modes"]]
    true_ids = np.asarray(attrs["nodes_truenodeids"], dtype=np.int64)
    false_ids = np.asarray(attrs["nodes_falsenodeids"], dtype=np.int64)
    n = tree_ids.shape[0]
    tracks = np.asarray(attrs.get("nodes_missing_value_tracks_true") or [0] * n, dtype=bool)
    if values.size == 0:
        values = np.zeros(n)
    for name, arr in (("nodes_nodeids", node_ids), ("nodes_featureids", feats), ("nodes_values", values),
                      ("nodes_truenodeids", true_ids), ("nodes_falsenodeids", false_ids),
                      ("nodes_missing_value_tracks_true", tracks)):
        if arr.shape[0] != n:
            raise UnsupportedModelError(f"{what}: {name} has {arr.shape[0]} entries for {n} nodes")
    bad = sorted({m for m in modes if m not in _MODES})
    if bad:
        raise UnsupportedModelError(
            f"{what}: node mode(s) {bad} are not supported (supported: {', '.join(_MODES)})")
    l_tree = np.asarray(attrs[f"{prefix}_treeids"], dtype=np.int64)
    l_node = np.asarray(attrs[f"{prefix}_nodeids"], dtype=np.int64)
    l_id = np.asarray(attrs[f"{prefix}_ids"], dtype=np.int64)
    weights = attrs.get(f"{prefix}_weights_as_tensor")
    if weights is None:
        weights = attrs.get(f"{prefix}_weights", [])
    l_w = np.asarray(weights, dtype=np.float64)
    if l_id.size and (l_id.min() < 0 or l_id.max() >= n_targets):
        raise UnsupportedModelError(f"{what}: a leaf writes target {int(l_id.max())}, the model has {n_targets}")
    index = {(int(t), int(i)): k for k, (t, i) in enumerate(zip(tree_ids, node_ids))}
    leaf_vals: dict[tuple[int, int], np.ndarray] = {}
    leaf_seen: dict[tuple[int, int], set[int]] = {}
    for t, i, c, w in zip(l_tree.tolist(), l_node.tolist(), l_id.tolist(), l_w.tolist()):
        key = (t, i)
        if key not in index:
            raise UnsupportedModelError(f"{what}: a leaf weight names node {i} of tree {t}, which does not exist")
        leaf_vals.setdefault(key, np.zeros(n_targets))[c] += w
        leaf_seen.setdefault(key, set()).add(c)
    used = set(l_id.tolist())
    trees = []
    always: set[int] = set()
    for t in sorted(set(tree_ids.tolist())):
        members = [k for k in range(n) if tree_ids[k] == t]
        kids = {int(true_ids[k]) for k in members if modes[k] != "LEAF"} | {
            int(false_ids[k]) for k in members if modes[k] != "LEAF"}
        roots = [k for k in members if int(node_ids[k]) not in kids]
        if len(roots) != 1:
            raise UnsupportedModelError(f"{what}: tree {t} has {len(roots)} root nodes, expected one")
        tree_sets: list[set[int]] = []
        rows: dict[str, list] = {k: [] for k in ("feature", "threshold", "left", "right", "missing_left", "value")}

        def build(k: int, depth: int) -> int:
            if depth > 10_000:
                raise UnsupportedModelError(f"{what}: tree {t} has a cycle")
            me = len(rows["left"])
            for name in rows:
                rows[name].append(None)
            mode = modes[k]
            if mode == "LEAF":
                key = (t, int(node_ids[k]))
                tree_sets.append(leaf_seen.get(key, set()))
                rows["feature"][me], rows["threshold"][me] = -1, 0.0
                rows["left"][me] = rows["right"][me] = -1
                rows["missing_left"][me] = False
                rows["value"][me] = leaf_vals.get(key, np.zeros(n_targets))
                return me
            thr = float(values[k])
            strict = mode in ("BRANCH_LT", "BRANCH_GTE")
            true_left = mode in ("BRANCH_LEQ", "BRANCH_LT")
            try:
                t_k, f_k = index[(t, int(true_ids[k]))], index[(t, int(false_ids[k]))]
            except KeyError:
                raise UnsupportedModelError(f"{what}: node {int(node_ids[k])} of tree {t} names a missing child") from None
            first, second = (t_k, f_k) if true_left else (f_k, t_k)
            rows["feature"][me] = int(feats[k])
            rows["threshold"][me] = _below(thr, strict, compare)
            rows["missing_left"][me] = bool(tracks[k]) == true_left
            rows["left"][me] = build(first, depth + 1)
            rows["right"][me] = build(second, depth + 1)
            rows["value"][me] = np.zeros(n_targets)
            return me

        build(roots[0], 0)
        always |= set.intersection(*tree_sets)
        if len(rows["left"]) != len(members):
            raise UnsupportedModelError(f"{what}: tree {t} has nodes no path from its root reaches, or shared nodes")
        trees.append(Tree(
            feature=np.asarray(rows["feature"]), threshold=np.asarray(rows["threshold"]),
            left=np.asarray(rows["left"]), right=np.asarray(rows["right"]),
            missing_left=np.asarray(rows["missing_left"]), value=np.vstack(rows["value"]),
        ))
    if not trees:
        raise UnsupportedModelError(f"{what}: the ensemble has no trees")
    return ParsedTrees(trees, used, always, bool(np.all(l_w >= 0)))


# --------------------------------------------------------------------------- a float32 scaler folded into splits


def _key(x: np.ndarray) -> np.ndarray:
    """float32 -> int64 keys in the floats' order (-0 and +0 share one)."""
    b = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
    return np.where(b >= 0, b, -(b & 0x7FFFFFFF))


def _unkey(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, np.int64)
    bits = np.where(k >= 0, k, (-k) | 0x80000000).astype(np.uint32)
    return bits.view(np.float32)


def fold_scaler(tree: Tree, offset: np.ndarray, scale: np.ndarray) -> Tree:
    """``tree`` on ``s = float32((float32(x - offset)) * scale)`` (ONNX Runtime's Scaler) as a tree on ``x``.

    ``s`` is monotone in ``x``, so ``s <= t`` is ``x <= T`` (scale > 0) or ``x >= T'`` (scale < 0, children
    swapped); ``T`` is found by bisection over the float32 values.  NaN stays NaN, so missing values keep
    their child.  Exact: the splits see the float32 values ONNX Runtime computes.
    """
    internal = np.flatnonzero(tree.left >= 0)
    if internal.size == 0:
        return tree
    f = tree.feature[internal]
    off, sc = offset[f].astype(np.float32), scale[f].astype(np.float32)
    t = tree.threshold[internal].astype(np.float32)
    pos = sc > 0

    def ok(k: np.ndarray) -> np.ndarray:  # s(x) <= t, x = _unkey(k)
        with np.errstate(over="ignore", invalid="ignore"):
            s = (_unkey(k) - off) * sc
        return s <= t

    lo = np.full(internal.size, int(_key(np.float32(-np.inf))), np.int64)
    hi = np.full(internal.size, int(_key(np.float32(np.inf))), np.int64)
    ok_lo, ok_hi = ok(lo), ok(hi)
    if np.any(pos & ~ok_lo) or np.any(~pos & (ok_lo | ~ok_hi)):
        raise ValueError("a split every value, or no value, satisfies")
    # bisect for the last key of the prefix: ok keys (scale > 0) or not-ok keys (scale < 0)
    a, b = lo, hi
    for _ in range(40):
        mid = (a + b) // 2
        m_ok = ok(mid)
        in_prefix = np.where(pos, m_ok, ~m_ok)
        a, b = np.where(in_prefix, mid, a), np.where(in_prefix, b, mid)
    # scale > 0: s <= t iff x <= unkey(a) (every x when ok(+inf)); scale < 0: s <= t iff NOT x <= unkey(a)
    new_thr = _unkey(np.where(pos & ok_hi, hi, a)).astype(np.float64)
    left, right, ml = tree.left.copy(), tree.right.copy(), tree.missing_left.copy()
    thr = tree.threshold.copy()
    thr[internal] = new_thr
    swap = internal[~pos]
    left[swap], right[swap] = tree.right[swap], tree.left[swap]
    ml[swap] = ~tree.missing_left[swap]
    return Tree(feature=tree.feature, threshold=thr, left=left, right=right, missing_left=ml, value=tree.value)


_V5_MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER")
V5_AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")
V5_TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")


def v5_as_v3(attrs: dict[str, Any], what: str) -> dict[str, Any]:
    """The opset-5 ``TreeEnsemble`` attributes as ``TreeEnsembleRegressor``'s (interior node ``k`` keeps id
    ``k``, leaf ``l`` becomes node ``n_nodes + l``; trees numbered by root)."""
    feats = list(attrs["nodes_featureids"])
    n = len(feats)
    splits = np.asarray(attrs["nodes_splits"], dtype=np.float64).reshape(-1)
    modes = [_V5_MODES[int(m)] if int(m) < len(_V5_MODES) else str(m)
             for m in np.asarray(attrs["nodes_modes"]).reshape(-1)]
    tracks = list(attrs.get("nodes_missing_value_tracks_true") or [0] * n)
    kids = {}
    for side in ("true", "false"):
        ids, leafs = list(attrs[f"nodes_{side}nodeids"]), list(attrs[f"nodes_{side}leafs"])
        kids[side] = [n + int(i) if int(f) else int(i) for i, f in zip(ids, leafs)]
    weights = np.asarray(attrs["leaf_weights"], dtype=np.float64).reshape(-1)
    targets = list(attrs["leaf_targetids"])
    out: dict[str, list] = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                                             "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
                                             "nodes_missing_value_tracks_true", "target_treeids", "target_nodeids",
                                             "target_ids", "target_weights")}
    for t, root in enumerate(attrs["tree_roots"]):
        stack, seen = [int(root)], 0
        while stack:
            k = stack.pop()
            seen += 1
            if seen > n + len(weights):
                raise UnsupportedModelError(f"{what}: tree {t} has a cycle")
            out["nodes_treeids"].append(t)
            out["nodes_nodeids"].append(k)
            if k >= n:  # a leaf
                leaf = k - n
                for key, val in (("nodes_featureids", 0), ("nodes_values", 0.0), ("nodes_modes", "LEAF"),
                                 ("nodes_truenodeids", 0), ("nodes_falsenodeids", 0),
                                 ("nodes_missing_value_tracks_true", 0)):
                    out[key].append(val)
                out["target_treeids"].append(t)
                out["target_nodeids"].append(k)
                out["target_ids"].append(int(targets[leaf]))
                out["target_weights"].append(float(weights[leaf]))
                continue
            out["nodes_featureids"].append(int(feats[k]))
            out["nodes_values"].append(float(splits[k]))
            out["nodes_modes"].append(modes[k])
            out["nodes_truenodeids"].append(kids["true"][k])
            out["nodes_falsenodeids"].append(kids["false"][k])
            out["nodes_missing_value_tracks_true"].append(int(tracks[k]))
            stack += [kids["true"][k], kids["false"][k]]
    return out

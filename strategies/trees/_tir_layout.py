"""Flat tables read by the tiled-traversal kernel, built from the predicate form of ``common.py``.

Every internal node becomes ``P = s * x[f] <= u`` (NaN fails, so it takes the
false child).  The sign ``s`` is folded into the node's feature word: bit 31
set means "compare -x", which the kernel applies by flipping the sign bit of
the loaded value (exact, also for +-inf; NaN stays NaN).

Two layouts:

* ``perfect``: trees padded to depth ``D``; node ``i`` of a tree has its true
  child at ``2i+1`` and false child at ``2i+2``; leaf ``j`` is node ``2**D-1+j``.
  Tables are ``(T, 2**D - 1)`` nodes and ``(T, 2**D, k)`` leaves.
* ``sparse``: per tree, nodes renumbered breadth-first so both children sit in
  adjacent slots (true child at ``child[i]``, false child at ``child[i] + 1``);
  a leaf points to a pair of copies of itself, so a walk of ``D`` steps stays
  on the leaf it reached.  Size is ~3x the node count, whatever the depth.

* ``hybrid``: for trees too deep to pad: the top ``top_levels`` levels of each
  tree perfect (as above, stride ``2**top_levels - 1``, so the in-register and
  x-block reads of the perfect layout apply there), then an ``exit`` table
  ``(T, 2**top_levels)`` giving the sparse slot where each exit of the top
  continues; below it, the sparse layout.  The walk reads no child index in the
  top levels, where a deep tree's nodes are nearly all internal.

Walk length.  A walk takes a fixed number of steps per tree, so the sparse and
hybrid layouts order the trees by depth (the sum's order changes, within the
float32 sum's rounding) and cut them into at most ``MAX_SEGMENTS`` runs, each
walked only as deep as its deepest tree: a LightGBM forest of 31-leaf trees
with depths 5 to 21 takes half the steps of a walk of depth 21 for every tree.

"Special" nodes (categorical, zero-as-missing) carry a code in ``special``:
bits 0-1 kind (1 categorical, 2 zero-missing), bit 2 missing goes left, bit 3
unknown category goes left, bits 4.. the node's row in ``cat_bits`` (the
left-going category bitset, 32 categories per int32 word).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Tree, TreeEnsemble
from .common import CATEGORICAL, ZERO_MISSING, ForestArrays, forest_arrays, perfect_forest

SIGN_BIT = np.int32(-(2**31))
PAD = 64  # spare entries after every table: vector loads of a last tree's level may read past its end
MAX_SEGMENTS = 4  # runs of trees walked to their own depth (each run is code of its own)


@dataclass(frozen=True, eq=False)
class KernelTables:
    """The kernel's weight arrays plus the static facts its code is generated from."""

    layout: str
    depth: int  # steps every walk takes
    n_trees: int
    n_features: int
    n_outputs: int
    stride: int  # perfect: internal nodes per tree (2**depth - 1); sparse: 0
    cdtype: np.dtype  # compare dtype
    adtype: np.dtype  # accumulate / output dtype
    feature: np.ndarray  # int32; bit 31: compare -x
    threshold: np.ndarray  # cdtype
    child: np.ndarray | None  # sparse: int32 slot of the true child (false child = +1)
    root: np.ndarray | None  # sparse: int32 (T,) root slot of each tree
    leaf: np.ndarray  # adtype, (slots * leaf_width,)
    leaf_width: int  # 1 (one output column per tree) or n_outputs (vector leaves)
    tree_column: np.ndarray | None  # int32 (T,) column of each tree; None for vector leaves
    special: np.ndarray | None  # int32 code per node (0: plain numeric), None without special nodes
    cat_bits: np.ndarray | None  # int32 (rows * cat_words,)
    cat_words: int
    has_categorical: bool
    has_zero_missing: bool
    x_block: int = 0  # >0: feature words index a feature-major block of this many rows holding [x, -x]
    exit: np.ndarray | None = None  # hybrid: int32 (T * 2**top_levels,) sparse slot of each exit of the top
    top_levels: int = 0  # hybrid: levels of the perfect top
    # (first tree, end, steps): runs of trees (in table order) and the steps their walks take
    segments: tuple[tuple[int, int, int], ...] = ()

    def group_count(self, group: int) -> int:
        """Tree groups of at most ``group`` trees, none spanning two segments."""
        return sum(-(-(e - b) // group) for b, e, _ in self.segments)

    def buffers(self) -> dict[str, np.ndarray]:
        """The kernel's weight arguments, in argument order (each padded by ``PAD`` entries)."""
        names = ["feature", "threshold", "child", "root", "leaf", "tree_column", "special", "cat_bits", "exit"]
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.buffers().values())


def perfect_nbytes(op: TreeEnsemble) -> int:
    """Bytes of the perfect layout's tables for ``op`` (without building them)."""
    d = max(op.max_depth, 1)
    cbytes = np.dtype(op.compare_dtype).itemsize
    width = 1 if op.tree_output is not None else op.n_outputs
    special = 4 if (op.has_categorical or op.has_zero_missing) else 0
    return op.n_trees * ((2**d - 1) * (4 + cbytes + special) + 2**d * width * cbytes)


def _padded(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a).ravel()
    return np.concatenate([a, np.zeros(PAD, a.dtype)])


def _special_codes(fa: ForestArrays, nodes: np.ndarray) -> np.ndarray:
    """Special code of ForestArrays nodes ``nodes`` (-1 and plain numeric nodes give 0)."""
    nodes = np.asarray(nodes, np.int64)
    ok = nodes >= 0
    i = np.where(ok, nodes, 0)
    kind = np.where(ok, fa.kind[i], 0).astype(np.int64)
    kind = np.where(kind == CATEGORICAL, 1, np.where(kind == ZERO_MISSING, 2, 0))
    code = kind | (fa.missing_left[i].astype(np.int64) << 2)
    if fa.cat_unknown_left is not None:
        code |= fa.cat_unknown_left[i].astype(np.int64) << 3
    if fa.cat_row is not None:
        code |= fa.cat_row[i].astype(np.int64) << 4
    return np.where(kind > 0, code, 0).astype(np.int32)


def _feature_words(feature: np.ndarray, sign: np.ndarray) -> np.ndarray:
    return np.where(sign < 0, feature.astype(np.int32) | SIGN_BIT, feature.astype(np.int32)).astype(np.int32)


def build_tables(op: TreeEnsemble, layout: str, x_block: int = 0, top_levels: int = 0,
                 multiple: int = 1) -> KernelTables:
    """Tables of ``op`` in ``layout`` ("perfect", "sparse", or "hybrid" with a perfect top of ``top_levels``).

    With ``x_block`` > 0 the kernel copies each block of ``x_block`` rows into a
    feature-major buffer ``[x, -x]``; feature words then hold the start of the
    node's column in it, ``(f + F * flipped) * x_block``, and no sign bit.
    """
    segments = ((0, op.n_trees, max(op.max_depth, 1)),)
    if layout in ("sparse", "hybrid"):
        op, segments = by_depth(op, min_steps=top_levels + 1 if layout == "hybrid" else 1, multiple=multiple)
    fa = forest_arrays(op)
    cdtype = np.dtype(op.compare_dtype)
    adtype = np.dtype(np.float32) if cdtype == np.float32 else np.dtype(np.float64)
    width = int(fa.leaf_value.shape[1])
    if layout == "perfect":
        pf = perfect_forest(fa)
        depth = pf.depth
        feature = _feature_words(pf.feature, pf.sign)
        threshold = pf.threshold
        leaf = pf.leaf_value.astype(adtype)
        special = _special_codes(fa, pf.node_id) if fa.has_special else None
        child = root = None
        stride = 2**depth - 1
    elif layout == "sparse":
        depth = max(fa.depth, 1)
        feature, threshold, child, root, leaf, special = _sparse(fa, adtype)
        stride = 0
    elif layout == "hybrid":
        if not 0 < top_levels < fa.depth:
            raise ValueError(f"hybrid layout needs 0 < top_levels < depth ({fa.depth}), got {top_levels}")
        depth = fa.depth
        feature, threshold, child, leaf, special, exit_slot = _hybrid(fa, adtype, top_levels)
        root = None
        stride = 2**top_levels - 1
    else:
        raise ValueError(f"layout must be 'perfect', 'sparse' or 'hybrid', got {layout!r}")
    if x_block:
        flipped = feature < 0
        col = (feature & np.int32(0x7FFFFFFF)).astype(np.int64) + op.n_features * flipped
        feature = (col * x_block).astype(np.int32)
    cat_bits = None
    if fa.cat_table is not None:
        words = op.cat_words
        bits = np.zeros((fa.cat_table.shape[0], 32 * words), np.uint64)
        bits[:, : fa.cat_table.shape[1]] = fa.cat_table
        weights = np.uint64(1) << (np.arange(32 * words, dtype=np.uint64) % np.uint64(32))
        packed = (bits * weights).reshape(-1, words, 32).sum(axis=2).astype(np.uint32)
        cat_bits = packed.view(np.int32)
    return KernelTables(
        layout=layout, depth=depth, n_trees=op.n_trees, n_features=op.n_features, n_outputs=op.n_outputs,
        stride=stride, cdtype=cdtype, adtype=adtype,
        feature=_padded(feature), threshold=_padded(threshold.astype(cdtype)),
        child=None if child is None else _padded(child), root=None if root is None else _padded(root),
        leaf=_padded(leaf.astype(adtype)), leaf_width=width,
        tree_column=None if op.tree_output is None else _padded(op.tree_output.astype(np.int32)),
        special=None if special is None else _padded(special),
        cat_bits=None if cat_bits is None else _padded(cat_bits), cat_words=op.cat_words,
        has_categorical=op.has_categorical, has_zero_missing=op.has_zero_missing, x_block=x_block,
        exit=_padded(exit_slot) if layout == "hybrid" else None, top_levels=top_levels if layout == "hybrid" else 0,
        segments=segments,
    )


def by_depth(op: TreeEnsemble, min_steps: int = 1,
             multiple: int = 1) -> tuple[TreeEnsemble, tuple[tuple[int, int, int], ...]]:
    """``op`` with its trees ordered by depth, and at most ``MAX_SEGMENTS`` runs ``(begin, end, steps)``
    chosen to minimise the total steps (trees x steps of their run; every walk takes at least ``min_steps``).

    With ``multiple`` > 1 each run is padded with single-leaf trees of value 0 (to output column 0) to a
    multiple of ``multiple`` trees, so the kernel has no code for left-over trees; the sums are unchanged.
    """
    from dataclasses import replace

    depth = np.array([max(t.depth, min_steps) for t in op.trees])
    order = np.argsort(depth, kind="stable")
    depth = depth[order]
    if not np.array_equal(order, np.arange(op.n_trees)):
        out = None if op.tree_output is None else op.tree_output[order]
        op = replace(op, trees=tuple(op.trees[i] for i in order), tree_output=out)
    # runs end where the depth changes; dynamic programming merges them into at most MAX_SEGMENTS
    ends = [i + 1 for i in range(op.n_trees) if i + 1 == op.n_trees or depth[i + 1] != depth[i]]
    n = len(ends)
    best = {(0, 0): (0, ())}  # (runs used, segments) -> (cost, cuts)
    for k in range(1, min(n, MAX_SEGMENTS) + 1):
        for j in range(k, n + 1):
            options = []
            for i in range(k - 1, j):
                prev = best.get((i, k - 1))
                if prev is None:
                    continue
                begin = ends[i - 1] if i else 0
                options.append((prev[0] + (ends[j - 1] - begin) * int(depth[ends[j - 1] - 1]), prev[1] + (j,)))
            if options:
                best[(j, k)] = min(options)
    _, cuts = min(best[(n, k)] for k in range(1, min(n, MAX_SEGMENTS) + 1))
    segments, begin = [], 0
    for c in cuts:
        end = ends[c - 1]
        segments.append((begin, end, int(depth[end - 1])))
        begin = end
    if multiple > 1 and any((e - b) % multiple for b, e, _ in segments):
        trees, columns, padded, at = [], [], [], 0
        zero = _zero_tree(op.trees[0].value.shape[1])
        for b, e, steps in segments:
            extra = -(e - b) % multiple
            trees += list(op.trees[b:e]) + [zero] * extra
            if op.tree_output is not None:
                columns += list(op.tree_output[b:e]) + [0] * extra
            padded.append((at, at + e - b + extra, steps))
            at += e - b + extra
        out = None if op.tree_output is None else np.array(columns, np.int32)
        op, segments = replace(op, trees=tuple(trees), tree_output=out), padded
    return op, tuple(segments)


def pad_trees(op: TreeEnsemble, multiple: int) -> TreeEnsemble:
    """``op`` with single-leaf trees of value 0 (to output column 0) appended up to a multiple of ``multiple``
    trees, in its own order (the sums are unchanged)."""
    from dataclasses import replace

    extra = -op.n_trees % multiple
    if not extra:
        return op
    out = None if op.tree_output is None else np.concatenate([op.tree_output, np.zeros(extra, op.tree_output.dtype)])
    return replace(op, trees=op.trees + (_zero_tree(op.trees[0].value.shape[1]),) * extra, tree_output=out)


def _zero_tree(width: int) -> Tree:
    return Tree(feature=np.array([-1]), threshold=np.zeros(1), left=np.array([-1]), right=np.array([-1]),
                missing_left=np.zeros(1, bool), value=np.zeros((1, width)))


def _slots(fa: ForestArrays, roots: list[list[int]]) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Breadth-first slots from each tree's ``roots`` (disjoint subtrees): ``(node_of, child, root slots)``.

    Both children of a slot sit in adjacent slots (true child at ``child[s]``, false at ``+1``); every leaf
    also gets a self-looping pair, so walks of any length stay on the leaf they reached.
    """
    total = 0
    for tree_roots in roots:  # each node takes one slot and each leaf two more, plus one per root
        for r in tree_roots:
            total += 1
        total += 2 * sum(_subtree_size(fa, r) for r in tree_roots)
    node_of = np.full(total, -1, np.int64)  # ForestArrays node held by each slot
    child = np.zeros(total, np.int32)
    root_slots: list[list[int]] = []
    nxt = 0
    for tree_roots in roots:
        queue = list(range(nxt, nxt + len(tree_roots)))
        node_of[nxt : nxt + len(tree_roots)] = tree_roots
        root_slots.append(queue[:])
        nxt += len(tree_roots)
        head = 0
        while head < len(queue):
            s = queue[head]
            head += 1
            node = node_of[s]
            child[s] = nxt
            if fa.is_leaf[node]:
                node_of[nxt : nxt + 2] = node
                child[nxt : nxt + 2] = nxt
            else:
                node_of[nxt] = fa.true_child[node]
                node_of[nxt + 1] = fa.false_child[node]
                queue += [nxt, nxt + 1]
            nxt += 2
    return node_of, child, root_slots


def _subtree_size(fa: ForestArrays, root: int) -> int:
    size, stack = 0, [root]
    while stack:
        node = stack.pop()
        size += 1
        if not fa.is_leaf[node]:
            stack += [int(fa.true_child[node]), int(fa.false_child[node])]
    return size


def _sparse(fa: ForestArrays, adtype: np.dtype):
    """The sparse layout: every tree from its root."""
    node_of, child, root_slots = _slots(fa, [[int(r)] for r in fa.roots])
    root = np.array([r[0] for r in root_slots], np.int32)
    feature, threshold, leaf, special = _slot_tables(fa, adtype, node_of)
    return feature, threshold, child, root, leaf, special


def _slot_tables(fa: ForestArrays, adtype: np.dtype, node_of: np.ndarray):
    """``(feature, threshold, leaf, special)`` of slots holding ForestArrays nodes ``node_of`` (-1: unused)."""
    width = fa.leaf_value.shape[1]
    total = node_of.shape[0]
    used = node_of >= 0
    nodes = np.where(used, node_of, 0)
    leafish = used & fa.is_leaf[nodes]
    feature = np.where(used & ~leafish, _feature_words(fa.feature[nodes], fa.sign[nodes]), 0).astype(np.int32)
    threshold = np.where(used & ~leafish, fa.threshold[nodes], np.inf).astype(fa.dtype)
    leaf = np.where(leafish[:, None], fa.leaf_value[nodes], 0.0).astype(adtype).reshape(total, width)
    special = None
    if fa.has_special:
        special = _special_codes(fa, np.where(used & ~leafish, node_of, -1))
    return feature, threshold, leaf, special


def _hybrid(fa: ForestArrays, adtype: np.dtype, top: int):
    """Perfect top of ``top`` levels for every tree, then sparse slots from each exit of the top."""
    pf = perfect_forest(_truncated(fa, top))
    T = fa.n_trees
    # ForestArrays node at each of the 2**top exits of each tree (a leaf above the exit level repeats)
    cur = fa.roots.astype(np.int64)[:, None]
    for _ in range(top):
        tc = np.where(fa.is_leaf[cur], cur, fa.true_child[cur])
        fc = np.where(fa.is_leaf[cur], cur, fa.false_child[cur])
        cur = np.stack([tc, fc], axis=2).reshape(T, -1)
    roots = [list(dict.fromkeys(int(n) for n in row)) for row in cur]
    node_of, child, root_slots = _slots(fa, roots)
    head = T * (2**top - 1)
    slot_of = [dict(zip(r, s)) for r, s in zip(roots, root_slots)]
    exit_slot = np.array([[head + slot_of[t][int(n)] for n in cur[t]] for t in range(T)], np.int32).ravel()
    s_feature, s_threshold, leaf, s_special = _slot_tables(fa, adtype, node_of)
    feature = np.concatenate([_feature_words(pf.feature, pf.sign).ravel(), s_feature])
    threshold = np.concatenate([pf.threshold.ravel().astype(fa.dtype), s_threshold])
    width = fa.leaf_value.shape[1]
    leaf = np.concatenate([np.zeros((head, width), adtype), leaf])
    child = np.concatenate([np.zeros(head, np.int32), child + head]).astype(np.int32)
    special = None
    if fa.has_special:
        special = np.concatenate([_special_codes(fa, pf.node_id).ravel(), s_special])
    return feature, threshold, child, leaf, special, exit_slot


def _truncated(fa: ForestArrays, levels: int) -> ForestArrays:
    """``fa`` seen only ``levels`` deep (what ``perfect_forest`` pads); nodes below are never read."""
    from dataclasses import replace

    return replace(fa, depth=levels)

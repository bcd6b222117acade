"""Tables read by the QuickScorer kernel, built from the predicate form of ``common.py``.

Leaves of every tree are ranked left to right with the *true* child on the left
(a depth-first walk that visits the true child first).  A node whose predicate
``P = s * x[f] <= u`` is false sends the row to its false child, so no leaf of
its true subtree (a contiguous range of ranks) can be the exit leaf: the node's
bitvector has zeros over that range and ones elsewhere, ``words`` machine words
of ``word_bits`` bits per tree, bit ``r`` of the mask standing for leaf rank ``r``.
With ``spans`` a numeric node keeps only the words its true subtree touches
(most nodes of a deep tree clear a word or two of many): ``mask_at`` then
points at its first such word and ``bv_start`` delimits its words in ``bitvec``.

Numeric nodes are grouped by tree block (``tree_block`` consecutive trees) and
by *column*: ``f`` for ``s = +1`` and ``F + f`` for ``s = -1`` (the kernel keeps
each row block feature-major as ``[x, -x]``), and sorted by ``u`` inside each
group (a *segment*).  Special nodes (categorical, zero-as-missing) sit in their
own per-block list with the code of ``_tir_layout._special_codes``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..ir import TreeEnsemble
from ._tir_layout import _special_codes
from .common import ForestArrays, forest_arrays

PAD = 64  # spare entries after every table: the scan reads one threshold past a segment's end


@dataclass(frozen=True, eq=False)
class QsTables:
    """The kernel's weight arrays plus the static facts its code is generated from."""

    n_trees: int
    n_features: int
    n_outputs: int
    tree_block: int  # trees per block (the last block may hold fewer)
    n_blocks: int
    words: int  # mask words per tree
    word_bits: int
    spans: bool  # numeric nodes keep only the words they clear (else all ``words``)
    cdtype: np.dtype
    adtype: np.dtype
    # numeric nodes, sorted by (block, column, threshold)
    threshold: np.ndarray  # cdtype (nodes,)
    mask_at: np.ndarray  # int32 (nodes,): words * (tree - first tree of its block) [+ first word cleared: spans]
    bitvec: np.ndarray  # int{word_bits} (nodes * words,), or with spans the words each node clears
    bv_start: np.ndarray | None  # spans: int32 (nodes + 1,) first word of each node in ``bitvec``
    seg_start: np.ndarray  # int32 (segments + 1,): first node of each segment
    seg_column: np.ndarray  # int32 (segments,): column of x_block the segment compares
    block_seg: np.ndarray  # int32 (blocks + 1,): first segment of each tree block
    # leaves
    leaf_start: np.ndarray  # int32 (trees,): first leaf slot of each tree (leaves in rank order)
    leaf: np.ndarray  # adtype (slots * leaf_width,)
    leaf_width: int
    tree_column: np.ndarray | None  # int32 (trees,) output column of each tree; None for vector leaves
    # special nodes (None without them), by block
    sp_column: np.ndarray | None  # int32: the node's feature (its +x column)
    sp_code: np.ndarray | None  # int32: ``_tir_layout`` special code
    sp_threshold: np.ndarray | None  # cdtype: "<=" threshold (zero-as-missing nodes)
    sp_mask_at: np.ndarray | None  # int32
    sp_bitvec: np.ndarray | None  # int{word_bits} (special nodes * words,)
    block_sp: np.ndarray | None  # int32 (blocks + 1,)
    cat_bits: np.ndarray | None  # int32 (rows * cat_words,)
    cat_words: int
    has_categorical: bool
    has_zero_missing: bool

    def buffers(self) -> dict[str, np.ndarray]:
        """The kernel's weight arguments, in argument order."""
        names = ["threshold", "mask_at", "bitvec", "bv_start", "seg_start", "seg_column", "block_seg", "leaf_start",
                 "leaf", "tree_column", "sp_column", "sp_code", "sp_threshold", "sp_mask_at", "sp_bitvec", "block_sp",
                 "cat_bits"]
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    @property
    def mask_dtype(self) -> str:
        return f"int{self.word_bits}"

    @property
    def n_special(self) -> int:
        return 0 if self.sp_code is None else int(self.block_sp[-1])


@functools.lru_cache(maxsize=16)
def _counts(op: TreeEnsemble) -> tuple[int, int]:
    """(leaves of the largest tree, internal nodes); cached: the tuner asks for every candidate."""
    return max(t.n_leaves for t in op.trees), sum(t.n_nodes - t.n_leaves for t in op.trees)


def max_leaves(op: TreeEnsemble) -> int:
    """Leaves of the ensemble's largest tree."""
    return _counts(op)[0]


def mask_words(op: TreeEnsemble, word_bits: int) -> int:
    """Mask words per tree for ``op``."""
    return -(-max_leaves(op) // word_bits)


def table_nbytes(op: TreeEnsemble, word_bits: int) -> int:
    """Bytes of the bitvector table (the largest one; without spans) for ``op``, without building it."""
    return _counts(op)[1] * mask_words(op, word_bits) * word_bits // 8


def _padded(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a).ravel()
    return np.concatenate([a, np.zeros(PAD, a.dtype)])


def _leaf_ranks(fa: ForestArrays) -> tuple[np.ndarray, np.ndarray]:
    """Per node: the rank of its subtree's first leaf in its tree, and its subtree's leaf count."""
    N = fa.n_nodes
    count = np.ones(N, np.int64)
    first = np.zeros(N, np.int64)
    internal = np.flatnonzero(~fa.is_leaf)
    tc, fc = fa.true_child, fa.false_child
    for i in internal[::-1]:  # children have larger indices than their parents
        count[i] = count[tc[i]] + count[fc[i]]
    for i in internal:  # roots start at rank 0; parents are set before their children
        first[tc[i]] = first[i]
        first[fc[i]] = first[i] + count[tc[i]]
    return first, count


def _bitvectors(lo: np.ndarray, hi: np.ndarray, words: int, word_bits: int) -> np.ndarray:
    """``(len(lo) * words,)`` words with zeros over bits ``[lo, hi)`` and ones elsewhere."""

    def ones_below(k: np.ndarray) -> np.ndarray:  # bits [0, k) set, k in [0, word_bits]
        full = k >= 64
        low = (np.uint64(1) << np.minimum(k, 63).astype(np.uint64)) - np.uint64(1)
        return np.where(full, np.uint64(2**64 - 1), low)

    base = (np.arange(words, dtype=np.int64) * word_bits)[None, :]
    a = np.clip(lo[:, None] - base, 0, word_bits)
    b = np.clip(hi[:, None] - base, 0, word_bits)
    cleared = ones_below(b) & ~ones_below(a)
    out = ~cleared
    if word_bits == 64:
        return out.view(np.int64).ravel()
    unsigned = np.dtype(f"uint{word_bits}")
    return (out & np.uint64(2**word_bits - 1)).astype(unsigned).view(f"int{word_bits}").ravel()


def build_qs_tables(op: TreeEnsemble, word_bits: int, tree_block: int, spans: bool = False) -> QsTables:
    """Tables of ``op`` for masks of ``word_bits``-bit words and blocks of ``tree_block`` trees (0: all);
    ``spans``: numeric nodes keep only the mask words they clear."""
    if word_bits not in (8, 16, 32, 64):
        raise ValueError(f"word_bits must be 8, 16, 32 or 64, got {word_bits}")
    fa = forest_arrays(op)
    cdtype = np.dtype(op.compare_dtype)
    adtype = np.dtype(np.float32) if cdtype == np.float32 else np.dtype(np.float64)
    T, F = fa.n_trees, op.n_features
    TB = T if tree_block <= 0 else min(tree_block, T)
    n_blocks = -(-T // TB)
    words = mask_words(op, word_bits)
    first, count = _leaf_ranks(fa)
    tree_of = np.repeat(np.arange(T), np.diff(fa.tree_start)).astype(np.int64)
    block_of = tree_of // TB
    mask_at_all = (words * (tree_of - block_of * TB)).astype(np.int32)
    internal = ~fa.is_leaf
    special = np.zeros(fa.n_nodes, bool) if fa.kind is None else (fa.kind != 0)
    lo = first[fa.true_child]
    hi = lo + count[fa.true_child]

    numeric = np.flatnonzero(internal & ~special)
    column = fa.feature[numeric].astype(np.int64) + F * (fa.sign[numeric] < 0)
    order = np.lexsort((fa.threshold[numeric], column, block_of[numeric]))
    nodes = numeric[order]
    key = block_of[nodes] * (2 * F) + column[order]
    new_seg = np.ones(nodes.size, bool)
    new_seg[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(new_seg)
    seg_start = np.append(starts, nodes.size).astype(np.int32)
    seg_column = (key[starts] % (2 * F)).astype(np.int32)
    block_seg = np.searchsorted(key[starts] // (2 * F), np.arange(n_blocks + 1)).astype(np.int32)

    bitvec = _bitvectors(lo[nodes], hi[nodes], words, word_bits)
    mask_at, bv_start = mask_at_all[nodes], None
    if spans:
        w0 = lo[nodes] // word_bits
        count = (hi[nodes] - 1) // word_bits - w0 + 1
        keep = (np.arange(words)[None, :] >= w0[:, None]) & (np.arange(words)[None, :] < (w0 + count)[:, None])
        bitvec = bitvec.reshape(-1, words)[keep]  # row-major: each node's words in order
        mask_at = (mask_at + w0).astype(np.int32)
        bv_start = _padded(np.concatenate([[0], np.cumsum(count)]).astype(np.int32))

    sp = dict.fromkeys(("sp_column", "sp_code", "sp_threshold", "sp_mask_at", "sp_bitvec", "block_sp"))
    if fa.has_special:
        snodes = np.flatnonzero(internal & special)  # already in tree order, hence block order
        sp = dict(
            sp_column=_padded(fa.feature[snodes].astype(np.int32)), sp_code=_padded(_special_codes(fa, snodes)),
            sp_threshold=_padded(fa.threshold[snodes].astype(cdtype)), sp_mask_at=_padded(mask_at_all[snodes]),
            sp_bitvec=_padded(_bitvectors(lo[snodes], hi[snodes], words, word_bits)),
            block_sp=np.searchsorted(block_of[snodes], np.arange(n_blocks + 1)).astype(np.int32),
        )

    leaves = np.flatnonzero(fa.is_leaf)
    slot = np.argsort(tree_of[leaves] * fa.n_nodes + first[leaves], kind="stable")
    leaf_nodes = leaves[slot]
    width = int(fa.leaf_value.shape[1])
    leaf_start = np.searchsorted(tree_of[leaf_nodes], np.arange(T)).astype(np.int32)
    cat_bits = None
    if fa.cat_table is not None:
        bits = np.zeros((fa.cat_table.shape[0], 32 * op.cat_words), np.uint64)
        bits[:, : fa.cat_table.shape[1]] = fa.cat_table
        weights = np.uint64(1) << (np.arange(32 * op.cat_words, dtype=np.uint64) % np.uint64(32))
        cat_bits = _padded((bits * weights).reshape(-1, op.cat_words, 32).sum(axis=2).astype(np.uint32).view(np.int32))
    return QsTables(
        n_trees=T, n_features=F, n_outputs=op.n_outputs, tree_block=TB, n_blocks=n_blocks, words=words,
        word_bits=word_bits, spans=spans, cdtype=cdtype, adtype=adtype,
        threshold=_padded(fa.threshold[nodes].astype(cdtype)), mask_at=_padded(mask_at), bitvec=_padded(bitvec),
        bv_start=bv_start, seg_start=_padded(seg_start),
        seg_column=_padded(seg_column), block_seg=_padded(block_seg), leaf_start=_padded(leaf_start),
        leaf=_padded(fa.leaf_value[leaf_nodes].astype(adtype)), leaf_width=width,
        tree_column=None if op.tree_output is None else _padded(op.tree_output.astype(np.int32)),
        cat_bits=cat_bits, cat_words=op.cat_words, has_categorical=op.has_categorical,
        has_zero_missing=op.has_zero_missing, **sp,
    )


def evaluate(tab: QsTables, x: np.ndarray) -> np.ndarray:
    """NumPy QuickScorer over the numeric nodes of ``tab`` (no special nodes): raw per-output leaf sums.

    The kernel's algorithm in plain code, for tests of the tables.
    """
    n, F = x.shape
    cols = np.concatenate([x, -x], axis=1)
    W, bits, TB = tab.words, tab.word_bits, tab.tree_block
    out = np.zeros((n, tab.n_outputs), np.float64)
    for r in range(n):
        for b in range(tab.n_blocks):
            masks = np.full(TB * W, -1, np.int64)
            for s in range(tab.block_seg[b], tab.block_seg[b + 1]):
                v = cols[r, tab.seg_column[s]]
                for i in range(tab.seg_start[s], tab.seg_start[s + 1]):
                    if v <= tab.threshold[i]:
                        break
                    at = tab.mask_at[i]
                    lo, hi = (tab.bv_start[i], tab.bv_start[i + 1]) if tab.spans else (i * W, (i + 1) * W)
                    masks[at : at + hi - lo] &= tab.bitvec[lo:hi]
            for t in range(b * TB, min(b * TB + TB, tab.n_trees)):
                m = [int(v) % (1 << bits) for v in masks[(t - b * TB) * W : (t - b * TB + 1) * W]]
                w = next(i for i, v in enumerate(m) if v)
                rank = w * bits + (m[w] & -m[w]).bit_length() - 1
                slot = tab.leaf_start[t] + rank
                if tab.tree_column is None:
                    out[r] += tab.leaf[slot * tab.leaf_width : (slot + 1) * tab.leaf_width]
                else:
                    out[r, tab.tree_column[t]] += tab.leaf[slot]
    return out

"""TensorIR generation for the tree-lanes kernel (built with TVM's IR builder, no blocks).

Loop nest, outermost first (``parallel`` marks the loop run by TVM's thread pool)::

    for block in blocks(n, B):                      # parallel over row blocks when "rows"
      for row in block:
        prefetch row + prefetch (every cache line of it; when the knob is set)
        copy the row as [x, -x] (2F values, padded to whole permute chunks)
        for run (trees of one walk length, a multiple of V):
          for tile of ``interleave`` groups of V trees:
            cur[w] = root slots of group w          # one plain vector load
            repeat steps: for w: cur[w] = child(cur[w]) + 1 - P(node cur[w])   # V trees per vector
            acc[column] += leaf(cur[w])
        raw[k] = sum of acc[k]'s lanes (lane order); epilogue: ``_tir_kernel``'s

The lanes hold *trees*, not rows: one row's walk through V trees is one vector
of independent chains, so a single row keeps the SIMD units busy, where the
row-lane kernels waste all but one lane.  A node of the sparse layout
(``_tir_layout``) is one record of four words (feature, threshold bits, true
child, special code; 32-bit words, 64-bit for float64 compares), so a lane's
step touches one cache line, and its fields are gathers from it; the row's
value at a node is an in-register permute of the row's ``[x, -x]``
(``x_lookup="permute"``, up to 128 entries) or a gather from it.  Special
nodes (categorical, zero-as-missing) go through the tiled generator's predicate.
With the perfect layout (trees padded to the deepest) a lane holds the node's
position ``i`` in its tree: the record is at ``tree * stride + i``, the next
position ``2i + 2 - P``, and no child word is read.  With ``record="pair"`` a
node's feature and threshold are one 64-bit word, read by one 8-lane qword
gather (AVX-512 ``vpgatherdq``) where the four-word record takes two dword
gathers; the child and special words are tables of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._tir_kernel import Epilogue, _Gen
from ._tir_layout import PAD, KernelTables

RECORD = 4  # words per node record: feature, threshold bits, child, special


@dataclass(frozen=True)
class LanesOptions:
    """Schedule of one tree-lanes kernel (the strategy's knobs, resolved against threads and the CPU)."""

    lanes: int  # trees per vector
    interleave: int  # vectors of trees walked at once
    rows_per_block: int
    parallel: str  # rows | none
    unroll: bool
    x_lookup: str  # permute | gather
    simd: str  # avx512 | avx2 | generic
    prefetch: int = 0  # rows ahead whose input lines are prefetched at the start of each row (0: none)
    record: str = "quad"  # quad: four-word node records | pair: (feature, threshold) 64-bit words


def permute_width(n_features: int, simd: str, lanes: int) -> int:
    """Entries of the row buffer ``[x, -x]`` read by permutes: 2F rounded up to whole permute chunks."""
    chunk = 2 * lanes if simd == "avx512" else lanes
    need = 2 * n_features
    return lanes if need <= lanes else -(-need // chunk) * chunk


def record_dtype(tab: KernelTables) -> np.dtype:
    """Word of a node record: the compare dtype's width (a float64 threshold needs 64-bit words)."""
    return np.dtype(np.int64 if tab.cdtype.itemsize == 8 else np.int32)


def pair_words(tab: KernelTables) -> np.ndarray:
    """Each node's feature word (low 32 bits) and threshold bits (high 32 bits) as one int64, ``PAD`` zeros after."""
    if tab.cdtype.itemsize != 4:
        raise ValueError(f"pair records hold a 32-bit threshold; these tables compare in {tab.cdtype}")
    n = min(len(tab.feature), len(tab.threshold))
    words = np.zeros(n + PAD, np.uint64)
    words[:n] = (tab.threshold[:n].view(np.uint32).astype(np.uint64) << np.uint64(32)) | \
        tab.feature[:n].view(np.uint32).astype(np.uint64)
    return words.view(np.int64)


def lanes_buffers(tab: KernelTables, record: str = "quad") -> dict[str, np.ndarray]:
    """The kernel's weight arguments: node records in place of the four per-field tables.

    ``quad``: one gathered record per lane and step is one cache line (records
    are 16 or 32 bytes, aligned), where four separate tables touch four.
    ``pair``: (feature, threshold) words (``pair_words``), and the child and
    special tables as they are.
    """
    if record == "pair":
        out = {"pair": pair_words(tab), "leaf": tab.leaf}
        for name in ("child", "special", "root", "tree_column", "cat_bits"):
            if getattr(tab, name) is not None:
                out[name] = getattr(tab, name)
        return out
    if record != "quad":
        raise ValueError(f"record must be 'quad' or 'pair', got {record!r}")
    n = min(len(tab.feature), len(tab.threshold))
    wt = record_dtype(tab)
    node = np.zeros((n + PAD, RECORD), wt)  # (the perfect layout's child word stays 0: 16-byte records measured
    # faster than 8-byte ones there, 1.16-1.18 vs 1.02 M rows/s on epsilon, one core)
    node[:n, 0] = tab.feature[:n]
    node[:n, 1] = tab.threshold[:n].view(wt)
    if tab.child is not None:  # the perfect layout has no child slots: children are at 2i+1, 2i+2
        node[:n, 2] = tab.child[:n]
    if tab.special is not None:
        node[:n, 3] = tab.special[:n]
    out = {"node": node.reshape(-1), "leaf": tab.leaf}
    if tab.root is not None:
        out["root"] = tab.root
    for name in ("tree_column", "cat_bits"):
        if getattr(tab, name) is not None:
            out[name] = getattr(tab, name)
    return out


def generate(tab: KernelTables, opt: LanesOptions, epi: Epilogue, buffers: dict[str, np.ndarray]):
    """The PrimFunc ``main(x, out, *buffers)`` for ``x: (n, F)`` and ``out: (n, K)``; ``buffers``:
    ``lanes_buffers(tab, opt.record)``."""
    return _LanesGen(tab, opt, epi, buffers).build()


class _LanesGen(_Gen):
    """The tiled generator's helpers (gathers, permutes, predicate, epilogue) with trees in the lanes."""

    def __init__(self, tab: KernelTables, opt: LanesOptions, epi: Epilogue, buffers: dict[str, np.ndarray]):
        if tab.layout not in ("sparse", "perfect") or tab.x_block not in (0, 1):
            raise ValueError("the tree-lanes kernel reads the sparse or perfect layout, with a one-row x block or none")
        if tab.layout == "perfect" and tab.n_trees % opt.lanes:
            raise ValueError(f"perfect tables for tree lanes need whole vectors of {opt.lanes} trees, got {tab.n_trees}")
        self.perfect = tab.layout == "perfect"
        self.pair = opt.record == "pair"
        if self.pair != ("pair" in buffers):
            raise ValueError(f"record={opt.record!r} needs the buffers of lanes_buffers(tab, {opt.record!r})")
        self._setup(tab, opt, epi, opt.lanes)
        self.buffers = buffers
        self.permute = opt.x_lookup == "permute" and self.x86
        if self.permute and not tab.x_block:
            raise ValueError("x_lookup='permute' reads the row's [x, -x]: build the tables with x_block=1")
        self.xw = permute_width(tab.n_features, opt.simd, self.V) if self.permute else 2 * tab.n_features
        for b, e, _ in tab.segments:
            if (e - b) % self.V:
                raise ValueError(f"runs of trees must be whole vectors of {self.V} trees, got run [{b}, {e})")

    # ------------------------------------------------------------------ one row
    def fill_row(self, row) -> None:
        """The row as ``[x, -x]`` in ``xt`` (entries past 2F are 0: permutes read whole chunks)."""
        T, F = self.T, self.tab.n_features
        with T.serial(0, F) as f:
            T.buffer_store(self.xt, self.x[row, f], [f])
            T.buffer_store(self.xt, -self.x[row, f], [F + f])
        for j in range(2 * F, self.xw):
            T.buffer_store(self.xt, self.c(0.0, self.cd), [j])

    def field(self, base, k: int):
        """Word ``k`` of the records at ``base`` (as int32, or the record word for the threshold)."""
        word = self.gather(self.node, base + self.bc(k))
        return word if not self.wide or k == 1 else self.T.Cast(self.vt("int32"), word)

    def step(self, cur, w: int, tree0) -> None:
        """One step of the walks in vector ``w`` of ``cur`` (trees ``tree0 + w * V`` on)."""
        T = self.T
        at = self.lanes(w * self.V)
        c = cur[at]
        if self.perfect:  # cur: the node's position in its tree (children at 2i+1, 2i+2)
            node = self.lanes(tree0 + w * self.V) * self.bc(self.tab.stride) + c
        else:  # cur: the node's slot
            node = c
        if self.pair:
            word = self.gather(self.pair_words, node)
            fe = T.Cast(self.vt("int32"), word)  # the low half: truncation keeps the feature word's bits
            th = T.reinterpret(self.vt(self.cd), T.Cast(self.vt("int32"), word >> self.bc(32, "int64")))
            sp = self.gather(self.special, node) if self.tab.special is not None else None
        else:
            base = node * self.bc(RECORD)
            fe = self.field(base, 0)
            th = T.reinterpret(self.vt(self.cd), self.field(base, 1))
            sp = self.field(base, 3) if self.tab.special is not None else None
        v = self.lookup(self.xt, 0, fe, self.xw) if self.permute else None
        p = self.predicate(fe, th, sp, self.rowoff, v)
        if self.perfect:
            T.buffer_store(cur, c * self.bc(2) + self.bc(2) - T.Cast(self.vt("int32"), p), [at])
        else:
            ch = self.gather(self.child, node) if self.pair else self.field(base, 2)
            T.buffer_store(cur, ch + self.bc(1) - T.Cast(self.vt("int32"), p), [at])

    def tile(self, tree0, groups: int, steps: int, acc, columns) -> None:
        """Walk ``groups`` vectors of trees from ``tree0`` for ``steps`` steps and add their leaves to ``acc``."""
        T, V, tab = self.T, self.V, self.tab
        cur = T.alloc_buffer((groups * V,), "int32", scope="global")
        for w in range(groups):
            first = self.bc(0) if self.perfect else self.root[self.lanes(tree0 + w * V)]
            T.buffer_store(cur, first, [self.lanes(w * V)])
        if self.opt.unroll:
            for _ in range(steps):
                for w in range(groups):
                    self.step(cur, w, tree0)
        else:
            with T.serial(0, steps):
                for w in range(groups):
                    self.step(cur, w, tree0)
        lw = tab.leaf_width
        for w in range(groups):
            slot = cur[self.lanes(w * V)]
            if self.perfect:  # leaf j of tree t is entry t * 2**depth + j; the walk ends at node 2**depth - 1 + j
                leaves = tab.stride + 1
                slot = self.lanes(tree0 + w * V) * self.bc(leaves) + slot - self.bc(tab.stride)
            if lw > 1:
                for k in range(lw):
                    at = self.lanes(k * V)
                    T.buffer_store(acc, acc[at] + self.gather(self.leaf, slot * self.bc(lw) + self.bc(k)), [at])
                continue
            value = self.gather(self.leaf, slot)
            cols = columns(tree0 + w * V)
            if len(cols) == 1:  # every tree of the vector adds to one column
                at = self.lanes(int(cols[0]) * V)
                T.buffer_store(acc, acc[at] + value, [at])
            else:
                col = self.tree_column[self.lanes(tree0 + w * V)]
                for k in cols:
                    at = self.lanes(int(k) * V)
                    keep = T.Select(col == self.bc(int(k)), value, self.bc(0.0, self.ad))
                    T.buffer_store(acc, acc[at] + keep, [at])

    def row_sums(self, acc) -> None:
        """Leaf sums of the row in ``xt`` over every tree, per column and lane, into ``acc``."""
        T, V, tab = self.T, self.V, self.tab
        W = self.opt.interleave
        with T.serial(0, self.K * V // V) as i:
            T.buffer_store(acc, self.bc(0.0, self.ad), [self.lanes(i * V)])
        column_of = None if tab.tree_column is None else np.asarray(tab.tree_column[: tab.n_trees])

        def columns(tree0):
            """Columns the static vector at ``tree0`` adds to (a loop var: every column of its run)."""
            if column_of is None:
                return [0]
            if isinstance(tree0, int):
                return sorted(set(column_of[tree0 : tree0 + V].tolist()))
            return list(range(self.K))

        for b, e, steps in tab.segments:
            groups = (e - b) // V
            full, rest = divmod(groups, W)
            if full == 1 or (full and column_of is not None and self.K > 1):
                for t in range(full):  # static tiles: each vector's columns known here
                    self.tile(b + t * W * V, W, steps, acc, columns)
            elif full:
                with T.serial(0, full) as t:
                    self.tile(b + t * (W * V), W, steps, acc, columns)
            if rest:
                self.tile(b + full * W * V, rest, steps, acc, columns)

    # ------------------------------------------------------------------ function
    def build(self):
        from tvm.script.ir_builder import IRBuilder

        T, tab, B, K, V = self.T, self.tab, self.B, self.K, self.V
        with IRBuilder() as ib:
            with T.prim_func():
                T.func_name("main")
                T.func_attr({"tir.noalias": True})
                xh, oh = T.arg("x", T.handle()), T.arg("out", T.handle())
                handles = {name: T.arg(name, T.handle()) for name in self.buffers}
                n = self.n = T.int32()
                F = tab.n_features
                self.x = T.match_buffer(xh, (n, F), self.cd, align=tab.cdtype.itemsize)
                self.out = T.match_buffer(oh, (n, K), self.ad, align=tab.adtype.itemsize)
                for name, arr in self.buffers.items():
                    attr = "pair_words" if name == "pair" else name
                    setattr(self, attr, T.match_buffer(handles[name], (arr.shape[0],), str(arr.dtype)))
                for name in ("tree_column", "special", "cat_bits", "root", "child"):
                    if name not in handles:
                        setattr(self, name, None)
                self.xi = T.decl_buffer((n * F,), self.it, data=self.x.data)

                def block(b):
                    if tab.x_block:
                        self.xt = T.alloc_buffer((self.xw,), self.cd, scope="global")
                    acc = T.alloc_buffer((K * V,), self.ad, scope="global")
                    with T.serial(0, T.min(B, n - b * B)) as r:
                        row = b * B + r
                        if self.opt.prefetch:
                            self.prefetch_row(row + self.opt.prefetch, n, F)
                        if tab.x_block:  # the row as [x, -x]
                            self.fill_row(row)
                            self.rowoff = self.bc(0)
                        else:  # node values gathered from x itself, the sign bit of the feature word applied
                            self.rowoff = self.bc(row * F)
                        self.row_sums(acc)
                        self.finish_row(row, lambda k: self._lane_sum(acc, k))

                self.row_blocks(n, B, self.opt.parallel == "rows", block)
        return ib.get()

    def _lane_sum(self, acc, k: int):
        s = acc[k * self.V]
        for lane in range(1, self.V):
            s = s + acc[k * self.V + lane]
        return s

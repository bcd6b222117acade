"""TensorIR generation for the QuickScorer kernel (built with TVM's IR builder, no blocks).

Loop nest, outermost first (``parallel`` marks the loop run by TVM's thread pool)::

    for block in blocks(n, B):                      # parallel over row blocks when "rows"
      copy each row vector of the block as a tile [x, -x] (2F columns x V lanes) and, per column, its scan key
      for tree block tb:                            # its tables stay in cache for every row of the block
        for v in row vectors of the block (V lanes):
          masks of tb's trees = all ones
          for segment (column c, thresholds sorted ascending) of tb:
            while i < end and not (key <= u[i]):    # key: the lanes' largest value, NaN if a lane is NaN
              for each lane where not (x <= u[i]): mask[tree(i)] &= bitvec[i]
          for special node of tb: where its predicate is false: mask[tree] &= bitvec
          for tree of tb: leaf rank = lowest set bit of its mask; acc += leaf value
      epilogue per row: aggregation, base score, post-transform (``_tir_kernel``'s)

With one lane the key is the row's value and the masked AND is unconditional.
Row vectors may span several SIMD registers (up to 128 lanes): the scan's
per-node overhead (threshold load, compare, branch, mask address) is then
shared by more rows, while the key, the maximum over more lanes, grows little.
The generator reuses the tiled-traversal generator's vector helpers, its
special-node predicate and its epilogue (``_tir_kernel._Gen``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._qs_layout import QsTables
from ._tir_kernel import Epilogue, _Gen


@dataclass(frozen=True)
class QsOptions:
    """Schedule of one QuickScorer kernel (the strategy's knobs, resolved against threads and the CPU)."""

    rows_per_block: int
    vector_rows: int
    parallel: str  # rows | none
    simd: str  # avx512 | avx2 | generic


def generate(tab: QsTables, opt: QsOptions, epi: Epilogue):
    """The PrimFunc ``main(x, out, *tables)`` for ``x: (n, F)`` and ``out: (n, K)``."""
    return _QsGen(tab, opt, epi).build()


class _QsGen(_Gen):
    """The tiled generator's fields (for its helpers) over QuickScorer tables, and the QuickScorer loops."""

    def __init__(self, tab: QsTables, opt: QsOptions, epi: Epilogue):
        from tvm import tirx
        from tvm.script.ir_builder import tirx as T

        self.T, self.tirx = T, tirx
        self.tab, self.opt, self.epi = tab, opt, epi
        self.V = opt.vector_rows
        self.B = opt.rows_per_block
        self.K = tab.n_outputs
        self.W = tab.words
        self.md = tab.mask_dtype
        self.cd = str(tab.cdtype)
        self.ad = str(tab.adtype)
        self.wide = tab.cdtype.itemsize == 8
        self.it = "int64" if self.wide else "int32"
        # x86 gathers of 32-bit data; row vectors wider than a register are gathered in native chunks
        self.x86 = opt.simd in ("avx2", "avx512") and self.V > 1 and not self.wide
        self.native = 16 if opt.simd == "avx512" else 8
        # float64 tables (leaves; x of float64 models) by AVX-512 gathers of 8 lanes
        self.gather64 = opt.simd == "avx512" and self.V % 8 == 0

    def gather(self, buf, idx):
        """``buf[idx]`` per lane; more lanes than one vector are gathered in native chunks."""
        if str(buf.dtype) == "float64" and self.gather64:
            return self._chunks(idx, 8, lambda sub: self.T.call_llvm_pure_intrin(
                "float64x8", "llvm.x86.avx512.mask.gather.dpd.512", self.tirx.Broadcast(self.c(0.0, "float64"), 8),
                self.T.address_of(buf[0]), sub, self.tirx.Broadcast(self.c(True, "bool"), 8), self.T.int32(8)))
        if self.V <= self.native or not self.x86 or str(buf.dtype) not in ("int32", "float32"):
            return super().gather(buf, idx)

        def native(sub):  # the tiled generator's gather, on its own lane count
            lanes, self.V = self.V, self.native
            try:
                return super(_QsGen, self).gather(buf, sub)
            finally:
                self.V = lanes

        return self._chunks(idx, self.native, native)

    def _chunks(self, idx, width: int, one):
        """``one(sub)`` on each ``width``-lane chunk ``sub`` of ``idx``, concatenated."""
        tirx = self.tirx
        if self.V == width:
            return one(idx)
        parts = [one(tirx.Shuffle([idx], [c * width + i for i in range(width)])) for c in range(self.V // width)]
        return tirx.Shuffle(parts, list(range(self.V)))

    # ------------------------------------------------------------------ pieces
    def fill_block(self, block, live) -> None:
        """Each row vector of the block as a tile ``[x, -x]`` of 2F columns x V lanes (rows past n repeat
        the last) and, per column, the scan key."""
        T, B, V, F = self.T, self.B, self.V, self.tab.n_features
        if V == 1:
            with T.serial(0, live) as r:
                src = T.min(block * B + r, self.n - 1)
                with T.serial(0, F) as f:
                    T.buffer_store(self.xt, self.x[src, f], [r * 2 * F + f])
                    T.buffer_store(self.xt, -self.x[src, f], [r * 2 * F + F + f])
            return
        with T.serial(0, live) as rv:
            rows = T.min(self.lanes(block * B + rv * V), self.bc(self.n - 1)) * self.bc(F)
            with T.serial(0, F) as f:
                v = self.gather(self.xflat, rows + self.bc(f))
                T.buffer_store(self.xt, v, [self.lanes((rv * 2 * F + f) * V)])
                T.buffer_store(self.xt, -v, [self.lanes((rv * 2 * F + F + f) * V)])
            # key = the lanes' largest value, NaN when a lane is NaN (then every node of the column is
            # scanned): LLVM's NaN-propagating maximum reduction
            with T.serial(0, 2 * F) as c:
                lanes = self.xt[self.lanes((rv * 2 * F + c) * V)]
                key = T.call_llvm_pure_intrin(self.cd, "llvm.vector.reduce.fmaximum", lanes)
                T.buffer_store(self.key, key, [rv * 2 * F + c])

    def column(self, rv, c):
        """Row vector ``rv``'s values of column ``c`` (a vector of V lanes)."""
        return self.xt[self.lanes((rv * 2 * self.tab.n_features + c) * self.V)]

    def and_masks(self, at, bitvec, node, keep) -> None:
        """``mask &= bitvec[node]`` for the tree whose mask starts at ``at``, except in lanes where ``keep``."""
        T, V, W = self.T, self.V, self.W
        for w in range(W):
            word = self.bc(bitvec[node * W + w])
            where = self.lanes(at + w * V)
            old = self.masks[where]
            T.buffer_store(self.masks, old & word if keep is None else T.Select(keep, old, old & word), [where])

    def scan(self, tb, rv) -> None:
        """The sorted scans of tree block ``tb`` for row vector ``rv``: AND every false node's bitvector."""
        T, tirx, tab, V = self.T, self.tirx, self.tab, self.V
        with T.serial(self.block_seg[tb], self.block_seg[tb + 1]) as s:
            # the segment's invariants in small local buffers (registers): LLVM cannot hoist loads of the
            # x block out of the loop, which stores to the masks (both live in TVM's workspace)
            col = self.seg_column[s]
            at = rv * 2 * tab.n_features + col
            T.buffer_store(self.scalars, self.key[at] if V > 1 else self.xt[at], [0])
            if V > 1:
                T.buffer_store(self.values, self.column(rv, col), [self.lanes(0)])
            T.buffer_store(self.cursor, self.seg_start[s], [0])
            T.buffer_store(self.cursor, self.seg_start[s + 1], [1])
            i, end = self.cursor[0], self.cursor[1]
            # the table has spare entries past every segment: reading u[end] is harmless.  "not (key <= u)"
            # is written as a cast: TVM rewrites Not(a <= b) into a > b, which is wrong for NaN
            failed = T.Cast("int32", self.scalars[0] <= self.threshold[i]) == 0
            with T.While(tirx.And(i < end, failed)):
                keep = None
                if V > 1:
                    keep = self.values[self.lanes(0)] <= self.bc(self.threshold[i])
                if tab.spans:  # only the words this node clears
                    first = self.bv_start[i]
                    with T.serial(0, self.bv_start[i + 1] - first) as w:
                        where = self.lanes((self.mask_at[i] + w) * V)
                        old, word = self.masks[where], self.bc(self.bitvec[first + w])
                        T.buffer_store(self.masks, old & word if keep is None else T.Select(keep, old, old & word),
                                       [where])
                else:
                    self.and_masks(self.mask_at[i] * V, self.bitvec, i, keep)
                T.buffer_store(self.cursor, i + 1, [0])
        if tab.n_special:
            with T.serial(self.block_sp[tb], self.block_sp[tb + 1]) as s:
                v = self.column(rv, self.sp_column[s])
                xb = T.reinterpret(self.vt(self.it), v)
                p = self.special_predicate(xb, v, self.bc(self.sp_threshold[s]), self.bc(self.sp_code[s]))
                self.and_masks(self.sp_mask_at[s] * V, self.sp_bitvec, s, p)

    def exit_rank(self, at):
        """Per lane: the lowest set bit of the tree mask that starts at ``at`` (its exit leaf's rank)."""
        T, V = self.T, self.V
        rank = None
        for w in reversed(range(self.W)):
            word = self.masks[self.lanes(at + w * V)]
            low = T.call_llvm_pure_intrin(self.vt(self.md), "llvm.cttz", word, T.bool(False))
            r = T.Cast(self.vt("int32"), low) + self.bc(w * self.tab.word_bits)
            rank = r if rank is None else T.Select(word != self.bc(0, self.md), r, rank)
        return rank

    def add_leaves(self, tb, rv, acc) -> None:
        """Exit leaves of tree block ``tb``'s trees for row vector ``rv``, added into ``acc``."""
        T, tab, B, V, W = self.T, self.tab, self.B, self.V, self.W
        TB = tab.tree_block
        with T.serial(0, T.min(TB, tab.n_trees - tb * TB)) as j:
            t = tb * TB + j
            T.buffer_store(self.rank, self.exit_rank(j * (W * V)), [self.lanes(0)])
            slot = self.bc(self.leaf_start[t]) + self.rank[self.lanes(0)]
            lw = tab.leaf_width
            if self.tree_column is not None:
                at = self.lanes(self.tree_column[t] * B + rv * V)
                T.buffer_store(acc, acc[at] + self.gather(self.leaf, slot), [at])
            else:
                for k in range(lw):
                    at = self.lanes(k * B + rv * V)
                    value = self.gather(self.leaf, slot if lw == 1 else slot * self.bc(lw) + self.bc(k))
                    T.buffer_store(acc, acc[at] + value, [at])

    def block_sums(self, block, acc) -> None:
        """Leaf sums of rows ``block*B ..`` over every tree into ``acc``."""
        T, tab, B, V, W = self.T, self.tab, self.B, self.V, self.W
        with T.serial(0, self.K * B // V) as i:
            T.buffer_store(acc, self.bc(0.0, self.ad), [self.lanes(i * V)])
        live = T.min(B // V, (self.n - block * B + V - 1) // V)  # the last block may hold fewer rows
        self.fill_block(block, live)
        with T.serial(0, tab.n_blocks) as tb:
            with T.serial(0, live) as rv:
                with T.serial(0, tab.tree_block * W) as i:
                    T.buffer_store(self.masks, self.bc(-1, self.md), [self.lanes(i * V)])
                self.scan(tb, rv)
                self.add_leaves(tb, rv, acc)

    # ------------------------------------------------------------------ function
    def build(self):
        from tvm.script.ir_builder import IRBuilder

        T, tab, B, V, K = self.T, self.tab, self.B, self.V, self.K
        F = tab.n_features
        with IRBuilder() as ib:
            with T.prim_func():
                T.func_name("main")
                T.func_attr({"tir.noalias": True})
                xh, oh = T.arg("x", T.handle()), T.arg("out", T.handle())
                handles = {name: T.arg(name, T.handle()) for name in tab.buffers()}
                n = self.n = T.int32()
                self.x = T.match_buffer(xh, (n, F), self.cd, align=tab.cdtype.itemsize)
                self.out = T.match_buffer(oh, (n, K), self.ad, align=tab.adtype.itemsize)
                optional = ("bv_start", "tree_column", "sp_column", "sp_code", "sp_threshold", "sp_mask_at",
                            "sp_bitvec", "block_sp", "cat_bits")
                for name in optional:
                    setattr(self, name, None)
                for name, arr in tab.buffers().items():
                    setattr(self, name, T.match_buffer(handles[name], (arr.shape[0],), str(arr.dtype)))
                self.xflat = T.decl_buffer((n * F,), self.cd, data=self.x.data)

                def block(b):
                    acc = T.alloc_buffer((K * B,), self.ad, scope="global")
                    self.xt = T.alloc_buffer((2 * F * B,), self.cd, scope="global")
                    self.key = T.alloc_buffer((2 * F * (B // V),), self.cd, scope="global") if V > 1 else None
                    self.masks = T.alloc_buffer((tab.tree_block * self.W * V,), self.md, scope="global")
                    self.cursor = T.alloc_buffer((2,), "int32", scope="global")
                    self.scalars = T.alloc_buffer((1,), self.cd, scope="global")
                    self.values = T.alloc_buffer((V,), self.cd, scope="global")
                    self.rank = T.alloc_buffer((V,), "int32", scope="global")
                    self.block_sums(b, acc)
                    self.finish_block(b, acc)

                self.row_blocks(n, B, self.opt.parallel == "rows", block)
        return ib.get()

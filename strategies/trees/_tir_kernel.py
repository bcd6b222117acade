"""TensorIR generation for the tiled-traversal kernel (built with TVM's IR builder, no blocks).

Loop nest, outermost first (``parallel`` marks the loop run by TVM's thread pool)::

    rows/none:   for block in blocks(n, B):            # parallel over row blocks when "rows"
                   [x_block: copy the block's rows feature-major as [x, -x]]
                   rows_outer:  for v in row vectors:  for tile in trees:        walk
                   trees_outer: for g in tree groups:  for v in row vectors:  for tile in g: walk
                   epilogue per row: aggregation, base score, post-transform
    trees:       for g in tree groups (parallel):  for block:  for v:  for tile in g: walk
                   -> partial sums per group; then a pass over rows adds them in group order

A batch that fits one block skips the parallel loop (a TVM launch costs ~10 us
even when it runs serially).  Only row vectors holding live rows are walked.

A *tile* walks ``interleave`` trees at once for ``vector_rows`` rows (SIMD lanes):
``interleave`` independent dependency chains hide the load latency.  On x86 with
AVX2 / AVX-512 the per-lane loads are hardware gathers, and in the perfect layout
the top ``register_levels`` levels of a tree are read with in-register permutes
(``vpermd``/``vpermi2d``) instead of gathers.  Walk state lives in small stack
buffers (LLVM promotes them to registers); let-chains are avoided on purpose:
TVM's code generator re-simplifies every bound value and blows up on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import ZERO_MISSING_THRESHOLD, PostTransform, TreeEnsemble
from ._tir_layout import KernelTables
from .common import round_down


@dataclass(frozen=True)
class KernelOptions:
    """Schedule of one kernel (the strategy's knobs, resolved against threads and the CPU)."""

    rows_per_block: int
    vector_rows: int
    interleave: int
    tree_group: int  # trees per group; 0: all trees in one group
    loop_order: str  # rows_outer | trees_outer
    parallel: str  # rows | trees | none
    unroll: bool
    register_levels: int
    simd: str  # avx512 | avx2 | generic
    eager_levels: int = 0  # perfect layout + x block: the top levels' nodes all compared with plain vector loads


# the post-transforms the epilogue implements (any other is refused rather than skipped)
TIR_POST_KINDS = ("sigmoid", "exp", "isolation", "softmax", "ovr_normalize")
CACHE_LINE = 64  # bytes per cache line (x86-64 and the Arm cores TVM targets here)


@dataclass(frozen=True)
class Epilogue:
    """What turns the per-column leaf sums into the output."""

    aggregation: str
    base_score: tuple[float, ...]
    trees_per_output: tuple[int, ...]
    post: PostTransform | None  # None: return the raw score
    category_rounding: str

    @classmethod
    def of(cls, op: TreeEnsemble, output: str) -> Epilogue:
        """The epilogue of ``op`` for ``output`` "raw" (no post-transform) or "out" (fused)."""
        post = op.post_transform if output == "out" and not op.post_transform.is_identity else None
        if post is not None and post.kind not in TIR_POST_KINDS:
            from ..ground.errors import InvalidConfigError

            raise InvalidConfigError(f"the TensorIR tree kernels have no rule for post-transform {post.kind!r}")
        return cls(
            aggregation=op.aggregation, base_score=tuple(float(b) for b in op.base_score),
            trees_per_output=tuple(int(c) for c in op.trees_per_output()), post=post,
            category_rounding=op.category_rounding,
        )


def generate(tab: KernelTables, opt: KernelOptions, epi: Epilogue):
    """The PrimFunc ``main(x, out, *tables)`` for ``x: (n, F)`` and ``out: (n, K)``."""
    return _Gen(tab, opt, epi).build()


class _Gen:
    def __init__(self, tab: KernelTables, opt: KernelOptions, epi: Epilogue):
        self._setup(tab, opt, epi, opt.vector_rows)
        self.group = tab.n_trees if opt.tree_group <= 0 else min(opt.tree_group, tab.n_trees)
        self.segments = tab.segments or ((0, tab.n_trees, tab.depth),)
        self.n_groups = sum(-(-(e - b) // self.group) for b, e, _ in self.segments)

    def _setup(self, tab: Any, opt: Any, epi: Epilogue, lanes: int) -> None:
        """The facts every tree kernel's generator reads: builders, tables, dtypes, lanes, x86 intrinsics."""
        from tvm import tirx
        from tvm.script.ir_builder import tirx as T

        self.T, self.tirx = T, tirx
        self.tab, self.opt, self.epi = tab, opt, epi
        self.V = lanes
        self.B = opt.rows_per_block
        self.K = tab.n_outputs
        self.cd = str(tab.cdtype)
        self.ad = str(tab.adtype)
        self.wide = tab.cdtype.itemsize == 8
        self.it = "int64" if self.wide else "int32"
        # x86 gather/permute intrinsics serve 32-bit data (16 lanes: AVX-512 only); else TVM's per-lane loads
        self.x86 = opt.simd in ("avx2", "avx512") and lanes > 1 and not self.wide
        if lanes == 16 and opt.simd != "avx512":
            self.x86 = False

    # ------------------------------------------------------------------ vector helpers
    def c(self, value, dtype: str):
        return self.tirx.const(value, dtype)

    def bc(self, value, dtype: str = "int32"):
        v = self.c(value, dtype) if isinstance(value, (int, float, bool, np.integer, np.floating)) else value
        return v if self.V == 1 else self.tirx.Broadcast(v, self.V)

    def row_blocks(self, n, B: int, parallel: bool, block) -> None:
        """``block(b)`` for every block of ``B`` rows: by TVM's thread pool when ``parallel``, else serially."""
        T = self.T
        n_blocks = (n + B - 1) // B
        if not parallel:
            with T.serial(0, n_blocks) as b:
                block(b)
            return
        # one block: no parallel launch (TVM's launch costs ~10 us even when it ends up serial)
        with T.If(n <= B):
            with T.Then():
                block(0)
            with T.Else():
                with T.parallel(0, n_blocks) as b:
                    block(b)

    def prefetch_row(self, row, n, F: int) -> None:
        """Software prefetch of every cache line of input row ``min(row, n - 1)`` (a hint: no fault, no effect
        on results), so that a wide row's first gathers hit the cache instead of memory."""
        T = self.T
        per_line = max(1, CACHE_LINE // np.dtype(self.cd).itemsize)
        at = T.min(row, n - 1)
        lines = -(-F // per_line)
        with T.serial(0, lines + 1) as c:  # one more: the row need not start on a line boundary
            col = T.min(c * per_line, F - 1)
            T.evaluate(T.call_llvm_intrin("void", "llvm.prefetch.p0", T.address_of(self.x[at, col]),
                                          T.int32(0), T.int32(3), T.int32(1)))

    def lanes(self, base):
        return base if self.V == 1 else self.tirx.Ramp(base, 1, self.V)

    def vt(self, dtype: str) -> str:
        return dtype if self.V == 1 else f"{dtype}x{self.V}"

    def gather(self, buf, idx):
        """``buf[idx]`` per lane (``idx`` int32)."""
        T, tirx = self.T, self.tirx
        dtype = str(buf.dtype)
        V = self.V
        wide_ok = V == 8 and self.opt.simd == "avx512" and dtype in ("int64", "float64")
        if not ((self.x86 and dtype in ("int32", "float32")) or wide_ok):
            return buf[idx]
        src = tirx.Broadcast(self.c(0, dtype), V)
        if wide_ok:  # 8 lanes of 64-bit values, 32-bit indices
            name = "llvm.x86.avx512.mask.gather.dpq.512" if dtype == "int64" else "llvm.x86.avx512.mask.gather.dpd.512"
            mask = tirx.Broadcast(self.c(True, "bool"), V)
            return T.call_llvm_pure_intrin(f"{dtype}x{V}", name, src, T.address_of(buf[0]), idx, mask, T.int32(8))
        if V == 16:
            name = "llvm.x86.avx512.mask.gather.dpi.512" if dtype == "int32" else "llvm.x86.avx512.mask.gather.dps.512"
            mask = tirx.Broadcast(self.c(True, "bool"), V)
            scale = T.int32(4)
        else:
            name = "llvm.x86.avx2.gather.d.d.256" if dtype == "int32" else "llvm.x86.avx2.gather.d.ps.256"
            mask = tirx.Broadcast(self.c(-1, "int32"), V)
            if dtype == "float32":
                mask = T.reinterpret("float32x8", mask)
            scale = T.int8(4)
        return T.call_llvm_pure_intrin(f"{dtype}x{V}", name, src, T.address_of(buf[0]), idx, mask, scale)

    def _permute(self, dtype: str, table, lane):
        T = self.T
        if self.V == 8:
            name = "llvm.x86.avx2.permd" if dtype == "int32" else "llvm.x86.avx2.permps"
        else:
            name = "llvm.x86.avx512.permvar.si.512" if dtype == "int32" else "llvm.x86.avx512.permvar.sf.512"
        return T.call_llvm_pure_intrin(f"{dtype}x{self.V}", name, table, lane)

    def _permute2(self, dtype: str, lo, hi, lane):
        sfx = "d" if dtype == "int32" else "ps"
        name = f"llvm.x86.avx512.vpermi2var.{sfx}.{32 * self.V}"
        return self.T.call_llvm_pure_intrin(f"{dtype}x{self.V}", name, lo, lane, hi)

    def lookup(self, buf, start, lane, count: int):
        """``buf[start + lane]`` for ``lane < count`` by in-register permutes of contiguous loads."""
        T, V = self.T, self.V
        dtype = str(buf.dtype)
        chunk = 2 * V if self.opt.simd == "avx512" else V
        if count <= V:
            return self._permute(dtype, buf[self.lanes(start)], lane)
        shift = chunk.bit_length() - 1
        res = None
        for k in range(count // chunk):
            s0 = start + k * chunk
            sub = lane & self.bc(chunk - 1)
            if chunk == V:
                r = self._permute(dtype, buf[self.lanes(s0)], sub)
            else:
                r = self._permute2(dtype, buf[self.lanes(s0)], buf[self.lanes(s0 + V)], sub)
            res = r if res is None else T.Select((lane >> self.bc(shift)) == self.bc(k), r, res)
        return res

    # ------------------------------------------------------------------ predicate
    def predicate(self, fe, th, sp, rowoff, v=None):
        """P = s * x[f] <= u for numeric nodes; the special rules where ``sp`` is non-zero.

        ``rowoff``: per lane, the row's offset in ``x`` (or, with the x block, its row
        in the block); ``v``: the node's (signed) feature value when already loaded.
        """
        T = self.T
        if self.tab.x_block:
            if v is None:
                v = self.gather(self.xt, fe + rowoff)
            xb = None if sp is None else T.reinterpret(self.vt(self.it), v)
        else:
            xb = self.gather(self.xi, rowoff + (fe & self.bc(0x7FFFFFFF)))
            if self.wide:
                sign = T.Cast(self.vt("int64"), fe & self.bc(-(2**31))) << self.bc(32, "int64")
            else:
                sign = fe & self.bc(-(2**31))
            v = T.reinterpret(self.vt(self.cd), xb ^ sign)
        p = v <= th
        if sp is None:
            return p
        return T.Select(sp == self.bc(0), p, self.special_predicate(xb, v, th, sp))

    def special_predicate(self, xb, v, th, sp):
        T, tab, it = self.T, self.tab, self.it
        if self.wide:
            absmask, infbits = 0x7FFF_FFFF_FFFF_FFFF, 0x7FF0_0000_0000_0000
        else:
            absmask, infbits = 0x7FFF_FFFF, 0x7F80_0000
        zbits = int(round_down(np.array([ZERO_MISSING_THRESHOLD]), tab.cdtype).view(it)[0])
        ab = xb & self.bc(absmask, it)
        isnan = ab > self.bc(infbits, it)
        ml = ((sp >> self.bc(2)) & self.bc(1)) == self.bc(1)
        pz = pc = None
        if tab.has_zero_missing:
            miss = isnan | (ab <= self.bc(zbits, it))
            pz = T.Select(miss, ml, v <= th)
        if tab.has_categorical:
            n_cat = 32 * tab.cat_words
            c = T.floor(v) if self.epi.category_rounding == "floor" else T.trunc(v)
            valid = (ab <= self.bc(infbits, it)) & (c >= self.bc(0.0, self.cd)) & (c < self.bc(float(n_cat), self.cd))
            if self.epi.category_rounding == "exact":  # only integral values are categories
                valid = valid & (c == v)
            ci = T.Cast(self.vt("int32"), T.Select(valid, c, self.bc(0.0, self.cd)))
            word = self.gather(self.cat_bits, (sp >> self.bc(4)) * self.bc(tab.cat_words) + (ci >> self.bc(5)))
            bit = ((word >> (ci & self.bc(31))) & self.bc(1)) == self.bc(1)
            unk = ((sp >> self.bc(3)) & self.bc(1)) == self.bc(1)
            pc = T.Select(isnan, ml, T.Select(valid, bit, unk))
        if pz is None:
            return pc
        if pc is None:
            return pz
        return T.Select((sp & self.bc(3)) == self.bc(1), pc, pz)

    # ------------------------------------------------------------------ one tile
    def node_fields(self, node):
        spec = None if self.special is None else self.gather(self.special, node)
        return self.gather(self.feature, node), self.gather(self.threshold, node), spec

    def walk_level(self, idx, w: int, tree, d, rowoff) -> None:
        """One step of walk ``w`` (tree ``tree``) at level ``d`` (int when unrolled, else a loop var)."""
        T, tab = self.T, self.tab
        at = self.lanes(w * self.V)
        static = isinstance(d, int)
        if tab.layout == "perfect" or (tab.layout == "hybrid" and d < tab.top_levels):
            base = tree * tab.stride
            v = None
            L = self.opt.eager_levels
            if static and L and d < L:
                if d == 0:
                    T.buffer_store(idx, self.eager_top(base, L), [at])
                return
            if static and d == 0:
                cur = self.bc(0)
                fe, th = self.bc(self.feature[base]), self.bc(self.threshold[base], self.cd)
                sp = None if self.special is None else self.bc(self.special[base])
                if tab.x_block and self.V > 1:  # one column for every lane: a plain vector load
                    v = self.xt[self.lanes(self.feature[base] + self.block_row)]
            elif static and d == 1 and tab.x_block and self.V > 1:
                cur = idx[at]
                left = cur == self.bc(1)
                pick = lambda buf, dt: T.Select(left, self.bc(buf[base + 1], dt), self.bc(buf[base + 2], dt))  # noqa: E731
                fe, th = pick(self.feature, "int32"), pick(self.threshold, self.cd)
                sp = None if self.special is None else pick(self.special, "int32")
                v = T.Select(left, self.xt[self.lanes(self.feature[base + 1] + self.block_row)],
                             self.xt[self.lanes(self.feature[base + 2] + self.block_row)])
            elif static and self.x86 and d < self.opt.register_levels:
                cur = idx[at]
                first = 2**d - 1
                lane = cur - self.bc(first)
                fe = self.lookup(self.feature, base + first, lane, 2**d)
                th = self.lookup(self.threshold, base + first, lane, 2**d)
                sp = None if self.special is None else self.lookup(self.special, base + first, lane, 2**d)
            else:
                cur = idx[at]
                fe, th, sp = self.node_fields(self.bc(base) + cur)
            p = self.predicate(fe, th, sp, rowoff, v)
            T.buffer_store(idx, cur * self.bc(2) + self.bc(2) - T.Cast(self.vt("int32"), p), [at])
        else:
            if tab.layout == "hybrid" and d == tab.top_levels:  # leave the perfect top through the exit table
                top = 2**tab.top_levels
                cur = self.gather(self.exit, self.bc(tree * top - (top - 1)) + idx[at])
            elif tab.layout == "sparse" and static and d == 0:
                cur = self.bc(self.root[tree])
            else:
                cur = idx[at]
            fe, th, sp = self.node_fields(cur)
            ch = self.gather(self.child, cur)
            p = self.predicate(fe, th, sp, rowoff)
            T.buffer_store(idx, ch + self.bc(1) - T.Cast(self.vt("int32"), p), [at])

    def eager_top(self, base, L: int):
        """Node index at level ``L`` of the tree at ``base``: every node of the top ``L`` levels compared at once.

        Each node's column of the x block is one plain vector load (no gather and no
        dependent load); level ``d``'s predicates are packed into one bit per node and
        the walk then only picks bits: ``l' = 2 l + 1 - bit(l)`` (local index in the level).
        """
        T = self.T
        local = self.bc(0)
        for d in range(L):
            first = 2**d - 1
            bits = None
            for j in range(2**d):
                node = base + first + j
                v = self.xt[self.lanes(self.feature[node] + self.block_row)]
                b = T.Select(v <= self.bc(self.threshold[node], self.cd), self.bc(1 << j if j < 31 else -(2**31)), self.bc(0))
                bits = b if bits is None else bits | b
            p = (bits >> local) & self.bc(1) if d else bits
            local = local * self.bc(2) + self.bc(1) - p
        return local + self.bc(2**L - 1)

    def tile(self, tree0, ww: int, rowoff, acc, acc_row, steps: int) -> None:
        """Walk trees ``tree0 .. tree0+ww-1`` ``steps`` levels deep for the row vector at ``acc_row`` and add
        their leaves."""
        T, tab, V = self.T, self.tab, self.V
        idx = T.alloc_buffer((ww * V,), "int32", scope="global")
        if self.opt.unroll:
            for d in range(steps):
                for w in range(ww):
                    self.walk_level(idx, w, tree0 + w, d, rowoff)
        else:
            for w in range(ww):
                start = self.bc(0) if tab.layout == "perfect" else self.bc(self.root[tree0 + w])
                T.buffer_store(idx, start, [self.lanes(w * V)])
            with T.serial(0, steps) as d:
                for w in range(ww):
                    self.walk_level(idx, w, tree0 + w, d, rowoff)
        lw = tab.leaf_width
        values = []
        for w in range(ww):
            cur = idx[self.lanes(w * V)]
            if tab.layout == "perfect":
                slot = self.bc((tree0 + w) * (tab.stride + 1) - tab.stride) + cur
            else:
                slot = cur
            if lw == 1:
                values.append([self.gather(self.leaf, slot)])
            else:
                values.append([self.gather(self.leaf, slot * self.bc(lw) + self.bc(k)) for k in range(lw)])
        if tab.tree_column is None or self.K == 1:
            for k in range(lw):
                at = self.lanes(k * self.B + acc_row)
                s = acc[at]
                for w in range(ww):
                    s = s + values[w][k]
                T.buffer_store(acc, s, [at])
        else:
            for w in range(ww):
                at = self.lanes(self.tree_column[tree0 + w] * self.B + acc_row)
                T.buffer_store(acc, acc[at] + values[w][0], [at])

    def tree_range(self, begin, end, rowoff, acc, acc_row, steps: int, whole: bool = False) -> None:
        """Tiles over trees ``[begin, end)`` (walks of ``steps`` levels): full tiles of ``interleave``, then
        single trees (``whole``: the count is known to be a multiple of ``interleave``)."""
        T, W = self.T, self.opt.interleave
        count = end - begin
        with T.serial(0, count // W) as i:
            self.tile(begin + i * W, W, rowoff, acc, acc_row, steps)
        if isinstance(count, int) and count % W == 0:
            whole = True
        if W > 1 and not whole:
            with T.serial(0, count % W) as i:
                self.tile(begin + (count // W) * W + i, 1, rowoff, acc, acc_row, steps)

    def row_offsets(self, r0):
        """Per lane: the row's offset in ``x`` (direct) or its row in the x block."""
        T = self.T
        n, F = self.n, self.tab.n_features
        if self.tab.x_block:
            return self.lanes(self.block_row)
        if self.V == 1:
            return T.min(r0, n - 1) * F
        return T.min(self.lanes(r0), self.bc(n - 1)) * self.bc(F)

    def block_sums(self, block, groups, acc) -> None:
        """Leaf sums of rows ``block*B ..`` over the trees of ``groups`` (a loop var or "all") into ``acc``."""
        T, tab, B, V = self.T, self.tab, self.B, self.V
        G = self.group
        with T.serial(0, self.K * B // V) as i:
            T.buffer_store(acc, self.bc(0.0, self.ad), [self.lanes(i * V)])

        live = T.min(B // V, (self.n - block * B + V - 1) // V)  # the last block may hold fewer rows
        if tab.x_block:
            self.fill_block(block, live * V)

        def rows(body):
            with T.serial(0, live) as rv:
                self.block_row = rv * V
                body(rv * V, self.row_offsets(block * B + rv * V))

        whole = G % self.opt.interleave == 0 and all((e - b) % self.opt.interleave == 0 for b, e, _ in self.segments)

        def group_range(b, e, steps, g):  # group g (0-based in its segment [b, e))
            rows(lambda ar, ro: self.tree_range(b + g * G, T.min(b + g * G + G, e), ro, acc, ar, steps, whole))

        if groups == "all" and self.opt.loop_order == "rows_outer":
            def every_segment(ar, ro):
                for b, e, steps in self.segments:
                    self.tree_range(b, e, ro, acc, ar, steps)
            rows(every_segment)
        elif groups == "all":
            for b, e, steps in self.segments:
                with T.serial(0, -(-(e - b) // G)) as g:
                    group_range(b, e, steps, g)
        else:  # groups are numbered across segments: segment by segment, -(-(e - b) // G) each
            first = 0
            for b, e, steps in self.segments:
                count = -(-(e - b) // G)
                if len(self.segments) == 1:
                    group_range(b, e, steps, groups)
                else:
                    with T.If(T.And(groups >= first, groups < first + count)):
                        with T.Then():
                            group_range(b, e, steps, groups - first)
                first += count

    def fill_block(self, block, rows) -> None:
        """Copy ``rows`` rows of the block into the feature-major buffer ``[x, -x]`` (rows past n repeat the last)."""
        T, B, F, V = self.T, self.B, self.tab.n_features, self.V
        if self.x86:  # a vector of rows per feature: one gather and two vector stores (higgs: ~4% of the kernel)
            with T.serial(0, rows // V) as rv:
                src = T.min(self.lanes(block * B + rv * V), self.bc(self.n - 1)) * self.bc(F)
                with T.serial(0, F) as f:
                    v = self.gather(self.xf, src + self.bc(f))
                    T.buffer_store(self.xt, v, [self.lanes(f * B + rv * V)])
                    T.buffer_store(self.xt, -v, [self.lanes((F + f) * B + rv * V)])
            return
        with T.serial(0, rows) as r:
            src = T.min(block * B + r, self.n - 1)
            with T.serial(0, F) as f:
                T.buffer_store(self.xt, self.x[src, f], [f * B + r])
                T.buffer_store(self.xt, -self.x[src, f], [(F + f) * B + r])

    # ------------------------------------------------------------------ epilogue
    def finish_row(self, row, raw_at) -> None:
        """Aggregate, add the base score, apply the post-transform and store row ``row``."""
        T, K, ad = self.T, self.K, self.ad
        tmp = T.alloc_buffer((K,), ad, scope="global")
        for k in range(K):
            v = raw_at(k)
            if self.epi.aggregation == "mean":
                v = v / self.c(float(self.epi.trees_per_output[k]), ad)
            T.buffer_store(tmp, v + self.c(float(self.epi.base_score[k]), ad), [k])
        post = self.epi.post
        one = self.c(1.0, ad)
        kind = "identity" if post is None else post.kind
        if kind == "sigmoid":
            for k in range(K):
                T.buffer_store(tmp, one / (one + T.exp(-self.c(post.param, ad) * tmp[k])), [k])
        elif kind == "exp":
            for k in range(K):
                T.buffer_store(tmp, T.exp(tmp[k]), [k])
        elif kind == "isolation":
            for k in range(K):
                T.buffer_store(tmp, -T.exp2(-tmp[k] / self.c(post.param, ad)), [k])
        elif kind == "softmax":
            m = tmp[0]
            for k in range(1, K):
                m = T.max(m, tmp[k])
            mx = T.alloc_buffer((1,), ad, scope="global")
            T.buffer_store(mx, m, [0])
            s = self.c(0.0, ad)
            for k in range(K):
                T.buffer_store(tmp, T.exp(tmp[k] - mx[0]), [k])
                s = s + tmp[k]
            T.buffer_store(mx, s, [0])
            for k in range(K):
                T.buffer_store(tmp, tmp[k] / mx[0], [k])
        elif kind == "ovr_normalize":
            for k in range(K):
                T.buffer_store(tmp, one / (one + T.exp(-tmp[k])), [k])
            if K > 1:
                mx = T.alloc_buffer((1,), ad, scope="global")
                s = self.c(0.0, ad)
                for k in range(K):
                    s = s + tmp[k]
                T.buffer_store(mx, s, [0])
                for k in range(K):
                    T.buffer_store(tmp, tmp[k] / mx[0], [k])
        for k in range(K):
            T.buffer_store(self.out, tmp[k], [row, k])

    def alloc_block(self) -> None:
        self.xt = None
        if self.tab.x_block:
            self.xt = self.T.alloc_buffer((2 * self.tab.n_features * self.B,), self.cd, scope="global")

    def finish_block(self, block, acc) -> None:
        T, B = self.T, self.B
        with T.serial(0, B) as r:
            row = block * B + r
            with T.If(row < self.n):
                with T.Then():
                    self.finish_row(row, lambda k: acc[k * B + r])

    # ------------------------------------------------------------------ function
    def build(self):
        from tvm.script.ir_builder import IRBuilder

        T, tab, B, K = self.T, self.tab, self.B, self.K
        with IRBuilder() as ib:
            with T.prim_func():
                T.func_name("main")
                T.func_attr({"tir.noalias": True})
                xh, oh = T.arg("x", T.handle()), T.arg("out", T.handle())
                handles = {name: T.arg(name, T.handle()) for name in tab.buffers()}
                n = self.n = T.int32()
                F = tab.n_features
                x = self.x = T.match_buffer(xh, (n, F), self.cd, align=tab.cdtype.itemsize)
                self.out = T.match_buffer(oh, (n, K), self.ad, align=tab.adtype.itemsize)
                for name, arr in tab.buffers().items():
                    setattr(self, name, T.match_buffer(handles[name], (arr.shape[0],), str(arr.dtype)))
                self.xi = T.decl_buffer((n * F,), self.it, data=x.data)
                self.xf = T.decl_buffer((n * F,), self.cd, data=x.data)
                for name in ("child", "root", "tree_column", "special", "cat_bits", "exit"):
                    if name not in handles:
                        setattr(self, name, None)
                n_blocks = (n + B - 1) // B
                if self.opt.parallel in ("trees", "both"):
                    part = T.alloc_buffer((self.n_groups * n * K,), self.ad, scope="global")

                    def group_block(g, b):
                        acc = T.alloc_buffer((K * B,), self.ad, scope="global")
                        self.alloc_block()
                        self.block_sums(b, g, acc)
                        with T.serial(0, B) as r:
                            with T.If(b * B + r < n):
                                with T.Then():
                                    for k in range(K):
                                        T.buffer_store(part, acc[k * B + r], [(g * n + b * B + r) * K + k])

                    if self.opt.parallel == "trees":
                        with T.parallel(0, self.n_groups) as g:
                            with T.serial(0, n_blocks) as b:
                                group_block(g, b)
                    else:  # one task per (tree group, row block)
                        with T.parallel(0, self.n_groups * n_blocks) as gb:
                            group_block(gb // n_blocks, gb % n_blocks)
                    with T.parallel(0, n_blocks) as b:
                        with T.serial(0, B) as r:
                            row = b * B + r
                            with T.If(row < n):
                                with T.Then():
                                    def summed(k, row=row):
                                        s = part[row * K + k]
                                        for g in range(1, self.n_groups):
                                            s = s + part[(g * n + row) * K + k]
                                        return s
                                    self.finish_row(row, summed)
                else:
                    def block(b):
                        acc = T.alloc_buffer((K * B,), self.ad, scope="global")
                        self.alloc_block()
                        self.block_sums(b, "all", acc)
                        self.finish_block(b, acc)

                    self.row_blocks(n, B, self.opt.parallel == "rows", block)
        return ib.get()

"""``tree_lanes``: SIMD across trees, for single rows and small batches, as a TensorIR kernel.

What.  The row-lane kernels (``tiled_traversal``, ``quickscorer``) put rows in
the SIMD lanes; with one row to score they run scalar code, one dependent load
chain per tree.  Here the lanes hold trees: a vector of ``lanes`` trees walks
one row together, each lane following its own tree through the sparse layout
(``_tir_layout``: true child at ``child[s]``, false child next to it, leaves
looping on themselves; each node one 16- or 32-byte record), so every step is
a few gathers from one cache line per lane for ``lanes`` independent walks, and ``interleave`` vectors are in flight at once.  Trees
are ordered by depth and cut into runs walked to their own depth, each padded
to whole vectors with zero trees.  The row is held as ``[x, -x]``, so a node's
value is an in-register permute (``x_lookup="permute"``) or a gather.  With
``layout="perfect"`` trees are padded to the deepest (up to depth 12) and a lane
holds its node's position: children at ``2i+1`` and ``2i+2``, no child read.
``prefetch=k`` prefetches every cache line of the row ``k`` ahead as each row
starts: wide rows (epsilon's 2,000 features are 125 lines) otherwise pay a cache
miss on each line their walks first touch.  ``record="pair"`` packs a node's
feature and threshold into one 64-bit word: one 8-lane qword gather reads both,
where the 16-byte record takes two dword gathers (epsilon at 1,024 rows, 2
threads, perfect layout, 8 vectors in flight: 2.65 M rows/s against 2.0 M).

Exactness.  Every node is the predicate ``P = s * x[f] <= u`` of ``common.py``,
evaluated in the compare dtype like every other strategy (NaN fails, so it
takes the false child; special nodes through the tiled kernel's predicate).
Leaves are summed per lane in tree order within the lane and the lanes then
added in order: a float32 sum in another order than the reference's, within
its rounding.  Base score, aggregation and post-transform are the tiled
traversal's epilogue.

Where it pays.  Batches of one row to a few dozen, on forests whose tables
miss the cache: one core scores a row of the bench's 100-tree depth-16 forest
(15 MB of tables) in ~5.2 us through the Predictor, where the scalar sparse
walk takes 8 us and ONNX Runtime (2 threads) 7-9 us.  On small ensembles the
scalar walk is as fast; for large batches of narrow rows the row-lane kernels
win.  Wide rows (over 16 cache lines) at every batch size: a row-lane gather
from x touches one line of each of 16 rows, where a row's own walk reuses its
lines (the tiled kernel's x block, a copy of the block's rows feature-major,
competes there: on bosch it wins from 1,024 rows).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..base import Knob, Strategy, TirKernel, register
from ..ir import Op, TreeEnsemble
from ._lanes_kernel import LanesOptions, generate, lanes_buffers, permute_width
from ._tir_kernel import CACHE_LINE, Epilogue
from ._tir_layout import KernelTables, build_tables, pad_trees, perfect_nbytes
from .common import ensemble_reason, single_ensemble

MAX_PERMUTE_COLUMNS = 128  # [x, -x] entries an in-register lookup reads (4 permutes of 32 + selects)
MAX_ACC_BYTES = 1 << 20  # per-thread accumulators: n_outputs x lanes
MAX_PERFECT_DEPTH = 12
MAX_PERFECT_BYTES = 64 << 20  # perfect tables past this are refused (the sparse layout serves such forests)
WIDE_ROW_LINES = 16  # rows over this many cache lines are "wide": tree_lanes with prefetch serves every batch size


def wide_rows(op: TreeEnsemble) -> bool:
    """Whether a row spans more than ``WIDE_ROW_LINES`` cache lines: its first gathers would miss the cache."""
    itemsize = 8 if op.compare_dtype == "float64" else 4
    return op.n_features * itemsize > WIDE_ROW_LINES * CACHE_LINE


def can_permute(op: TreeEnsemble) -> bool:
    """Whether a node's value can come from in-register permutes of the row's ``[x, -x]``."""
    return op.compare_dtype == "float32" and 2 * op.n_features <= MAX_PERMUTE_COLUMNS


@register
class TreeLanes(Strategy):
    """Trees in the SIMD lanes: one row walks ``lanes`` trees per vector, for single rows and small batches."""

    name = "tree_lanes"
    default_batch = 1
    op_kind = "tree_ensemble"
    family = "tir"
    knobs = (
        Knob("lanes", (8, 16), 16, "trees walked together in SIMD lanes (8: AVX2 gathers; 16: AVX-512 gathers)"),
        Knob("interleave", (1, 2, 4, 8), 2, "vectors of trees walked at once (independent gathers in flight)"),
        Knob("x_lookup", ("permute", "gather"), "permute",
             "a node's value from the row's [x, -x]: in-register permutes (float32 compares, up to 64 features; "
             "else a gather) or a gather"),
        Knob("unroll", (True, False), True, "unroll each run's walk (its steps become straight-line code)"),
        Knob("rows_per_block", (16, 64, 256), 16, "rows per block: the unit of row parallelism"),
        Knob("parallel", ("rows", "none"), "rows", "loop run by TVM's thread pool: row blocks, or none"),
        Knob("layout", ("sparse", "perfect"), "sparse",
             "node records: sparse (any depth; each step reads the child slot) or perfect (trees padded to the "
             f"deepest, up to depth {MAX_PERFECT_DEPTH}; children at 2i+1 and 2i+2, no child read, a third of the "
             "sparse records for full trees)"),
        Knob("prefetch", (0, 1, 2, 4), 0,
             "rows ahead whose every cache line is prefetched as each row starts (wide rows: their first gathers "
             "would miss the cache); 0: none"),
        Knob("record", ("quad", "pair"), "quad",
             "node fields: quad (feature, threshold, child and special words in one 16-byte record, one dword "
             "gather each) or pair (feature and threshold in one 64-bit word: one 8-lane qword gather reads both; "
             "float32 compares, lanes=8, AVX-512)"),
    )

    @classmethod
    def unsupported_reason(cls, op: Op) -> str | None:
        return ensemble_reason(cls.name, op)

    @classmethod
    def invalid_reason(cls, op: Op, knobs: Mapping[str, Any]) -> str | None:
        reason = cls.unsupported_reason(op)
        if reason:
            return reason
        k = {**{kn.name: kn.default for kn in cls.knobs}, **knobs}
        width = 1 if op.tree_output is not None else op.n_outputs
        if max(op.n_outputs, width) * k["lanes"] * 8 > MAX_ACC_BYTES:
            return f"{op.n_outputs} outputs x {k['lanes']} lanes of accumulators exceed the scratch budget"
        if k["record"] == "pair":
            if op.compare_dtype != "float32":
                return (f"record='pair' packs a 32-bit threshold beside the feature (float32 compares); this ensemble "
                        f"compares in {op.compare_dtype}")
            if k["lanes"] != 8:
                return f"record='pair' reads 8 64-bit words per gather: lanes must be 8, got {k['lanes']}"
        if k["layout"] == "perfect":
            if op.max_depth > MAX_PERFECT_DEPTH:
                return f"layout='perfect' pads trees to their depth, at most {MAX_PERFECT_DEPTH}; this one has depth {op.max_depth}"
            if perfect_nbytes(op) > MAX_PERFECT_BYTES:
                return (f"layout='perfect' would take {perfect_nbytes(op) / 2**20:.0f} MB of tables "
                        f"(at most {MAX_PERFECT_BYTES >> 20} MB)")
        return None

    @classmethod
    def redundant_reason(cls, op: Op, knobs: Mapping[str, Any], threads: int) -> str | None:
        k = {**{kn.name: kn.default for kn in cls.knobs}, **knobs}
        if threads == 1 and k["parallel"] != "rows":
            return "with one thread the kernel has no parallel loop: every 'parallel' value builds the same code"
        if k["x_lookup"] == "permute" and not can_permute(op):
            return "x_lookup='permute' needs float32 compares and at most 64 features: it builds the gather's code"
        if k["prefetch"] and not wide_rows(op):
            return (f"prefetch is for rows over {WIDE_ROW_LINES} cache lines; the hardware prefetcher brings a "
                    f"{op.n_features}-feature row's lines, and the searched variants would only repeat prefetch 0")
        groups = -(-op.n_trees // k["lanes"])
        if k["interleave"] > 1 and k["interleave"] // 2 >= groups:
            return f"interleave {k['interleave']}: the {groups} vector(s) of {k['lanes']} trees fit a smaller interleave"
        return None

    @classmethod
    def suggestions(cls, op: Op, batch_size: int) -> list[dict[str, Any]]:
        if wide_rows(op):
            # row-lane gathers touch as many rows' lines as lanes; one row's walk reuses its own lines, and
            # prefetching the next row's lines hides the memory latency (epsilon, 2,000 features, 1,024 and
            # 10,000 rows from memory: 1.7-1.8x the walk without prefetch on one core)
            # (feature, threshold) pairs: one qword gather where the record takes two; epsilon at 1,024 rows,
            # 2 threads: 2.65 M rows/s, the quad record's best 2.0 M
            pair = {"record": "pair", "lanes": 8, "interleave": 8, "prefetch": 1}
            wanted = [{**pair, "layout": "perfect"}, pair, {"interleave": 4, "prefetch": 1},
                      {"layout": "perfect", "interleave": 4, "prefetch": 1}, {"interleave": 4, "prefetch": 2}]
            if batch_size > 1:
                wanted.append({"interleave": 4, "prefetch": 1, "rows_per_block": 64 if batch_size < 4096 else 256})
            if batch_size <= 64:
                wanted.append({"interleave": 4})
        elif batch_size > 64:  # the row-lane kernels serve large batches
            return []
        else:
            wanted = [{}, {"interleave": 4}, {"interleave": 8, "unroll": False}, {"interleave": 1}]
        if not can_permute(op):
            wanted = [{**k, "x_lookup": "gather"} for k in wanted]
        fine = [k for k in wanted if cls.invalid_reason(op, k) is None and cls.redundant_reason(op, k, 2) is None]
        return fine[:6] if wide_rows(op) else fine[:3]

    @classmethod
    def kernel(cls, op: TreeEnsemble, knobs: Mapping[str, Any], *, output: str, threads: int,
               simd: str) -> tuple[Any, KernelTables, dict[str, np.ndarray]]:
        """The PrimFunc, its tables and its weight arguments for ``op`` under ``knobs`` (resolved and validated here)."""
        from ..ground.errors import InvalidConfigError

        k = cls.resolve_knobs(knobs)
        reason = cls.invalid_reason(op, k)
        if reason:
            raise InvalidConfigError(f"strategy {cls.name!r}: {reason}")
        if output not in ("raw", "out"):
            raise InvalidConfigError(f"output must be 'raw' or 'out', got {output!r}")
        lanes = k["lanes"]
        if lanes == 16 and (simd != "avx512" or op.compare_dtype == "float64"):
            lanes = 8  # a 16-lane gather is two 8-lane ones (no AVX-512, or 64-bit records): same code, fewer registers
        permute = k["x_lookup"] == "permute" and can_permute(op)
        # qword gathers are AVX-512's: elsewhere the pair's gather would be 8 scalar loads, so the quad record serves
        record = k["record"] if simd == "avx512" else "quad"
        # a gather reads x itself (no per-row copy of [x, -x]: wide rows pay 2F stores per row for it)
        if k["layout"] == "perfect":
            tables = build_tables(pad_trees(op, lanes), "perfect", x_block=1 if permute else 0)
        else:
            tables = build_tables(op, "sparse", x_block=1 if permute else 0, multiple=lanes)
        opts = LanesOptions(lanes=lanes, interleave=k["interleave"], rows_per_block=k["rows_per_block"],
                            parallel=k["parallel"] if threads > 1 else "none", unroll=k["unroll"],
                            x_lookup="permute" if permute else "gather", simd=simd, prefetch=k["prefetch"],
                            record=record)
        buffers = lanes_buffers(tables, record)
        return generate(tables, opts, Epilogue.of(op, output), buffers), tables, buffers

    @classmethod
    def tir_kernel(cls, ops: Sequence[Op], knobs: Mapping[str, Any], *, output: str, threads: int,
                   simd: str) -> TirKernel:
        op = single_ensemble(cls.name, ops)
        func, tables, buffers = cls.kernel(op, knobs, output=output, threads=threads, simd=simd)
        k = cls.resolve_knobs(knobs)
        return TirKernel(
            func=func, buffers=buffers, input_dtype=str(tables.cdtype), output_dtype=str(tables.adtype),
            n_features=op.n_features, n_outputs=op.n_outputs, parallel=k["parallel"] if threads > 1 else "none",
            rows_per_block=k["rows_per_block"], row_span=max(op.n_features, op.n_outputs),
            summary=f"{op.n_trees} trees ({tables.n_trees} in whole vectors), depth {tables.depth}, "
                    f"{len(tables.segments)} run(s)",
        )


__all__ = ["TreeLanes", "permute_width"]

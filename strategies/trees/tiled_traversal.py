"""``tiled_traversal``: a native-loop TensorIR kernel in the style of the Treebeard compiler.

Rows are cut into blocks (the unit of tail handling and of row parallelism);
inside a block, ``vector_rows`` rows are walked together in SIMD lanes and
``interleave`` trees are walked at once, so several independent chains of
dependent loads are in flight.  Trees can be processed in groups
(``tree_group``) with the groups outside the row loop (``loop_order=
trees_outer``) so a group's nodes stay in L1/L2 while every row of the block
goes through them.  The walk is a fixed number of steps over the predicate form
of ``common.py`` (``P = s * x[f] <= u``; NaN fails every comparison), either on
perfect trees (children at ``2i+1`` / ``2i+2``, no child table; the top
``register_levels`` levels read by in-register permutes) on a sparse layout
with child indices for trees too deep to pad, or on a hybrid of the two (a
perfect top, sparse below).  With ``eager_levels`` every node of the top levels
is compared at once by plain vector loads.  With ``x_block`` each row block
is first copied feature-major as ``[x, -x]`` (on x86, one gather per feature
and vector of rows).  Comparisons run in the op's
compare dtype, sums in float32 (float64 for float64 models); code for special
nodes (categorical, zero-as-missing) is generated only when the ensemble has
them.  The output is the raw score or, fused, the post-transform.

Tables are passed as buffers, not embedded as constants: compile time then does
not grow with the model's size (the 100-tree depth-8 higgs kernel generates in
~0.1 s and compiles in 0.2-0.5 s) and six extra tensor arguments cost well
under a microsecond per call.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..base import Knob, Strategy, TirKernel, register
from ..ir import Op, TreeEnsemble
from ._tir_kernel import Epilogue, KernelOptions, generate
from ._tir_layout import KernelTables, build_tables, perfect_nbytes
from .common import ensemble_reason, single_ensemble

PERFECT_MAX_DEPTH = 12
PERFECT_MAX_BYTES = 64 << 20
# per-thread scratch per row block (TVM puts buffers over 1 KiB in its workspace pool, not on the stack)
MAX_ACC_BYTES = 4 << 20  # accumulators: rows_per_block x n_outputs
MAX_BLOCK_BYTES = 16 << 20  # the x block: rows_per_block x 2 n_features
GROUP_CACHE_BYTES = 1 << 20  # a tree group's tables should fit about half of a core's L2


def _table_bytes(op: TreeEnsemble) -> float:
    """Bytes of the kernel's tables for ``op`` (perfect when it fits that layout, else ~3 sparse slots per node)."""
    if op.max_depth <= PERFECT_MAX_DEPTH:
        return float(perfect_nbytes(op))
    width = 1 if op.tree_output is not None else op.n_outputs
    nodes = sum(t.n_nodes for t in op.trees)
    return float(3 * nodes * (12 + 4 * width))


@register
class TiledTraversal(Strategy):
    """Treebeard-style tiled tree walks, generated as TensorIR for the ``tvm-tir`` backend."""

    name = "tiled_traversal"
    preferred = True  # serves every ensemble (quickscorer only suits some)
    default_batch = 65536
    op_kind = "tree_ensemble"
    family = "tir"
    knobs = (
        Knob("layout", ("perfect", "sparse", "hybrid"), "perfect",
             "perfect: trees padded to full depth, children at 2i+1/2i+2; sparse: child indices (deep trees); "
             "hybrid: a perfect top of top_levels levels, sparse below (deep trees)"),
        Knob("top_levels", (4, 6, 8), 8, "hybrid layout: levels of each tree's perfect top"),
        Knob("rows_per_block", (16, 64, 256, 1024), 64,
             "rows per block: unit of row parallelism and of the trees_outer reuse tile"),
        Knob("vector_rows", (1, 8, 16), 8,
             "rows walked together in SIMD lanes (1: scalar code; 8: AVX2 gathers; 16: AVX-512 gathers)"),
        Knob("interleave", (1, 2, 4, 8), 4, "trees walked at once per row vector (independent walks in flight)"),
        Knob("tree_group", (0, 4, 8, 32), 0,
             "trees per group for trees_outer / parallel=trees (0: all trees in one group)"),
        Knob("loop_order", ("rows_outer", "trees_outer"), "rows_outer",
             "rows_outer: each row vector walks every tree; trees_outer: each tree group sees every row of the block"),
        Knob("parallel", ("rows", "trees", "both", "none"), "rows",
             "loop run by TVM's thread pool: row blocks, tree groups (partial sums added in group order), "
             "both (one task per tree group and row block), or none"),
        Knob("unroll", (True, False), True, "unroll the depth walk (levels become straight-line code)"),
        Knob("register_levels", (1, 6, 7, 8), 7,
             "perfect layout, unrolled, vector_rows > 1: top levels read by in-register permutes instead of gathers"),
        Knob("eager_levels", (0, 2, 3, 4, 5, 6), 0,
             "perfect layout with x_block, unrolled, vector_rows > 1: every node of the top levels compared with "
             "plain vector loads at once, their outcomes packed into bits (no gathers, no dependent loads there)"),
        Knob("x_block", (True, False), True,
             "copy each row block into a feature-major buffer [x, -x]: no sign arithmetic per step, "
             "the top two levels read it with plain vector loads"),
    )

    @classmethod
    def unsupported_reason(cls, op: Op) -> str | None:
        return ensemble_reason(cls.name, op)

    @classmethod
    def invalid_reason(cls, op: Op, knobs: Mapping[str, Any]) -> str | None:
        k = {**{kn.name: kn.default for kn in cls.knobs}, **knobs}
        if not isinstance(op, TreeEnsemble):
            return cls.unsupported_reason(op)
        if k["layout"] == "perfect":
            if op.max_depth > PERFECT_MAX_DEPTH:
                return f"perfect layout is limited to depth {PERFECT_MAX_DEPTH} (the ensemble has depth {op.max_depth}); use layout='sparse'"
            if perfect_nbytes(op) > PERFECT_MAX_BYTES:
                return f"perfect layout would take {perfect_nbytes(op) >> 20} MiB (limit {PERFECT_MAX_BYTES >> 20}); use layout='sparse'"
        if k["layout"] == "hybrid":
            if k["top_levels"] >= op.max_depth:
                return f"hybrid layout needs top_levels ({k['top_levels']}) below the depth ({op.max_depth}); use 'perfect'"
            if not k["unroll"]:
                return "hybrid layout needs unroll (the walk switches layouts at a fixed level)"
            if k["eager_levels"] > k["top_levels"]:
                return f"eager_levels {k['eager_levels']} exceeds the perfect top of {k['top_levels']} levels"
            if k["register_levels"] > k["top_levels"] and k["register_levels"] != cls._default("register_levels"):
                return f"register_levels {k['register_levels']} exceeds the perfect top of {k['top_levels']} levels"
        elif k["top_levels"] != cls._default("top_levels"):
            return "top_levels only applies to layout='hybrid'"
        if k["rows_per_block"] % k["vector_rows"]:
            return f"rows_per_block ({k['rows_per_block']}) must be a multiple of vector_rows ({k['vector_rows']})"
        if k["x_block"] and 2 * op.n_features * k["rows_per_block"] * 8 > MAX_BLOCK_BYTES:
            return f"x_block of {k['rows_per_block']} rows x {2 * op.n_features} columns exceeds the scratch budget"
        acc = k["rows_per_block"] * op.n_outputs * 8
        if acc > MAX_ACC_BYTES:
            return f"rows_per_block x n_outputs = {k['rows_per_block'] * op.n_outputs} accumulators exceed the scratch budget"
        # knobs that have no effect are only searched at their default (the default stays valid)
        uses_registers = k["layout"] in ("perfect", "hybrid") and k["unroll"] and k["vector_rows"] > 1
        if not uses_registers and k["register_levels"] != cls._default("register_levels"):
            return "register_levels only applies to the unrolled perfect layout with vector_rows > 1"
        if k["register_levels"] > max(op.max_depth, 1) and k["register_levels"] != cls._default("register_levels"):
            return f"register_levels {k['register_levels']} exceeds the ensemble's depth {op.max_depth}"
        if k["eager_levels"]:
            if not (k["layout"] in ("perfect", "hybrid") and k["x_block"] and k["unroll"] and k["vector_rows"] > 1):
                return "eager_levels needs layout='perfect' or 'hybrid', x_block, unroll and vector_rows > 1"
            if op.has_categorical or op.has_zero_missing:
                return "eager_levels compares numeric splits only (the ensemble has categorical or zero-as-missing splits)"
            if k["eager_levels"] > max(op.max_depth, 1):
                return f"eager_levels {k['eager_levels']} exceeds the ensemble's depth {op.max_depth}"
        grouped = k["tree_group"] != 0
        if grouped and k["tree_group"] >= op.n_trees:
            return f"tree_group {k['tree_group']} is not smaller than the {op.n_trees} trees"
        if k["loop_order"] == "rows_outer" and grouped:
            return "tree_group only matters with loop_order='trees_outer'"
        if k["loop_order"] == "trees_outer" and not grouped:
            return "loop_order='trees_outer' needs tree_group > 0"
        if k["parallel"] in ("trees", "both") and not grouped:
            return f"parallel={k['parallel']!r} needs tree_group > 0 (each group is one parallel task)"
        if k["interleave"] > op.n_trees and k["interleave"] != cls._default("interleave"):
            return f"interleave {k['interleave']} exceeds the {op.n_trees} trees"
        return None

    @classmethod
    def suggestions(cls, op: Op, batch_size: int) -> list[dict[str, Any]]:
        layouts = ("perfect", "sparse") if op.max_depth <= 10 else ("hybrid", "sparse")
        if batch_size < 8:  # a row or a few: scalar walks, no vector set-up per call
            wanted = [{"vector_rows": 1, "rows_per_block": 16, "interleave": 4}]
        else:
            # the default; long walks in flight; tree groups walked over all rows of a block (a group's
            # nodes stay in cache: what 8x longer searches found best at batch 1,024 on higgs and airline)
            # (16 lanes: AVX-512 gathers, 1.2-1.35x the default per core on higgs; the tuner measures it
            # elsewhere too, where it falls back to per-lane loads)
            # (eager top 3 levels: 1.04-1.06x vector_rows 16 alone on higgs and airline at 1,024 to 16,384 rows)
            wanted = [{"vector_rows": 16}, {"vector_rows": 16, "eager_levels": 3}, {},
                      {"interleave": 8, "rows_per_block": 256}, {"loop_order": "trees_outer", "tree_group": 8},
                      {"vector_rows": 16, "interleave": 8}]
            per_tree = _table_bytes(op) / max(op.n_trees, 1)
            if per_tree * op.n_trees > GROUP_CACHE_BYTES:
                # tables beyond the L2: tree groups that fit it, each seeing many rows (rf depth 16: 3.5-4.5x)
                group = max([g for g in (4, 8, 32) if g * per_tree <= GROUP_CACHE_BYTES and g < op.n_trees] or [4])
                wanted.insert(0, {"loop_order": "trees_outer", "tree_group": group, "vector_rows": 16,
                                  "rows_per_block": 1024 if batch_size >= 4096 else 256})
        out: list[dict[str, Any]] = []
        for knobs in wanted:
            valid = [k for k in ({"layout": lay, **knobs} for lay in layouts) if cls.invalid_reason(op, k) is None]
            if valid and valid[0] not in out:
                out.append(valid[0])
        return out[:4]

    @classmethod
    def redundant_reason(cls, op: Op, knobs: Mapping[str, Any], threads: int) -> str | None:
        if threads == 1 and knobs.get("parallel", cls._default("parallel")) != cls._default("parallel"):
            return "with one thread the kernel has no parallel loop: every 'parallel' value builds the same code"
        return None

    @classmethod
    def _default(cls, name: str) -> Any:
        return next(kn.default for kn in cls.knobs if kn.name == name)

    @classmethod
    def kernel(cls, op: TreeEnsemble, knobs: Mapping[str, Any], *, output: str, threads: int, simd: str):
        """The PrimFunc and its tables for ``op`` under ``knobs`` (resolved and validated here).

        ``output`` is "raw" or "out" (post-transform fused); ``threads`` == 1 drops
        the parallel loop; ``simd`` ("avx512", "avx2" or "generic") is what the
        target CPU offers.
        """
        from ..ground.errors import InvalidConfigError

        k = cls.resolve_knobs(knobs)
        reason = cls.unsupported_reason(op) or cls.invalid_reason(op, k)
        if reason:
            raise InvalidConfigError(f"strategy {cls.name!r}: {reason}")
        if output not in ("raw", "out"):
            raise InvalidConfigError(f"output must be 'raw' or 'out', got {output!r}")
        tables: KernelTables = build_tables(op, k["layout"], k["rows_per_block"] if k["x_block"] else 0,
                                            top_levels=k["top_levels"] if k["layout"] == "hybrid" else 0,
                                            multiple=k["interleave"] if k["unroll"] else 1)
        opts = KernelOptions(
            rows_per_block=k["rows_per_block"], vector_rows=k["vector_rows"], interleave=k["interleave"],
            tree_group=k["tree_group"], loop_order=k["loop_order"],
            parallel=k["parallel"] if threads > 1 else "none", unroll=k["unroll"],
            register_levels=k["register_levels"], simd=simd, eager_levels=k["eager_levels"],
        )
        return generate(tables, opts, Epilogue.of(op, output)), tables

    @classmethod
    def tir_kernel(cls, ops: Sequence[Op], knobs: Mapping[str, Any], *, output: str, threads: int,
                   simd: str) -> TirKernel:
        op = single_ensemble(cls.name, ops)
        func, tables = cls.kernel(op, knobs, output=output, threads=threads, simd=simd)
        k = cls.resolve_knobs(knobs)
        parallel = k["parallel"] if threads > 1 else "none"
        groups = tables.group_count(k["tree_group"]) if k["tree_group"] else 1
        return TirKernel(
            func=func, buffers=tables.buffers(), input_dtype=str(tables.cdtype), output_dtype=str(tables.adtype),
            n_features=op.n_features, n_outputs=op.n_outputs, parallel=parallel,
            rows_per_block=k["rows_per_block"],
            row_span=max(op.n_features, op.n_outputs * groups if parallel in ("trees", "both") else 0),
            summary=f"{op.n_trees} trees, depth {tables.depth}",
        )

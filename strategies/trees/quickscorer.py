"""``quickscorer``: QuickScorer / V-QuickScorer (Lucchese et al., SIGIR 2015 / 2016) as a TensorIR kernel.

What.  Instead of walking each tree, QuickScorer visits the nodes feature by
feature.  At build time every numeric node ``P = s * x[f] <= u`` (the predicate
form of ``common.py``) is put in the list of its *column* (``f`` for ``s = +1``,
``F + f`` for ``s = -1``, the kernel comparing ``-x`` there), each list sorted by
``u``.  Every tree keeps a mask of one bit per leaf, leaves ranked left to right
with the true child on the left.  Per row, each column's list is scanned from
the smallest threshold while ``P`` is false; every such node ANDs its
bitvector (zeros over the leaves of its true subtree, which the row can no
longer reach) into its tree's mask; a tree's exit leaf is the lowest set bit of
its mask, and the leaf values are summed.  V-QuickScorer runs ``vector_rows``
rows in SIMD lanes: a column is scanned while any lane's predicate is false
(its *key*, the lanes' largest value, fails), and each lane ANDs only where its
own predicate is false.  Trees are processed in blocks (``tree_block``) whose
tables stay in cache while every row of a row block goes through them.
Categorical and zero-as-missing nodes are evaluated one by one per row
(``_tir_kernel``'s predicate) and AND their bitvector where false.

Exactness.  A node's predicate is evaluated in the compare dtype exactly as
every other strategy does (``not (v <= u)``; NaN fails every comparison, so a
NaN row scans its column's whole list and takes every false branch).  The scan
visits exactly the nodes that are false for some lane: ``u`` ascends, so for a
non-NaN value ``v`` the false nodes (``u < v``) form a prefix of the list; the
key is at least every lane's value and NaN if any lane is NaN, so the scan's
prefix contains each lane's, and each lane ANDs only its own false nodes.
QuickScorer's theorem then gives the exit leaf: the leaves eliminated are
exactly those under a false node's true child; a node whose true subtree holds
the exit leaf is on the row's path and was true there, so the exit leaf is
never eliminated; every leaf left of it in the ranking sits in the true subtree
of its lowest common ancestor with the exit leaf, where the row went to the
false child, so it is eliminated: the lowest set bit is the exit leaf.  Sums
run in float32 (float64 for float64 models); base scores and post-transforms
are the tiled traversal's epilogue.

Limits.  A mask holds one bit per leaf: trees of up to ``MAX_LEAVES`` leaves
(``ceil(leaves / word_bits)`` words per tree); larger trees are refused with a
reason (``tiled_traversal`` serves them).  The work per row grows with the
number of false nodes (about half of all nodes), so QuickScorer suits many
small trees and loses to tree walks on deep, full ones.

Speed (2 threads, AVX-512, batches of 1,024 and 65,536 rows, the best of the
knobs tried against ``tiled_traversal``'s defaults in the same run):
LightGBM 500 trees x 31 leaves (depth 19, which ``tiled_traversal`` walks in
its sparse layout) 8-14x; scikit-learn GBC 200 x depth 5 1.2x; XGBoost
1,000 x depth 3 1.3-1.4x; higgs XGBoost 100 x depth 8 0.35-0.4x.  Wide row
vectors (128 lanes, several SIMD registers), tree blocks of 16-64 trees and
16-bit mask words did best.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..base import Knob, Strategy, TirKernel, register
from ..ir import Op, TreeEnsemble
from ._qs_kernel import QsOptions, generate
from ._qs_layout import QsTables, build_qs_tables, mask_words, max_leaves, table_nbytes
from ._tir_kernel import Epilogue
from .common import ensemble_reason, single_ensemble

MAX_LEAVES = 1024
MAX_TABLE_BYTES = 64 << 20  # the bitvector table
# per-thread scratch per row block (TVM puts buffers over 1 KiB in its workspace pool)
MAX_MASK_BYTES = 16 << 20  # masks: trees per block x words x lanes
MAX_BLOCK_BYTES = 16 << 20  # the x block: rows_per_block x 2 n_features
MAX_ACC_BYTES = 4 << 20  # accumulators: rows_per_block x n_outputs


@register
class QuickScorer(Strategy):
    """QuickScorer's feature-wise scan with leaf bitvectors, generated as TensorIR for the ``tvm-tir`` backend."""

    name = "quickscorer"
    default_batch = 65536
    op_kind = "tree_ensemble"
    family = "tir"
    # QuickScorer ANDs a bitvector of ~leaves bits for about half the internal nodes: work grows with
    # internal nodes x leaves per tree, as Hummingbird's GEMM formulation does
    work_estimate = ("an.gemm_macs", "an.model_bytes")
    knobs = (
        Knob("rows_per_block", (16, 64, 256), 256,
             "rows per block: unit of row parallelism; every tree block's tables are reused over its rows"),
        Knob("vector_rows", (1, 8, 16, 32, 64, 128), 64,
             "rows scored together in SIMD lanes (V-QuickScorer; past one vector the loop overhead per node "
             "is shared by more rows); 1: scalar QuickScorer"),
        Knob("tree_block", (0, 16, 64), 0,
             "trees per block (their node lists and masks stay in cache); 0: all trees in one block"),
        Knob("word_bits", (16, 32, 64), 32, "bits per mask word (a tree's mask is ceil(leaves / word_bits) words)"),
        Knob("node_words", ("span", "all"), "span",
             "multi-word masks: a false node ANDs only the words over its true subtree (a short loop; "
             "small tables) or all the tree's words (straight-line code)"),
        Knob("parallel", ("rows", "none"), "rows", "loop run by TVM's thread pool: row blocks, or none"),
    )

    @classmethod
    def unsupported_reason(cls, op: Op) -> str | None:
        reason = ensemble_reason(cls.name, op)
        if reason:
            return reason
        if max_leaves(op) > MAX_LEAVES:
            return (f"quickscorer keeps one mask bit per leaf, for trees of at most {MAX_LEAVES} leaves; "
                    f"this ensemble has a tree of {max_leaves(op)} leaves (tiled_traversal serves it)")
        return None

    @classmethod
    def invalid_reason(cls, op: Op, knobs: Mapping[str, Any]) -> str | None:
        reason = cls.unsupported_reason(op)
        if reason:
            return reason
        k = {**{kn.name: kn.default for kn in cls.knobs}, **knobs}
        V, B, bits = k["vector_rows"], k["rows_per_block"], k["word_bits"]
        if B % V:
            return f"rows_per_block ({B}) must be a multiple of vector_rows ({V})"
        if k["tree_block"] and k["tree_block"] >= op.n_trees:
            return f"tree_block {k['tree_block']} is not smaller than the {op.n_trees} trees (use 0: one block)"
        trees = k["tree_block"] or op.n_trees
        masks = trees * mask_words(op, bits) * V * bits // 8
        if masks > MAX_MASK_BYTES:
            return (f"masks of {trees} trees x {mask_words(op, bits)} words x {V} lanes take {masks >> 10} KiB "
                    f"(limit {MAX_MASK_BYTES >> 10} KiB); use a smaller tree_block")
        if k["node_words"] != "span" and mask_words(op, bits) == 1:
            return "node_words only matters with multi-word masks (every tree here fits one word)"
        if table_nbytes(op, bits) > MAX_TABLE_BYTES:
            return (f"the bitvector table would take {table_nbytes(op, bits) >> 20} MiB "
                    f"(limit {MAX_TABLE_BYTES >> 20} MiB); the trees have too many leaves for quickscorer")
        if 2 * op.n_features * B * 8 > MAX_BLOCK_BYTES:
            return f"the x block of {B} rows x {2 * op.n_features} columns exceeds the scratch budget"
        if B * op.n_outputs * 8 > MAX_ACC_BYTES:
            return f"rows_per_block x n_outputs = {B * op.n_outputs} accumulators exceed the scratch budget"
        return None

    @classmethod
    def redundant_reason(cls, op: Op, knobs: Mapping[str, Any], threads: int) -> str | None:
        if threads == 1 and knobs.get("parallel", "rows") != "rows":
            return "with one thread the kernel has no parallel loop: every 'parallel' value builds the same code"
        return None

    @classmethod
    def suggestions(cls, op: Op, batch_size: int) -> list[dict[str, Any]]:
        if batch_size < 8:  # a row or a few: scalar scans, no lanes wasted on missing rows
            wanted = [{"vector_rows": 1, "rows_per_block": 16}, {"vector_rows": 8, "rows_per_block": 16}]
        else:
            # wide row vectors (the scan's loop overhead per node shared by 64-128 rows) and tree blocks
            # whose node lists stay in the L1/L2 while every row of the block goes through them did best
            # on every model tried at batch 1,024 (higgs, LightGBM 500 x 31 leaves, GBC depth 5, XGBoost
            # 1,000 x depth 3: 1.3-2.5x over 16 lanes and one block)
            # 16-bit mask words: half the mask traffic per node (+5-18% on three of the four)
            wide = {"vector_rows": 128, "tree_block": 16}
            wanted = [wide, {**wide, "word_bits": 16}, {"tree_block": 64}, {"tree_block": 16}, {}]
        return [k for k in wanted if cls.invalid_reason(op, k) is None][:3]

    @classmethod
    def kernel(cls, op: TreeEnsemble, knobs: Mapping[str, Any], *, output: str, threads: int,
               simd: str) -> tuple[Any, QsTables]:
        """The PrimFunc and its tables for ``op`` under ``knobs`` (resolved and validated here)."""
        from ..ground.errors import InvalidConfigError

        k = cls.resolve_knobs(knobs)
        reason = cls.invalid_reason(op, k)
        if reason:
            raise InvalidConfigError(f"strategy {cls.name!r}: {reason}")
        if output not in ("raw", "out"):
            raise InvalidConfigError(f"output must be 'raw' or 'out', got {output!r}")
        spans = k["node_words"] == "span" and mask_words(op, k["word_bits"]) > 1
        tables = build_qs_tables(op, k["word_bits"], k["tree_block"], spans=spans)
        opts = QsOptions(rows_per_block=k["rows_per_block"], vector_rows=k["vector_rows"],
                         parallel=k["parallel"] if threads > 1 else "none", simd=simd)
        return generate(tables, opts, Epilogue.of(op, output)), tables

    @classmethod
    def tir_kernel(cls, ops: Sequence[Op], knobs: Mapping[str, Any], *, output: str, threads: int,
                   simd: str) -> TirKernel:
        op = single_ensemble(cls.name, ops)
        func, tables = cls.kernel(op, knobs, output=output, threads=threads, simd=simd)
        k = cls.resolve_knobs(knobs)
        return TirKernel(
            func=func, buffers=tables.buffers(), input_dtype=str(tables.cdtype), output_dtype=str(tables.adtype),
            n_features=op.n_features, n_outputs=op.n_outputs, parallel=k["parallel"] if threads > 1 else "none",
            rows_per_block=k["rows_per_block"], row_span=max(op.n_features, op.n_outputs),
            summary=f"{op.n_trees} trees, {max_leaves(op)} leaves at most, {tables.words} x {tables.word_bits}-bit "
                    f"mask words, {tables.n_blocks} tree block(s)",
        )

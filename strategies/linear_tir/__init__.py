"""``fused_linear``: numeric preprocessing + linear model + post-transform in one TensorIR kernel.

The task is a chain ``[imputer | scaler | normalizer]* -> linear`` (the ops the
model's pipeline applies before its linear model, e.g. StandardScaler +
LogisticRegression) and the kernel computes all of it in one pass over each
row block: ``vector_rows`` rows sit in SIMD lanes; for every input column of
the linear model the kernel loads that column of those rows, applies the
preprocessing steps to it (NaN / marker imputation, ``(x - offset) / scale``
or ``x * scale + offset``, division by the row's norm, computed first), and
adds it times each output's weight into one accumulator vector per output; the
epilogue adds the intercepts and applies the post-transform (sigmoid, softmax,
one-vs-rest normalisation, ...) across the lanes, and the rows are stored.  No
intermediate matrix is written.

Row blocks (``rows_per_block``) are the unit of row parallelism; a call with
at most one block runs no parallel launch, and a batch smaller than a vector
runs the scalar code.  A last partial vector is shifted back to end at the
last row (recomputing a few rows, each giving the same result), so every
vector is full and its ``n_outputs x vector_rows`` results are stored as one
interleaved vector store.

Exactness: ``dtype=float64`` computes every step in float64 as scikit-learn
does (divisions stay divisions; only the summation order differs);
``float32`` rounds the input and the weights to float32 (within 1e-5 relative,
as the ``matmul`` strategy's float32), and is not offered when an imputer
compares with a non-NaN marker (equality is not preserved by rounding).
``fold_scaler`` folds the scaler that feeds the linear model into its weights,
as ``matmul``'s knob of that name.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..base import Knob, Strategy, TirKernel, register
from ..ground.errors import InvalidConfigError
from ..ir import Graph, Imputer, Linear, Op, Scaler, as_graph
from ._kernel import MAX_UNROLLED, KernelGen

PREPROCESSING = ("imputer", "scaler", "normalizer")


@register
class FusedLinear(Strategy):
    """Preprocessing chain + ``X @ W + b`` + post-transform as one TensorIR kernel for ``tvm-tir``."""

    name = "fused_linear"
    op_kind = "linear"
    family = "tir"
    fuses = PREPROCESSING
    default_batch = 65536
    knobs = (
        Knob("dtype", ("float64", "float32"), "float64",
             "precision: float64 as scikit-learn computes; float32 within 1e-5 relative, half the bytes"),
        Knob("fold_scaler", (False, True), False, "fold the Scaler feeding the linear model into W and b"),
        Knob("vector_rows", (1, 4, 8, 16), 8, "rows computed together in SIMD lanes (1: scalar code)"),
        Knob("rows_per_block", (16, 64, 256, 1024), 256,
             "rows per block: the unit of row parallelism (a batch of one block runs serially)"),
        Knob("parallel", ("rows", "none"), "rows", "row blocks run by TVM's thread pool, or one serial loop"),
        Knob("unroll", (True, False), True,
             f"unroll the loops over columns (straight-line code; loops of more than {MAX_UNROLLED} stay loops)"),
    )

    @classmethod
    def unsupported_reason(cls, op: Op) -> str | None:
        if not isinstance(op, Linear):
            return f"fused_linear computes linear models, not {op.kind}"
        if op.post_transform.kind == "modified_huber":
            return "fused_linear has no rule for the modified_huber post-transform"
        return None

    @classmethod
    def invalid_reason(cls, op: Op, knobs: Mapping[str, Any]) -> str | None:
        k = {**cls._defaults(), **knobs}
        if not isinstance(op, Linear):
            return cls.unsupported_reason(op)
        if k["rows_per_block"] % k["vector_rows"]:
            return f"rows_per_block ({k['rows_per_block']}) must be a multiple of vector_rows ({k['vector_rows']})"
        return None

    @classmethod
    def task_reason(cls, graph: Graph, knobs: Mapping[str, Any] | None = None) -> str | None:
        reason = super().task_reason(graph, knobs)
        if reason or knobs is None:
            return reason
        k = {**cls._defaults(), **knobs}
        ops = graph.ops
        if k["fold_scaler"] and not (len(ops) > 1 and isinstance(ops[-2], Scaler)):
            return "fold_scaler: no Scaler feeds the linear model (the same program as fold_scaler=False)"
        return cls._inexact_reason(graph, k)

    @classmethod
    def _inexact_reason(cls, graph: Graph, knobs: Mapping[str, Any]) -> str | None:
        if knobs["dtype"] == "float32" and any(
            isinstance(op, Imputer) and not np.isnan(op.markers()).all() for op in graph.ops
        ):
            return "float32: an imputer compares with a non-NaN marker, which rounding to float32 would change"
        return None

    @classmethod
    def redundant_reason(cls, op: Op, knobs: Mapping[str, Any], threads: int) -> str | None:
        k = {**cls._defaults(), **knobs}
        serial = threads == 1 or k["parallel"] == "none"
        if threads == 1 and k["parallel"] != "rows":
            return "with one thread the kernel has no parallel loop: every 'parallel' value builds the same code"
        if serial and k["rows_per_block"] != cls._defaults()["rows_per_block"]:
            return "without a parallel loop the rows per block change nothing"
        if not k["unroll"] and isinstance(op, Linear) and op.coef.shape[1] > MAX_UNROLLED:
            return f"more than {MAX_UNROLLED} input columns are never unrolled: unroll=False builds the same code"
        return None

    @classmethod
    def suggestions(cls, op: Op, batch_size: int) -> list[dict[str, Any]]:
        if batch_size < 8:
            wanted = [{"vector_rows": 1, "fold_scaler": True}, {"vector_rows": 1}, {"vector_rows": 4}]
        else:
            wanted = [{"fold_scaler": True}, {"dtype": "float32", "fold_scaler": True}, {},
                      {"dtype": "float32"}]
        return wanted

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {kn.name: kn.default for kn in cls.knobs}

    @classmethod
    def tir_kernel(cls, ops: Sequence[Op], knobs: Mapping[str, Any], *, output: str, threads: int,
                   simd: str) -> TirKernel:
        graph = as_graph(ops)
        k = cls.resolve_knobs(knobs)
        main = graph.ops[-1]
        reason = (cls.task_reason(graph) or cls.unsupported_reason(main) or cls.invalid_reason(main, k)
                  or cls._inexact_reason(graph, k))
        if reason:
            raise InvalidConfigError(f"strategy {cls.name!r}: {reason}")
        if output not in ("raw", "out"):
            raise InvalidConfigError(f"output must be 'raw' or 'out', got {output!r}")
        steps, lin = split_chain(graph.ops, fold=k["fold_scaler"])
        parallel = k["parallel"] if threads > 1 else "none"
        gen = KernelGen(steps, lin, k, parallel=parallel, post=lin.post_transform if output == "out" else None)
        func = gen.build()
        return TirKernel(
            func=func, buffers=gen.buffers, input_dtype=k["dtype"], output_dtype=k["dtype"],
            n_features=graph.n_features, n_outputs=lin.coef.shape[0], parallel=parallel,
            rows_per_block=k["rows_per_block"], row_span=max(graph.n_features, lin.coef.shape[0]),
            summary=f"{' -> '.join(op.kind for op in graph.ops)}: {lin.coef.shape[1]} -> {lin.coef.shape[0]}",
        )


def split_chain(ops: Sequence[Op], fold: bool) -> tuple[list[Op], Linear]:
    """The preprocessing steps and the linear model of a task chain; with ``fold``, the Scalers right
    before the linear model folded into its weights (``y = x * a + b``: ``W' = W a``, ``b' = b + W b``)."""
    *steps, lin = ops
    assert isinstance(lin, Linear)
    while fold and steps and isinstance(steps[-1], Scaler):
        a, b = steps.pop().affine()
        lin = Linear(coef=lin.coef * a[None, :], intercept=lin.intercept + lin.coef @ b,
                     post_transform=lin.post_transform)
    return steps, lin

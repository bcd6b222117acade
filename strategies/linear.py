"""Linear models as one matmul + bias, with the scaler-folding fusion as a knob."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .base import Knob, Strategy, register
from .ir import Graph, Linear, Node, Op, Scaler, prune
from .ir.columns import Concat
from .torch_ops import TORCH_DTYPES


class LinearModule(nn.Module):
    def __init__(self, op: Linear, dtype: str):
        super().__init__()
        self.dtype = TORCH_DTYPES[dtype]
        self.register_buffer("weight", torch.from_numpy(np.array(op.coef.T, order="C")).to(self.dtype))
        self.register_buffer("bias", torch.from_numpy(op.intercept.copy()).to(self.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x.to(self.dtype), self.weight) + self.bias


@register
class Matmul(Strategy):
    """``X @ W + b``.

    Knobs: ``dtype`` (float64 as scikit-learn computes, or float32: within 1e-5
    relative but twice the SIMD width) and ``fold_scaler`` (fold an immediately
    preceding Scaler into the weights: one pass over the input instead of two).
    """

    name = "matmul"
    op_kind = "linear"
    family = "torch"
    knobs = (
        Knob("dtype", ("float64", "float32"), "float64", "precision of the matmul"),
        Knob("fold_scaler", (False, True), False, "fold a preceding Scaler into W and b"),
    )

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return LinearModule(op, knobs["dtype"])  # type: ignore[arg-type]


def fold_scalers(graph: Graph, main: int) -> tuple[Graph, int]:
    """Fold the Scalers feeding ``graph.nodes[main]`` (a Linear) into its weights.

    A Scaler folds when the Linear reads it directly, or reads a ``concat`` of
    which it is one part, and nothing else reads it.  Returns the new graph and
    the Linear's new index (the graph is returned as it is when nothing folds).
    """
    nodes = list(graph.nodes)
    lin = nodes[main].op
    if not isinstance(lin, Linear):
        return graph, main
    readers = graph.consumers()

    def foldable(v: int) -> bool:
        return v >= 0 and isinstance(nodes[v].op, Scaler) and len(readers[v]) == 1

    (src,) = nodes[main].inputs
    coef, intercept = lin.coef.copy(), lin.intercept.copy()
    dead: set[int] = set()
    if foldable(src):
        a, b = nodes[src].op.affine()
        intercept = intercept + coef @ b
        coef = coef * a[None, :]
        new_src = nodes[src].inputs[0]
        dead.add(src)
    elif src >= 0 and isinstance(nodes[src].op, Concat) and len(readers[src]) == 1:
        parts = list(nodes[src].inputs)
        offset = 0
        for j, (v, w) in enumerate(zip(parts, nodes[src].op.widths)):
            if foldable(v):
                a, b = nodes[v].op.affine()
                block = coef[:, offset : offset + w]
                intercept = intercept + block @ b
                coef[:, offset : offset + w] = block * a[None, :]
                parts[j] = nodes[v].inputs[0]
                dead.add(v)
            offset += w
        if not dead:
            return graph, main
        nodes[src] = Node(nodes[src].op, tuple(parts))
        new_src = src
    else:
        return graph, main
    nodes[main] = Node(Linear(coef=coef, intercept=intercept, post_transform=lin.post_transform), (new_src,))
    return prune(Graph(graph.n_features, tuple(nodes)), dead, main)


def has_foldable_scaler(graph: Graph, main: int) -> bool:
    folded, _ = fold_scalers(graph, main)
    return folded is not graph

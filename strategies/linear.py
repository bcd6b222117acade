"""Linear models as one matmul + bias, with the scaler-folding fusion as a knob."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .base import Knob, Strategy, register
from .ir import Linear, Op, Scaler
from .torch_ops import TORCH_DTYPES


class LinearModule(nn.Module):
    def __init__(self, op: Linear, dtype: str):
        super().__init__()
        self.dtype = TORCH_DTYPES[dtype]
        self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(op.coef.T)).to(self.dtype))
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


def fold_scalers(ops: Sequence[Op], main: int) -> tuple[tuple[Op, ...], int]:
    """Fold the Scaler right before ``ops[main]`` (a Linear) into it; returns the new chain and index."""
    ops = tuple(ops)
    if main == 0 or not isinstance(ops[main - 1], Scaler) or not isinstance(ops[main], Linear):
        return ops, main
    scaler, lin = ops[main - 1], ops[main]
    a, b = scaler.affine()
    folded = Linear(coef=lin.coef * a[None, :], intercept=lin.intercept + lin.coef @ b, post_transform=lin.post_transform)
    return ops[: main - 1] + (folded,) + ops[main + 1 :], main - 1

"""Meta-estimator operators (``strategies.ir.ensembles``) as torch modules (float64).

* ``activation``: ``fused`` (torch's own sigmoid / softmax kernels) or ``explicit`` (the formula
  spelled out, ``1 / (1 + exp(-x))`` and ``exp(x - max) / sum``: fuses into the neighbouring code).
* ``label``: the label index by ``argmax`` / a comparison, then its row of the label table by a
  ``gather`` (``index_select``), or by a ``onehot`` match times the table (a matrix product).
* ``average``: ``sequential`` adds the members one by one in their order, as scikit-learn does (exact to
  its rounding); ``gemm`` concatenates them and multiplies by one placement matrix (one kernel; the sum
  runs in the matmul's order, and an infinite member output becomes NaN where it meets a zero weight).

Only operators that ``torch.export`` -> TVM Relax imports are used (argmax, comparisons, ``where``,
``index_select``, matmul, ``cat``); constants are buffers (TVM cannot legalize ``full``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .base import Knob, Strategy, register
from .ir import Op
from .ir.ensembles import Activation, Average, Label
from .torch_ops import PostTransformModule


class ActivationModule(nn.Module):
    def __init__(self, op: Activation, explicit: bool):
        super().__init__()
        pt = op.transform
        self.kind, self.param, self.pair = pt.kind, pt.param, op.pair
        self.explicit = explicit and pt.kind in ("sigmoid", "softmax")
        self.fused = PostTransformModule(pt)
        self.register_buffer("one", torch.ones((), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        if not self.explicit:
            y = self.fused(x)
        elif self.kind == "sigmoid":
            y = self.one / (self.one + torch.exp(-(x * self.param)))
        else:
            e = torch.exp(x - x.max(dim=1, keepdim=True).values)
            y = e / e.sum(dim=1, keepdim=True)
        return torch.cat([self.one - y, y], dim=1) if self.pair else y


class LabelModule(nn.Module):
    def __init__(self, op: Label, onehot: bool):
        super().__init__()
        self.rule, self.multi, self.onehot = op.rule, op.n_features > 1, onehot
        self.register_buffer("table", torch.from_numpy(op.table()))
        self.register_buffer("labels", torch.arange(op.n_labels, dtype=torch.int64))
        self.register_buffer("one", torch.ones((), dtype=torch.float64))
        self.register_buffer("one_half", torch.full((), 0.5, dtype=torch.float64))
        self.register_buffer("zero", torch.zeros((), dtype=torch.float64))

    def index(self, x: torch.Tensor) -> torch.Tensor:
        if self.multi:
            return torch.argmax(x, dim=1)
        v = x[:, 0]
        if self.rule == "gt0":
            hit = v > self.zero
        elif self.rule == "ge0":
            hit = v >= self.zero
        elif self.rule == "gt_half":
            hit = v > self.one_half
        else:
            hit = v > self.one - v  # arg-max of [1 - v, v]: the first on a tie
        return hit.to(torch.int64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        j = self.index(x.to(torch.float64))
        if self.onehot:
            return (j.unsqueeze(1) == self.labels).to(torch.float64) @ self.table
        return self.table.index_select(0, j)


class AverageSequential(nn.Module):
    """Each input placed into the output columns (a gather from it and a zero column) and added in order."""

    def __init__(self, op: Average):
        super().__init__()
        self.n, self.divisor = len(op.widths), op.divisor
        self.identity = []
        for i, (w, t) in enumerate(zip(op.widths, op.parts())):
            src = np.full(op.n_outputs, w, dtype=np.int64)  # column w: the appended zero
            src[t] = np.arange(w)
            self.identity.append(bool(w == op.n_outputs and np.array_equal(src, np.arange(w))))
            self.register_buffer(f"src{i}", torch.from_numpy(src))
        self.register_buffer("weights", torch.from_numpy(op.weights.copy()))
        self.register_buffer("zero", torch.zeros((1, 1), dtype=torch.float64))
        self.register_buffer("div", torch.full((), op.divisor, dtype=torch.float64))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        acc = None
        for i, x in enumerate(xs):
            x = x.to(torch.float64)
            if not self.identity[i]:
                x = torch.cat([x, self.zero.expand(x.shape[0], 1)], dim=1).index_select(1, getattr(self, f"src{i}"))
            term = x * self.weights[i]
            acc = term if acc is None else acc + term
        return acc / self.div


class AverageGemm(nn.Module):
    """All inputs side by side times one placement matrix (weights in it), then the division."""

    def __init__(self, op: Average):
        super().__init__()
        W = np.zeros((sum(op.widths), op.n_outputs))
        rows = np.arange(W.shape[0])
        W[rows, op.targets] = np.repeat(op.weights, op.widths)
        self.register_buffer("W", torch.from_numpy(W))
        self.register_buffer("div", torch.full((), op.divisor, dtype=torch.float64))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        x = torch.cat([v.to(torch.float64) for v in xs], dim=1)
        return torch.matmul(x, self.W) / self.div


@register
class MemberActivation(Strategy):
    """A member's post-transform mid-graph (``activation``): ``fused`` torch kernels or the ``explicit`` formula."""

    name = "member_activation"
    op_kind = "activation"
    family = "torch"
    preferred = True
    knobs = (Knob("method", ("fused", "explicit"), "fused",
                  "fused: torch.sigmoid / softmax; explicit: the formula in elementwise ops"),)

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return ActivationModule(op, knobs.get("method") == "explicit")  # type: ignore[arg-type]


@register
class MemberLabel(Strategy):
    """A member classifier's label (``label``): its table row by ``gather`` or by a ``onehot`` matmul."""

    name = "member_label"
    op_kind = "label"
    family = "torch"
    preferred = True
    knobs = (Knob("method", ("gather", "onehot"), "gather",
                  "gather: index_select of the label's row; onehot: label match matrix times the table"),)

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return LabelModule(op, knobs.get("method") == "onehot")  # type: ignore[arg-type]


@register
class MemberAverage(Strategy):
    """Members combined (``average``): ``sequential`` adds in member order (scikit-learn's rounding),
    ``gemm`` is one concatenation and matrix product."""

    name = "member_average"
    op_kind = "average"
    family = "torch"
    preferred = True
    knobs = (Knob("method", ("sequential", "gemm"), "sequential",
                  "sequential: one weighted add per member, in order; gemm: concat x placement matrix"),)

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        if knobs.get("method") == "gemm":
            return AverageGemm(op)  # type: ignore[arg-type]
        return AverageSequential(op)  # type: ignore[arg-type]

"""Multi-layer perceptrons (``strategies.ir.mlp``) as torch modules (float64).

* ``mlp_fused``: one module running every layer as a GEMM and its activation.  Its ``bias`` knob:
  ``add`` (GEMM, then the bias added) or ``augmented`` (the bias folded into the GEMM as one more
  weight row read against a column of ones: one kernel per layer instead of two, one more column
  copied in).
* ``mlp_layers``: one module per layer and per activation (GEMM + bias add in the layer's module);
  the graph a compiler sees is the same, eager torch dispatches it differently.

Both have the ``layout`` knob: weights stored ``(in, out)`` (``x @ W``, scikit-learn's layout) or
``(out, in)`` (``x @ W.T``, torch's ``Linear`` layout): the GEMM reads them in a different order.
Only ops that ``torch.export`` -> TVM Relax imports in float64 are used: ``matmul``, ``+``, ``cat``,
``expand``, ``relu``, ``tanh``, ``sigmoid`` (TVM 0.27 imports ``addmm`` and ``linear`` with a float32
result, so they are not used).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from .base import Knob, Strategy, register
from .ir import Op
from .ir.mlp import MLP

LAYOUTS = ("kn", "nk")


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": _identity, "logistic": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
}


def _weight(w: np.ndarray, layout: str) -> torch.Tensor:
    return torch.from_numpy(np.array(w if layout == "kn" else w.T, dtype=np.float64, order="C"))


class MLPFusedModule(nn.Module):
    """Every layer: ``a @ W + b`` (``bias="add"``) or ``[a, 1] @ [W; b]`` (``"augmented"``), then the
    activation."""

    def __init__(self, op: MLP, layout: str, bias: str):
        super().__init__()
        self.layout = layout
        self.augmented = bias == "augmented"
        self.n_layers = op.n_layers
        self.act = ACTIVATIONS[op.activation]
        for i, (w, b) in enumerate(zip(op.weights, op.biases)):
            if self.augmented:
                self.register_buffer(f"w{i}", _weight(np.vstack([w, b[None, :]]), layout))
            else:
                self.register_buffer(f"w{i}", _weight(w, layout))
                self.register_buffer(f"b{i}", torch.from_numpy(b.copy()))
        self.register_buffer("one", torch.ones((1, 1), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x.to(torch.float64)
        for i in range(self.n_layers):
            w = getattr(self, f"w{i}")
            if self.augmented:
                a = torch.cat([a, self.one.expand(a.shape[0], 1)], dim=1)
            a = torch.matmul(a, w) if self.layout == "kn" else torch.matmul(a, w.t())
            if not self.augmented:
                a = a + getattr(self, f"b{i}")
            if i < self.n_layers - 1:
                a = self.act(a)
        return a


class Dense(nn.Module):
    """``a @ W`` (or ``a @ W.T`` stored ``(out, in)``), then ``+ b``: two ops."""

    def __init__(self, w: np.ndarray, b: np.ndarray, layout: str):
        super().__init__()
        self.layout = layout
        self.register_buffer("weight", _weight(w, layout))
        self.register_buffer("bias", torch.from_numpy(b.copy()))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        y = torch.matmul(a, self.weight) if self.layout == "kn" else torch.matmul(a, self.weight.t())
        return y + self.bias


class Activation(nn.Module):
    def __init__(self, name: str):
        super().__init__()
        self.fn = ACTIVATIONS[name]

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.fn(a)


class Float64(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float64)


def layers_module(op: MLP, layout: str) -> nn.Sequential:
    """``float64 -> Dense -> act -> ... -> Dense``: one module per layer and per activation."""
    parts: list[nn.Module] = [Float64()]
    for i, (w, b) in enumerate(zip(op.weights, op.biases)):
        parts.append(Dense(w, b, layout))
        if i < op.n_layers - 1 and op.activation != "identity":
            parts.append(Activation(op.activation))
    return nn.Sequential(*parts)


_LAYOUT = Knob("layout", LAYOUTS, "kn", "weights stored (in, out) as scikit-learn (x @ W), or (out, in) (x @ W.T)")


@register
class MLPFused(Strategy):
    """Every layer's GEMM, bias and activation in one module (``bias``: added, or folded into the GEMM)."""

    name = "mlp_fused"
    op_kind = "mlp"
    family = "torch"
    preferred = True
    knobs = (_LAYOUT, Knob("bias", ("add", "augmented"), "add",
                           "add: GEMM then bias; augmented: the bias as one more weight row against a ones column"))

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return MLPFusedModule(op, knobs.get("layout", "kn"), knobs.get("bias", "add"))  # type: ignore[arg-type]


@register
class MLPLayers(Strategy):
    """One module per layer (GEMM, then bias add) and per activation."""

    name = "mlp_layers"
    op_kind = "mlp"
    family = "torch"
    knobs = (_LAYOUT,)

    @classmethod
    def build_module(cls, op: Op, knobs: Mapping[str, Any]) -> nn.Module:
        return layers_module(op, knobs.get("layout", "kn"))  # type: ignore[arg-type]

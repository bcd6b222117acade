"""Pieces shared by the torch-family strategies: dtypes, post-transforms, the task module class, and the
tile rules of the kernel-matrix strategies.

Only ops that ``torch.export`` -> ``tvm.relax.frontend.torch`` can import are used
here (no ``exp2``, bit shifts, ``searchsorted`` or ``logsumexp``), so every
torch strategy also runs on the ``tvm`` backend.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .ground.errors import InvalidConfigError
from .ir import INPUT, PostTransform

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# kernel machines and KernelPCA: most fitted rows (support vectors, KernelPCA rows) x features a ``direct``
# rbf tile may hold per input row (it subtracts every pair: rows x tile x features values in memory)
DIRECT_TILE = 4096
LN2 = math.log(2.0)


class PostTransformModule(nn.Module):
    """``strategies.ir.PostTransform`` as a torch module (identity when ``raw`` is asked)."""

    def __init__(self, pt: PostTransform):
        super().__init__()
        self.kind = pt.kind
        self.param = pt.param

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kind
        if k == "identity":
            return x
        if k == "sigmoid":
            return torch.sigmoid(x * self.param) if self.param != 1.0 else torch.sigmoid(x)
        if k == "softmax":
            return torch.softmax(x, dim=1)
        if k == "exp":
            return torch.exp(x)
        if k == "ovr_normalize":
            p = torch.sigmoid(x)
            if x.shape[1] == 1:
                return p
            s = p.sum(dim=1, keepdim=True)
            zero = s == 0
            return torch.where(zero, torch.full_like(p, 1.0 / x.shape[1]), p / torch.where(zero, torch.ones_like(s), s))
        if k == "isolation":
            return -torch.exp(x * (-LN2 / self.param))
        if k == "modified_huber":
            p = (torch.clamp(x, -1.0, 1.0) + 1.0) / 2.0
            if x.shape[1] == 1:
                return p
            s = p.sum(dim=1, keepdim=True)
            zero = s == 0
            return torch.where(zero, torch.full_like(p, 1.0 / x.shape[1]), p / torch.where(zero, torch.ones_like(s), s))
        raise InvalidConfigError(f"no torch implementation of post-transform {k!r}")


class TaskModule(nn.Module):
    """A task's graph as modules: part ``i`` reads the values ``inputs[i]`` (-1: the input, k: part k's
    output); the last part's output is the result.  Each part casts its input to the dtype it computes in."""

    def __init__(self, parts: Sequence[nn.Module], inputs: Sequence[Sequence[int]] | None = None):
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.inputs = [tuple(i) for i in inputs] if inputs is not None else [(k - 1,) for k in range(len(parts))]
        self.chain = all(ins == (k - 1,) for k, ins in enumerate(self.inputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.chain:
            for part in self.parts:
                x = part(x)
            return x
        values: list[torch.Tensor] = []
        for part, ins in zip(self.parts, self.inputs):
            values.append(part(*[x if v == INPUT else values[v] for v in ins]))
        return values[-1]

    def input_parts(self) -> list[nn.Module]:
        """The parts that read the task's input."""
        return [p for p, ins in zip(self.parts, self.inputs) if INPUT in ins]


def direct_tile_reason(kernel: str, distance: str, block: int, n_rows: int, n_features: int, rows: str,
                       knob: str) -> str | None:
    """Why a ``direct`` rbf tile of ``block`` (0: all ``n_rows``) fitted ``rows`` is too large, or None."""
    if distance != "direct" or kernel != "rbf":
        return None
    size = min(block or n_rows, n_rows)
    if size * n_features <= DIRECT_TILE:
        return None
    return (f"a direct rbf tile of {size} {rows} x {n_features} features holds more than {DIRECT_TILE} values "
            f"per row: use a smaller {knob} or distance='gemm'")


def tile_redundant_reason(kernel: str, distance: str, block: int, n_rows: int, rows: str, knob: str) -> str | None:
    """Why tiles of ``block`` ``rows`` with ``distance`` build the same program as another choice, or None."""
    if block and block >= n_rows:
        return f"{knob} covers every {rows[:-1] if rows.endswith('s') else rows}: the same program as {knob}=0"
    if distance == "direct" and kernel != "rbf":
        return "distance only matters for the rbf kernel"
    return None

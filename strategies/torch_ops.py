"""Pieces shared by the torch-family strategies: post-transforms and the task module.

Only ops that ``torch.export`` -> ``tvm.relax.frontend.torch`` can import are used
here (no ``exp2``, bit shifts, ``searchsorted`` or ``logsumexp``), so every
torch strategy also runs on the ``tvm`` backend.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .errors import InvalidConfigError
from .ir import Op, PostTransform

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
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
        raise InvalidConfigError(f"no torch implementation of post-transform {k!r}")


class TaskModule(nn.Module):
    """A chain of op modules; each casts its input to the dtype it computes in."""

    def __init__(self, parts: Sequence[nn.Module]):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for part in self.parts:
            x = part(x)
        return x


def build_task_module(ops: Sequence[Op], config: Mapping[str, Any], output: str = "out") -> TaskModule:
    """The torch module for a task: the main op with the config's strategy, the others with their own."""
    from .base import get_strategy, strategies_for
    from .linear import fold_scalers

    knobs = dict(config.get("knobs", {}))
    main = main_op_index(ops)
    strat = get_strategy(config["strategy"], ops[main].kind)
    main_knobs = strat.resolve_knobs({k.name: knobs[k.name] for k in strat.knobs if k.name in knobs})
    if main_knobs.get("fold_scaler"):
        ops, main = fold_scalers(ops, main)
    parts: list[nn.Module] = []
    for i, op in enumerate(ops):
        if i == main:
            parts.append(strat.build_module(op, main_knobs))
            continue
        options = strategies_for(op.kind)
        if not options:
            raise InvalidConfigError(f"no strategy computes operator {op.kind!r}")
        parts.append(options[0].build_module(op, options[0].resolve_knobs({})))
    if output == "out":
        parts.append(PostTransformModule(ops[-1].post_transform))
    return TaskModule(parts)


def main_op_index(ops: Sequence[Op]) -> int:
    """The op a task's ``strategy`` applies to: its tree ensemble or linear model, else its last op."""
    for kind in ("tree_ensemble", "linear"):
        for i, op in enumerate(ops):
            if op.kind == kind:
                return i
    return len(ops) - 1

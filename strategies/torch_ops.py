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
from .ir import INPUT, Graph, Op, PostTransform, as_graph

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


def build_task_module(graph: Graph | Sequence[Op], config: Mapping[str, Any], output: str = "out") -> TaskModule:
    """The torch module for a task: the main op with the config's strategy, the others with their own."""
    from .base import get_strategy, strategies_for
    from .linear import fold_scalers

    graph = as_graph(graph)
    knobs = dict(config.get("knobs", {}))
    main = main_op_index(graph.ops)
    strat = get_strategy(config["strategy"], graph.ops[main].kind)
    main_knobs = strat.resolve_knobs({k.name: knobs[k.name] for k in strat.knobs if k.name in knobs})
    if main_knobs.get("fold_scaler"):
        graph, main = fold_scalers(graph, main)
    parts: list[nn.Module] = []
    for i, node in enumerate(graph.nodes):
        if i == main:
            parts.append(strat.build_module(node.op, main_knobs))
            continue
        options = strategies_for(node.op.kind)
        if not options:
            raise InvalidConfigError(f"no strategy computes operator {node.op.kind!r}")
        parts.append(options[0].build_module(node.op, options[0].resolve_knobs({})))
    inputs = [n.inputs for n in graph.nodes]
    if output == "out":
        parts.append(PostTransformModule(graph.post_transform))
        inputs.append((len(graph.nodes) - 1,))
    return TaskModule(parts, inputs)


MAIN_KINDS = ("tree_ensemble", "linear", "lookup")


def main_op_index(ops: Sequence[Op]) -> int:
    """The op a task's ``strategy`` applies to: its (last) tree ensemble, else linear model, else
    encoder, else its last op."""
    for kind in MAIN_KINDS:
        for i in range(len(ops) - 1, -1, -1):
            if ops[i].kind == kind:
                return i
    return len(ops) - 1

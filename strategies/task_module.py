"""A task's graph as one torch module: the main op with the config's strategy, the others with their own."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from .ground.errors import InvalidConfigError
from .ir import Graph, Node, Op, as_graph, main_op_index
from .linear import fold_scalers
from .registry import get_strategy, strategies_for
from .torch_ops import PostTransformModule, TaskModule


def build_task_module(graph: Graph | Sequence[Op], config: Mapping[str, Any], output: str = "out") -> TaskModule:
    """The torch module for a task: the main op with the config's strategy, the others with their own.
    ``output="raw"``: the last op's ``raw_op`` (a stage only ``out`` needs left out), without its post-transform;
    another name: that output of the last op, which must be the main one (``Strategy.build_output_module``)."""
    graph = as_graph(graph)
    named = output not in ("out", "raw")
    if output == "raw":
        last = graph.nodes[-1]
        op = last.op.raw_op()
        if op is not last.op:
            graph = Graph(graph.n_features, graph.nodes[:-1] + (Node(op, last.inputs),))
    knobs = dict(config.get("knobs", {}))
    main = main_op_index(graph.ops)
    strat = get_strategy(config["strategy"], graph.ops[main].kind)
    main_knobs = strat.resolve_knobs({k.name: knobs[k.name] for k in strat.knobs if k.name in knobs})
    if main_knobs.get("fold_scaler"):
        graph, main = fold_scalers(graph, main)
    if named and main != len(graph.nodes) - 1:
        raise InvalidConfigError(f"output {output!r} is one of a task's last op, but this task ends in a "
                                 f"{graph.ops[-1].kind} after its {graph.ops[main].kind}")
    parts: list[nn.Module] = []
    for i, node in enumerate(graph.nodes):
        if i == main:
            parts.append(strat.build_output_module(node.op, main_knobs, output) if named
                         else strat.build_module(node.op, main_knobs))
            continue
        options = sorted((s for s in strategies_for(node.op.kind) if s.family == "torch"), key=lambda s: not s.preferred)
        if not options:
            raise InvalidConfigError(f"no torch strategy computes operator {node.op.kind!r}")
        parts.append(options[0].build_module(node.op, options[0].resolve_knobs({})))
    inputs = [n.inputs for n in graph.nodes]
    if output == "out":
        parts.append(PostTransformModule(graph.post_transform))
        inputs.append((len(graph.nodes) - 1,))
    return TaskModule(parts, inputs)

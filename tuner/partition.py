"""Graph -> tasks (sub-graphs compiled as one program each), and the fusion choices.

A *partition* is a sequence of tasks whose composition computes the model's
graph: each task reads the previous one's output (the first reads ``X``).  The
choices are: the whole graph as one task, or split around its main operator
(the tree ensemble, linear model or encoder the strategies compete on) into the
preprocessing before it, the operator alone, and what follows it.  A chain is
the special case.  Fusion rewrites (``strategies.fusion``) add further graphs,
each partitioned the same way; identical sub-graphs hash alike and are tuned once.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from strategies.backends.registry import get_backend
from strategies.base import Strategy
from strategies.ir import INPUT, Graph, Node, Op, content_hash
from strategies.ir import main_op_index
from strategies.ir.columns import Concat, Gather
from strategies.registry import get_strategy, strategies_for

log = logging.getLogger(__name__)

HEAVY = ("tree_ensemble", "linear", "kernel_machine", "kneighbors", "centroids", "gaussian_mixture", "mlp",
         "gaussian_nb", "kernel_pca")


def task_hash(graph: Graph) -> str:
    """The records database's workload key of a task: chains hash by their ops (as before graphs were DAGs)."""
    return content_hash(("task", graph.ops)) if graph.is_chain else content_hash(("task", graph))


def structure_hash(graph: Graph) -> str:
    """Hash of what a candidate's speed depends on: op kinds, shapes, integer structure (tree children,
    features, columns) and settings, but no float parameter (weights, thresholds, means).  Tasks sharing it
    (the members of a bagging ensemble) are tuned once: one searches, the others measure its winner."""
    import hashlib
    import json

    from strategies.ir import encode

    arrays: dict[str, np.ndarray] = {}
    meta = encode(graph, arrays)

    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return "<float>" if "__float__" in v else {k: strip(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return "<float>" if isinstance(v, float) else v

    h = hashlib.sha256(json.dumps(strip(meta), sort_keys=True).encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        if a.dtype.kind in "biu":
            h.update(a.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Task:
    """A sub-graph tuned and compiled as one program; ``inputs`` are the values of its partition it reads side
    by side (``-1`` the model's input, ``k`` task ``k``'s output; None: the task before it, or ``X`` first)."""

    graph: Graph
    inputs: tuple[int, ...] | None = None
    float32_input: bool = False  # of a partition exact only for inputs of float32 values (strategies.precision)

    @property
    def ops(self) -> tuple[Op, ...]:
        return self.graph.ops

    @property
    def main(self) -> Op:
        return self.ops[main_op_index(self.ops)]

    @property
    def workload_hash(self) -> str:
        """Stable content hash of the sub-graph: the records database's workload key."""
        return task_hash(self.graph)

    def summary(self) -> str:
        return self.graph.summary()


def split_graph(graph: Graph) -> list[Graph] | None:
    """``graph`` cut into [before the main op], [the main op], [after it] (empty parts left out), or None
    when the main op is not a cut point (a value before it is also read after it)."""
    nodes = graph.nodes
    m = main_op_index(graph.ops)
    if len(nodes[m].inputs) != 1:
        return None
    before = graph.ancestors(m)
    after = [i for i in range(m + 1, len(nodes))]
    if len(before) + 1 + len(after) != len(nodes):
        return None
    for i in after:
        if any(0 <= v < m or v == INPUT for v in nodes[i].inputs):
            return None
    (src,) = nodes[m].inputs
    parts = []
    if before:
        order = sorted(before)
        if order[-1] != src:
            return None
        new = {INPUT: INPUT, **{old: k for k, old in enumerate(order)}}
        parts.append(Graph(graph.n_features, tuple(Node(nodes[i].op, tuple(new[v] for v in nodes[i].inputs))
                                                   for i in order)))
    width = graph.n_features if src == INPUT else nodes[src].op.output_type().width
    parts.append(Graph(width, (nodes[m].op,)))
    if after:
        new = {m: INPUT, **{old: k for k, old in enumerate(after)}}
        parts.append(Graph(nodes[m].op.output_type().width,
                           tuple(Node(nodes[i].op, tuple(new[v] for v in nodes[i].inputs)) for i in after)))
    return parts


def split_members(graph: Graph) -> list[Task] | None:
    """``graph`` cut into parallel branches, one per ensemble member, each tuned as its own task, or None.

    The members are the heavy ops (:data:`HEAVY`) no other heavy op feeds (a stacking's final estimator is
    fed by them, and stays in the combining task); there must be at least two.  Preprocessing that several
    members read is one task before them; each member's task holds its own preprocessing and the ops only it
    feeds (its activation); the last task combines what is left.  A task reading several values reads them
    side by side, each picked out by a ``gather``.
    """
    nodes = graph.nodes
    heavy = [i for i, n in enumerate(nodes) if n.op.kind in HEAVY]
    members = [h for h in heavy if not graph.ancestors(h) & set(heavy)]
    if len(members) < 2:
        return None
    last = len(nodes) - 1
    reach = {h: graph.ancestors(h) | {h} for h in members}
    shared: set[int] = set()
    for a, h in enumerate(members):
        for g in members[a + 1:]:
            shared |= reach[h] & reach[g]
    for v in list(shared):
        shared |= graph.ancestors(v)
    group = {i: -1 for i in shared}  # -1: the shared preprocessing
    for k, h in enumerate(members):
        for i in reach[h] - shared:
            group[i] = k
    for i, n in enumerate(nodes):  # the ops only one member feeds follow it (not the graph's last op)
        if i not in group and i != last:
            owners = {group.get(v) for v in n.inputs}
            if len(owners) == 1 and None not in owners and -1 not in owners and n.op.kind not in HEAVY:
                group[i] = owners.pop()
    if last in group:
        return None
    order = ([sorted(i for i, g in group.items() if g == -1)] if shared else []) + \
        [sorted(i for i, g in group.items() if g == k) for k in range(len(members))] + \
        [[i for i in range(len(nodes)) if i not in group]]
    return _cut(graph, order)


def _cut(graph: Graph, groups: list[list[int]]) -> list[Task]:
    """One task per group of nodes (groups in an order where each reads only ``X`` and earlier groups; the
    last holds the graph's last node).  A group's output is its values later groups read, side by side."""
    nodes = graph.nodes
    width = lambda v: graph.n_features if v == INPUT else nodes[v].op.output_type().width  # noqa: E731
    owner = {i: k for k, g in enumerate(groups) for i in g}
    exported: list[list[int]] = [[] for _ in groups]
    for k, g in enumerate(groups):
        for i in g:
            for v in nodes[i].inputs:
                if v != INPUT and owner[v] != k and v not in exported[owner[v]]:
                    if owner[v] > k:
                        raise ValueError(f"group {k} reads node {v} of the later group {owner[v]}")
                    exported[owner[v]].append(v)
    exported[-1] = [len(nodes) - 1]
    where: dict[int, tuple[int, int]] = {}  # exported value -> (task, column offset in its output)
    tasks = []
    for k, g in enumerate(groups):
        exported[k].sort()
        off = 0
        for v in exported[k]:
            where[v] = (k, off)
            off += width(v)
        outside = sorted({v for i in g for v in nodes[i].inputs if v == INPUT or owner[v] != k})
        sources = sorted({INPUT if v == INPUT else where[v][0] for v in outside})
        base = {s: sum(width(INPUT) if t == INPUT else _out_width(graph, exported[t]) for t in sources[:j])
                for j, s in enumerate(sources)}
        n_in = sum(width(INPUT) if t == INPUT else _out_width(graph, exported[t]) for t in sources)
        new: dict[int, int] = {}
        out_nodes: list[Node] = []
        for v in outside:
            src, start = (INPUT, 0) if v == INPUT else where[v]
            cols = np.arange(base[src] + start, base[src] + start + width(v))
            if len(outside) == 1 and cols.size == n_in:
                new[v] = INPUT
            else:
                new[v] = len(out_nodes)
                out_nodes.append(Node(Gather(n_in, cols), (INPUT,)))
        for i in g:
            new[i] = len(out_nodes)
            out_nodes.append(Node(nodes[i].op, tuple(new[v] for v in nodes[i].inputs)))
        outs = exported[k]
        if len(outs) > 1 or new[outs[0]] != len(out_nodes) - 1:
            out_nodes.append(Node(Concat(tuple(width(v) for v in outs)), tuple(new[v] for v in outs)))
        tasks.append(Task(Graph(n_in, tuple(out_nodes)), tuple(sources)))
    return tasks


def _out_width(graph: Graph, values: list[int]) -> int:
    return sum(graph.nodes[v].op.output_type().width for v in values)


def task_reason(graph: Graph, strategy: type[Strategy], backend: str) -> str | None:
    """Why ``strategy`` on ``backend`` cannot compute the task ``graph`` as one program, or None: the backend
    must serve every op kind of it, and the strategy compute the task's chain (``Strategy.task_reason``:
    a torch-family backend builds the ops around the main one itself, a tir kernel is the whole task)."""
    b = get_backend(backend)
    bad = [op.kind for op in graph.ops if op.kind not in b.serves]
    if bad:
        return f"backend {backend!r} cannot serve operator(s) {bad}"
    if b.family != strategy.family:
        return f"strategy {strategy.name!r} is of the {strategy.family!r} family, backend {backend!r} of {b.family!r}"
    main = graph.ops[main_op_index(graph.ops)]
    if strategy.op_kind != main.kind:
        return f"strategy {strategy.name!r} computes {strategy.op_kind}, not {main.kind}"
    return strategy.task_reason(graph)


def computes_whole(graph: Graph, backend: str, strategy: str | None = None) -> bool:
    """Whether one program on ``backend`` computes all of ``graph``: with ``strategy``, or with any strategy of
    the backend's family for the graph's main op."""
    if strategy is not None:
        options = [get_strategy(strategy)]
    else:
        main = graph.ops[main_op_index(graph.ops)]
        options = [s for s in strategies_for(main.kind) if s.family == get_backend(backend).family]
    return any(task_reason(graph, s, backend) is None for s in options)


def tasks_for_backend(graph: Graph, backend: str, *, strategy: str | None = None,
                      fuse_preprocessing: bool = True) -> list[Task]:
    """The tasks of ``graph`` when its main op runs on ``backend`` (with ``strategy``, when given): the whole
    graph when one program computes it (:func:`computes_whole`; and ``fuse_preprocessing``); else split so
    that the main op's task is the op alone, taking the exact rewrite (``strategies.fusion``) that leaves the
    fewest ops to the tasks around it."""
    from strategies.fusion import rewrites

    candidates = [graph] + (rewrites(graph) if fuse_preprocessing else [])
    best: list[Task] | None = None
    for g in candidates:
        if fuse_preprocessing and computes_whole(g, backend, strategy):
            return [Task(g)]
        parts = split_graph(g)
        tasks = [Task(p) for p in parts] if parts is not None else [Task(g)]
        if best is None or sum(len(t.graph.nodes) for t in tasks) < sum(len(t.graph.nodes) for t in best):
            best = tasks
    return best


def main_task_index(tasks: list[Task]) -> int:
    for i, t in enumerate(tasks):
        if any(op.kind in HEAVY for op in t.ops):
            return i
    return len(tasks) - 1


def side_config(threads: int, batch_size: int) -> Mapping[str, Any]:
    """Config of a light task around the main one (preprocessing, or a post-transform split off)."""
    return {"backend": "torch", "threads": threads, "batch_size": batch_size}


def enumerate_partitions(graph: Graph, rewrites: bool = True, float32_input: bool = False) -> list[list[Task]]:
    """The fusion choices: for each exact rewrite of the graph (when ``rewrites``) and the graph itself, the
    whole graph as one task, split around its main operator, or cut into one branch per ensemble member
    (:func:`split_members`; each member whole, and each split around its own main op).  With
    ``float32_input``, also the same for each of those graphs rewritten to compare in float32
    (``strategies.precision``; its tasks marked ``float32_input``: plans of them serve float32 inputs only).

    (Post-transform fusion is a config field, ``fuse_post``, of the task that owns it.)
    """
    from strategies.fusion import rewrites as fusion_rewrites
    from strategies.precision import float32_input_graph

    # the rewrites first: their tasks are tuned first when the budget is short
    exact = (fusion_rewrites(graph) if rewrites else []) + [graph]
    narrow = [n for n in (float32_input_graph(g) for g in exact) if n is not None] if float32_input else []
    out: list[list[Task]] = []
    seen: set[tuple] = set()
    for g, f32 in [(n, True) for n in narrow] + [(g, False) for g in exact]:
        choices = [[Task(g)]]
        parts = split_graph(g)
        if parts is not None and len(parts) > 1:
            # a rewrite split first (its main task can go to tvm-tir, which serves tree ensembles alone); the
            # graph itself whole first (one task: the cheapest complete plan when the budget is tiny)
            choices.insert(0 if g is not graph else 1, [Task(p) for p in parts])
        members = split_members(g)
        if members is not None:
            choices.append(members)
            finer = _split_each(members)
            if finer is not None:
                choices.append(finer)
        for part in choices:
            if f32:
                part = [dataclasses.replace(t, float32_input=True) for t in part]
            key = tuple((t.workload_hash, t.inputs, t.float32_input) for t in part)
            if key not in seen:
                seen.add(key)
                out.append(part)
    return out


def _split_each(tasks: list[Task]) -> list[Task] | None:
    """``tasks`` with every task but the last split around its main op (:func:`split_graph`), or None when
    none splits.  The parts of a task form a chain; what read the task reads its last part."""
    pieces = [split_graph(t.graph) if i < len(tasks) - 1 else None for i, t in enumerate(tasks)]
    if not any(p is not None and len(p) > 1 for p in pieces):
        return None
    out: list[Task] = []
    new_index: dict[int, int] = {INPUT: INPUT}
    for i, (t, parts) in enumerate(zip(tasks, pieces)):
        srcs = tuple(new_index[v] for v in sources_of(tasks)[i])
        for j, g in enumerate(parts if parts is not None and len(parts) > 1 else [t.graph]):
            out.append(Task(g, srcs if j == 0 else (len(out) - 1,)))
        new_index[i] = len(out) - 1
    return out


def needs_float32(tasks: list[Task]) -> bool:
    """Whether a partition is exact only for inputs of float32 values."""
    return any(t.float32_input for t in tasks)


def sources_of(tasks: list[Task]) -> tuple[tuple[int, ...], ...]:
    """What each task of a partition reads (``-1``: ``X``; ``k``: task ``k``'s output)."""
    return tuple(t.inputs if t.inputs is not None else (i - 1,) for i, t in enumerate(tasks))


def run_reference(tasks: list[Task], X: np.ndarray, keep: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The partition's output on ``X`` by the reference evaluator; ``keep`` collects each task's input rows
    (by workload hash, the first seen)."""
    from strategies import reference

    from .plan import run_steps

    def step(t: Task):
        def run(v: np.ndarray) -> np.ndarray:
            if keep is not None:
                keep.setdefault(t.workload_hash, v)
            return reference.evaluate(t.graph, v)
        return run

    return run_steps([step(t) for t in tasks], sources_of(tasks), X)


def verified(partitions: list[list[Task]], graph: Graph, X: np.ndarray, rows: int = 2048) -> list[list[Task]]:
    """The partitions whose tasks, run by the reference evaluator on (up to ``rows`` of) ``X``, give what
    ``graph`` gives (the check every fusion rewrite passes before it counts)."""
    from strategies import reference

    from .checks import check_outputs

    x = X[:rows]
    want = reference.evaluate(graph, x)
    out = []
    for part in partitions:
        problem = check_outputs(run_reference(part, x), want)
        if problem is None:
            out.append(part)
        else:
            log.warning("fusion choice %s dropped: %s", " | ".join(t.summary()[:60] for t in part), problem)
    return out


def unique_tasks(partitions: list[list[Task]]) -> list[Task]:
    """Every distinct task (by workload hash) across the partitions, in first-seen order."""
    seen: dict[str, Task] = {}
    for part in partitions:
        for t in part:
            seen.setdefault(t.workload_hash, t)
    return list(seen.values())

"""Graph -> tasks (contiguous runs of ops compiled as one program), and the fusion choices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from strategies.backends.base import get_backend
from strategies.ir import Graph, Op, content_hash
from strategies.torch_ops import main_op_index

HEAVY = ("tree_ensemble", "linear")


@dataclass(frozen=True)
class Task:
    """Ops ``[start, stop)`` of a graph, tuned and compiled together."""

    start: int
    stop: int
    ops: tuple[Op, ...]

    @property
    def main(self) -> Op:
        return self.ops[main_op_index(self.ops)]

    @property
    def workload_hash(self) -> str:
        """Stable content hash of the subgraph: the records database's workload key."""
        return content_hash(("task", self.ops))

    def summary(self) -> str:
        return " -> ".join(op.summary() for op in self.ops)


def tasks_for_backend(graph: Graph, backend: str, *, fuse_preprocessing: bool = True) -> list[Task]:
    """Split ``graph`` so that the task holding the main op runs on ``backend``.

    The main task takes the heavy op plus, when ``fuse_preprocessing``, every
    neighbouring op the backend can serve; ops left over form torch tasks of their own.
    """
    ops = graph.ops
    main = main_op_index(ops)
    serves = set(get_backend(backend).serves)
    start = stop = main
    stop += 1
    if fuse_preprocessing:
        while start > 0 and ops[start - 1].kind in serves and ops[start - 1].kind not in HEAVY:
            start -= 1
        while stop < len(ops) and ops[stop].kind in serves and ops[stop].kind not in HEAVY:
            stop += 1
    tasks = []
    if start > 0:
        tasks.append(Task(0, start, ops[:start]))
    tasks.append(Task(start, stop, ops[start:stop]))
    if stop < len(ops):
        tasks.append(Task(stop, len(ops), ops[stop:]))
    return tasks


def main_task_index(tasks: list[Task]) -> int:
    for i, t in enumerate(tasks):
        if any(op.kind in HEAVY for op in t.ops):
            return i
    return len(tasks) - 1


def side_config(threads: int, batch_size: int) -> Mapping[str, Any]:
    """Config of a light task around the main one (preprocessing, or a post-transform split off)."""
    return {"backend": "torch", "threads": threads, "batch_size": batch_size}


def enumerate_partitions(graph: Graph) -> list[list[Task]]:
    """The fusion choices of a chain: preprocessing fused into the main op's task, or run as its own task.

    (Post-transform fusion is a config field, ``fuse_post``, of the task that owns it.)
    """
    ops = graph.ops
    main = main_op_index(ops)
    whole = [Task(0, len(ops), ops)]
    if main == 0 and len(ops) == 1:
        return [whole]
    split = []
    if main > 0:
        split.append(Task(0, main, ops[:main]))
    split.append(Task(main, main + 1, ops[main : main + 1]))
    if main + 1 < len(ops):
        split.append(Task(main + 1, len(ops), ops[main + 1 :]))
    return [whole, split]


def unique_tasks(partitions: list[list[Task]]) -> list[Task]:
    """Every distinct task (by workload hash) across the partitions, in first-seen order."""
    seen: dict[str, Task] = {}
    for part in partitions:
        for t in part:
            seen.setdefault(t.workload_hash, t)
    return list(seen.values())

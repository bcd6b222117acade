"""A plan: compiled tasks that together compute a model's graph, chosen for one batch size.

Tasks run in order.  Each reads one value or several side by side: ``-1`` is the
input ``X`` and ``k`` the output of task ``k`` (an earlier one).  A chain (each
task reading the one before it, the first reading ``X``) needs no sources; the
members of an ensemble are parallel branches reading ``X``, and the task that
combines them reads their outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from strategies.compile import CompiledTask

INPUT = -1
Sources = tuple[int, ...]


def chain_sources(n: int) -> tuple[Sources, ...]:
    """The sources of ``n`` tasks run as a chain."""
    return tuple((i - 1,) for i in range(n))


def check_sources(sources: Sequence[Sequence[int]], n: int) -> tuple[Sources, ...]:
    """``sources`` as tuples, checked: one non-empty entry per task, each naming ``X`` or an earlier task, and
    every task but the last read by a later one."""
    out = tuple(tuple(int(v) for v in s) for s in sources)
    if len(out) != n:
        raise ValueError(f"a plan of {n} tasks needs {n} source lists, got {len(out)}")
    for i, s in enumerate(out):
        if not s or any(not INPUT <= v < i for v in s):
            raise ValueError(f"task {i} must read X (-1) or earlier tasks, got sources {list(s)}")
    unread = sorted(set(range(n - 1)) - {v for s in out for v in s})
    if unread:
        raise ValueError(f"task(s) {unread} are read by no later task")
    return out


def gather(values: Sequence[np.ndarray], X: np.ndarray, sources: Sources) -> np.ndarray:
    """A task's input: its source values side by side (``X`` for ``-1``)."""
    if len(sources) == 1:
        return X if sources[0] == INPUT else values[sources[0]]
    parts = [X if v == INPUT else values[v] for v in sources]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts], axis=1)


def run_steps(steps: Sequence[Callable[[np.ndarray], np.ndarray]], sources: Sequence[Sources],
              X: np.ndarray) -> np.ndarray:
    """The last step's output, each step run on its sources' values."""
    values: list[np.ndarray] = []
    for step, src in zip(steps, sources):
        values.append(step(gather(values, X, src)))
    return values[-1]


@dataclass
class Plan:
    """Compiled tasks covering the graph's ops; ``tuned_batch`` is the batch size it was chosen for;
    ``sources`` what each task reads (None: a chain); ``float32_input``: the plan computes the model exactly
    only for inputs whose values are all float32 values (the Predictor gives it float32 arrays only)."""

    tasks: tuple[CompiledTask, ...]
    tuned_batch: int | None = None
    sources: tuple[Sources, ...] | None = None
    float32_input: bool = False  # exact only for inputs of float32 values (``strategies.precision``)

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        if self.sources is not None:
            self.sources = check_sources(self.sources, len(self.tasks))
            if self.sources == chain_sources(len(self.tasks)):
                self.sources = None

    @property
    def is_chain(self) -> bool:
        return self.sources is None

    def task_sources(self) -> tuple[Sources, ...]:
        return self.sources if self.sources is not None else chain_sources(len(self.tasks))

    def configs(self) -> list[Any]:
        return [t.config for t in self.tasks]

    def run(self, X: np.ndarray, output: str = "out") -> np.ndarray:
        """The graph's ``output`` value (``out`` or ``raw``): every task in chunks of its batch size."""
        last = len(self.tasks) - 1
        steps = [(lambda v, t=t, o=(output if i == last else "out"): t.run_chunked(v, o))
                 for i, t in enumerate(self.tasks)]
        return run_steps(steps, self.task_sources(), X)

"""User entry points: compile (untuned), load_artifact; tune and load live in ``tuner.tuning``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import strategies
from strategies.compile import CompiledTask, resolve_config

from .partition import main_task_index, side_config, tasks_for_backend
from .plan import Plan
from .predictor import Predictor


def compile(  # noqa: A001 - the public name the design fixes
    model: Any,
    *,
    strategy: str | None = None,
    backend: str | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    fuse_post: bool = True,
    **knobs: Any,
) -> Predictor:
    """Compile a model (estimator object, model file path, or ConvertedModel) into a Predictor.

    With no choices given it uses the untuned default: Hummingbird's depth rule
    for tree ensembles (gemm for depth <= 3, perfect_tree_traversal for depth
    <= 10, tree_traversal beyond) on the torch backend.  ``knobs`` are the
    strategy's and backend's knobs; unknown names or values raise
    ``InvalidConfigError`` naming the allowed ones.  Programs are built on first
    use (``Predictor.warm_up()`` builds them now).
    """
    conv = strategies.convert(model)
    given = {"strategy": strategy, "backend": backend, "batch_size": batch_size, "threads": threads,
             "fuse_post": fuse_post, "knobs": knobs}
    given = {k: v for k, v in given.items() if v is not None}
    probe = resolve_config(conv.graph, given)
    return Predictor(conv, [plan_for(conv, probe)])


def plan_for(conv: strategies.ConvertedModel, config: dict[str, Any], tuned_batch: int | None = None) -> Plan:
    """One plan: the main task with ``config``; ops its backend cannot serve in torch side tasks."""
    tasks = tasks_for_backend(conv.graph, config["backend"])
    main = main_task_index(tasks)
    compiled = []
    for i, task in enumerate(tasks):
        cfg = config if i == main else side_config(config["threads"], config["batch_size"])
        compiled.append(CompiledTask(task.graph, resolve_config(task.graph, cfg)))
    return Plan(tuple(compiled), tuned_batch)


def load_artifact(path: str | Path) -> Predictor:
    """Load a file written by ``Predictor.save``; every payload's SHA-256 is checked first.

    Artifacts contain compiled code: only load files from a trusted source.
    """
    p = Path(path)
    return Predictor.from_artifact(p.read_bytes(), what=str(p))

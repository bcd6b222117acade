"""A plan: compiled tasks that together compute a model's graph, chosen for one batch size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strategies.compile import CompiledTask


@dataclass
class Plan:
    """Compiled tasks covering the graph's ops in order; ``tuned_batch`` is the batch size it was chosen for."""

    tasks: tuple[CompiledTask, ...]
    tuned_batch: int | None = None

    def configs(self) -> list[Any]:
        return [t.config for t in self.tasks]

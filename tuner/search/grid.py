"""Grid search in cost-model order, and ``auto``: the grid for small spaces, TPE for large ones."""

from __future__ import annotations

from typing import ClassVar, Sequence

from strategies.ground.config import Config

from .base import Job, Predict, Result, SearchSettings, SearchStrategy, pick, register_search, unmeasured
from .tpe import TPESearch


GRID_LIMIT = 192  # spaces up to this size are searched as a grid by ``auto``


@register_search
class GridSearch(SearchStrategy):
    """Every valid config of the space, the cost model's favourites first (one random pick per round)."""

    name: ClassVar[str] = "grid"

    def prepare(self, job: Job) -> None:
        job.state[self.name] = list(job.space.enumerate())

    def propose(self, job: Job, n: int, predict: Predict) -> list[Config]:
        if self.name not in job.state:
            self.prepare(job)
        pool = unmeasured(job, job.state[self.name])
        job.state[self.name] = pool  # measured configs never come back
        return pick(pool, predict(pool), n, self.rng, job) if pool else []


@register_search
class AutoSearch(SearchStrategy):
    """:class:`GridSearch` for spaces of at most ``GRID_LIMIT`` configs, :class:`TPESearch` otherwise."""

    name: ClassVar[str] = "auto"

    def __init__(self, settings: SearchSettings | None = None) -> None:
        super().__init__(settings)
        self.grid = GridSearch(settings)
        self.tpe = TPESearch(settings)

    def _for(self, job: Job) -> SearchStrategy:
        return self.grid if job.space.size() <= GRID_LIMIT else self.tpe

    def prepare(self, job: Job) -> None:
        self._for(job).prepare(job)

    def propose(self, job: Job, n: int, predict: Predict) -> list[Config]:
        return self._for(job).propose(job, n, predict)

    def notify(self, job: Job, configs: Sequence[Config], results: Sequence[Result]) -> None:
        self._for(job).notify(job, configs, results)

    def finish(self, job: Job) -> None:
        self._for(job).finish(job)

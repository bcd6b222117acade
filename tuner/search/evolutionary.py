"""Evolutionary search over the cost model, in the style of TVM MetaSchedule's ``EvolutionarySearch``.

Each round: a population seeded with the best measured configs of the job and
random samples of its space evolves for a few generations, scored by the cost
model only (nothing is built): every generation mutates parents (one dimension
changed: a knob value, the thread count, the chunk size, or the strategy /
backend pair), chosen with probability rising with their predicted speed, and
keeps the best-predicted distinct configs.  The unmeasured best of the final
population are measured, with one random sample of the space among them
(epsilon-greedy).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from strategies.ground.config import Config

from .base import Job, Predict, SearchSettings, SearchStrategy, pick, random_configs, register_search, unmeasured



@register_search
class EvolutionarySearch(SearchStrategy):
    """MetaSchedule-style evolution of a population scored by the cost model."""

    name: ClassVar[str] = "evolutionary"

    def __init__(self, settings: SearchSettings | None = None, *, population: int = 64, generations: int = 4,
                 init_measured: int = 8) -> None:
        super().__init__(settings)
        self.population = population
        self.generations = generations
        self.init_measured = init_measured

    def _random(self, job: Job, count: int) -> list[Config]:
        return random_configs(job, count, self.rng)

    def propose(self, job: Job, n: int, predict: Predict) -> list[Config]:
        measured = sorted(((c, r) for c, r in job.measured.values() if r.ok), key=lambda cr: cr[1].median_s)
        parents = [c for c, _ in measured[: self.init_measured]]
        population = list({c.key: c for c in parents + self._random(job, self.population - len(parents))}.values())
        if not population:
            return []
        for _ in range(self.generations):
            scores = np.nan_to_num(np.asarray(predict(population), dtype=float), nan=0.0)
            # parents by rank: the best predicted are mutated most often
            weights = 1.0 / (1.0 + np.argsort(np.argsort(scores, kind="stable"), kind="stable"))
            weights /= weights.sum()
            children = []
            for i in self.rng.choice(len(population), size=self.population, p=weights):
                child = job.space.mutate(population[int(i)], self.rng)
                if child is not None:
                    children.append(child)
            merged = list({c.key: c for c in population + children}.values())
            merged_scores = np.nan_to_num(np.asarray(predict(merged), dtype=float), nan=0.0)
            order = np.argsort(merged_scores, kind="stable")[: self.population]
            population = [merged[i] for i in order]
        fresh = unmeasured(job, population)
        explore = random_configs(job, 8, self.rng)  # the epsilon-greedy share: random configs of the space
        candidates = unmeasured(job, fresh + explore)
        return pick(candidates, predict(candidates), n, self.rng, job)

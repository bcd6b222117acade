"""optuna's TPE sampler over a task's declared dimensions (define-by-run: strategy, backend, knobs).

Parameter names are conditional (``strategy``, ``<strategy>.backend``,
``<strategy>.<backend>.<knob>``) so TPE's groups keep the knobs of different
strategies apart.  optuna is imported when a TPE search is first prepared, and
its log level and warnings are set around each call only.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, ClassVar, Iterator, Mapping, Sequence

from strategies.ground.config import Config

from ..space import TaskSpace
from .base import Job, Predict, Result, SearchStrategy, pick, random_configs, register_search, unmeasured


@contextlib.contextmanager
def quiet_optuna() -> Iterator[Any]:
    """optuna with its INFO logs and experimental/deprecation warnings off, restored afterwards."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield optuna
    finally:
        optuna.logging.set_verbosity(verbosity)


def _params(space: TaskSpace, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """optuna params and distributions naming one config."""
    import optuna

    s, b = config["strategy"], config["backend"]
    params: dict[str, Any] = {"strategy": s, f"{s}.backend": b}
    dists: dict[str, Any] = {
        "strategy": optuna.distributions.CategoricalDistribution(list(space.strategies)),
        f"{s}.backend": optuna.distributions.CategoricalDistribution(space.strategies[s][1]),
    }
    flat = space.values_of(config)
    for d in space.dimensions(s, b):
        if d.name in flat and flat[d.name] in d.values:
            params[f"{s}.{b}.{d.name}"] = flat[d.name]
            dists[f"{s}.{b}.{d.name}"] = optuna.distributions.CategoricalDistribution(list(d.values))
    return params, dists


@register_search
class TPESearch(SearchStrategy):
    """Each round asks TPE for a pool of configs, adds random configs and neighbours of the best measured
    one, ranks the pool with the cost model and measures the best (and one explorer)."""

    name: ClassVar[str] = "tpe"

    def prepare(self, job: Job) -> None:
        with quiet_optuna() as optuna:
            sampler = optuna.samplers.TPESampler(seed=self.settings.seed, n_startup_trials=8, multivariate=True,
                                                 group=True)
            study = optuna.create_study(sampler=sampler, direction="minimize")
        job.state[self.name] = {"study": study, "asked": {}}
        for cfg, res in job.measured.values():
            self._tell_known(job, cfg, res)

    def _state(self, job: Job) -> dict[str, Any]:
        if self.name not in job.state:
            self.prepare(job)
        return job.state[self.name]

    def _tell_known(self, job: Job, config: Config, res: Result) -> None:
        with quiet_optuna() as optuna:
            try:
                params, dists = _params(job.space, config)
                state = optuna.trial.TrialState.COMPLETE if res.ok else optuna.trial.TrialState.FAIL
                value = math.log(res.median_s) if res.ok else None
                self._state(job)["study"].add_trial(
                    optuna.trial.create_trial(params=params, distributions=dists, value=value, state=state))
            except (ValueError, KeyError):  # a stored config outside today's space: keep it out of TPE
                pass

    def propose(self, job: Job, n: int, predict: Predict) -> list[Config]:
        state = self._state(job)
        study, asked = state["study"], state["asked"]
        space = job.space
        pool: list[Config] = []
        with quiet_optuna() as optuna:
            for _ in range(self.settings.pool_size):
                trial = study.ask()
                s = trial.suggest_categorical("strategy", list(space.strategies))
                b = trial.suggest_categorical(f"{s}.backend", space.strategies[s][1])
                values = {d.name: trial.suggest_categorical(f"{s}.{b}.{d.name}", list(d.values))
                          for d in space.dimensions(s, b)}
                cfg = space.make_config(s, b, values)
                if cfg is None or cfg.key in job.measured or cfg.key in asked:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    continue
                asked[cfg.key] = trial
                pool.append(cfg)
            # random configs of the space join the pool: exploration beyond TPE's good region (and
            # something to measure when every ask repeats a measured config) ...
            # and one-step neighbours of the best measured config (local refinement the cost model ranks)
            extra = random_configs(job, max(4, self.settings.pool_size // 8), self.rng)
            best = min(((c, r) for c, r in job.measured.values() if r.ok), key=lambda cr: cr[1].median_s,
                       default=None)
            if best is not None:
                extra += [m for m in (space.mutate(best[0], self.rng) for _ in range(self.settings.pool_size // 4))
                          if m is not None]
            candidates = unmeasured(job, pool + extra)
            chosen = pick(candidates, predict(candidates), n, self.rng, job) if candidates else []
            keep = {c.key for c in chosen}
            for cfg in pool:  # asks not measured this round are closed; TPE may ask them again
                if cfg.key not in keep:
                    study.tell(asked.pop(cfg.key), state=optuna.trial.TrialState.FAIL)
        return chosen

    def notify(self, job: Job, configs: Sequence[Config], results: Sequence[Result]) -> None:
        state = self._state(job)
        with quiet_optuna() as optuna:
            for cfg, res in zip(configs, results):
                trial = state["asked"].pop(cfg.key, None)
                if trial is None:
                    self._tell_known(job, cfg, res)
                elif res.ok:
                    state["study"].tell(trial, math.log(res.median_s))
                else:
                    state["study"].tell(trial, state=optuna.trial.TrialState.FAIL)
            for key in list(state["asked"]):  # proposed but never measured (the budget ran out)
                state["study"].tell(state["asked"].pop(key), state=optuna.trial.TrialState.FAIL)

"""``python -m bench --tune``: tune every suite model into the bench database (resumable)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Sequence

from . import models

log = logging.getLogger(__name__)

ALL_BATCH_SIZES = (1, 64, 1024, 10_000, 100_000)


def batch_sizes_for(name: str, wanted: Sequence[int] = ALL_BATCH_SIZES) -> tuple[int, ...]:
    """The batch sizes the suite uses for ``name`` (capped for the models with the widest rows; only the model's
    own sizes for the models that have them, the pipelines)."""
    spec = models.SPECS[name]
    return tuple(b for b in wanted if (spec.max_batch is None or b <= spec.max_batch)
                 and (spec.batch_sizes is None or b in spec.batch_sizes))


def fallback_cost_model(db: str):
    """A ``cost_model.CostModel`` that predicts with the device's learned model, falling back to the heuristic
    model (and staying there) on its first error."""
    from cost_model import CostModel, HeuristicCostModel
    from cost_model.tuning import for_device
    from tuner.device import current_device

    class _Fallback(CostModel):
        kind = "bench-fallback"

        def __init__(self) -> None:
            self.fallback = HeuristicCostModel()
            self.failed: str | None = None
            self._db = self.primary = None
            try:
                import records

                self._db = records.open_database(db)
                self.primary = for_device(self._db, current_device())
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)

        def _fail(self, exc: BaseException) -> None:
            self.failed = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("cost model unusable (%s); ranking with the heuristic model", self.failed)
            self.primary = None

        def predict(self, candidates):  # noqa: ANN001, ANN201
            if self.primary is not None:
                try:
                    return self.primary.predict(candidates)
                except Exception as exc:  # noqa: BLE001
                    self._fail(exc)
            return self.fallback.predict(candidates)

        def update(self, candidates, latencies):  # noqa: ANN001, ANN201
            self.fallback.update(candidates, latencies)
            if self.primary is not None:
                try:
                    self.primary.update(candidates, latencies)
                except Exception as exc:  # noqa: BLE001
                    self._fail(exc)
            return self

        def fit(self, candidates, latencies):  # noqa: ANN001, ANN201
            return self.update(candidates, latencies)

        @property
        def n_trials(self) -> int:
            return self.primary.n_trials if self.primary is not None else self.fallback.n_trials

        def _payload(self):  # noqa: ANN202 - never persisted
            raise TypeError("not persisted")

        @classmethod
        def _from_payload(cls, meta, parts):  # noqa: ANN001, ANN206
            raise TypeError("not persisted")

        def close(self) -> None:
            if self.primary is not None:
                try:
                    self.primary.save()
                except Exception as exc:  # noqa: BLE001
                    self._fail(exc)
            if self._db is not None:
                self._db.close()
                self._db = None

    return _Fallback()


def tune_models(names: Sequence[str], *, db: str, cache_dir: Path, batch_sizes: Sequence[int],
                time_budget: float | None, threads: int | None, trials: int | None = None, say: Callable[[str], None] = print) -> dict[str, float]:
    """Tune each model with ``tuner.tune`` (configs already in ``db`` are not measured again); seconds per model."""
    import tuner
    from strategies.ground.errors import UnsupportedModelError

    spent = {}
    for i, name in enumerate(names, 1):
        m = models.load(name, cache_dir)
        sizes = batch_sizes_for(name, batch_sizes)
        say(f"[{i}/{len(names)}] tuning {name} ({m.spec.description}) at batch sizes {', '.join(map(str, sizes))}, "
            + (f"budget {time_budget:.0f} s" if time_budget else f"at most {trials} trials"))
        t = time.monotonic()
        ranker = fallback_cost_model(db)
        try:
            report = tuner.tune(m.model, m.X, db=db, batch_sizes=sizes, time_budget=time_budget, trials=trials,
                                threads=threads, progress=True, cost_model=ranker)
        except UnsupportedModelError as exc:  # e.g. the string-column pipelines, until tunebird converts them
            say(f"    skipped: tunebird cannot compile it: {str(exc).splitlines()[0][:200]}")
            continue
        finally:
            ranker.close()
        spent[name] = time.monotonic() - t
        speed = ", ".join(f"{b}: {s:.2f}x" for b, s in sorted(report.speedup.items()))
        if ranker.failed:
            say(f"    note: the cost model failed ({ranker.failed}); the heuristic model took over")
        say(f"    {report.trials_measured} new trials in {spent[name]:.0f} s; tuned vs untuned {speed or '-'}")
    return spent


def prebuild_peers(names: Sequence[str], *, cache_dir: Path, threads: int, skip: Sequence[str] = (),
                   say: Callable[[str], None] = print) -> None:
    """Create Hummingbird's environment and compile and cache the Treelite libraries (gcc takes minutes for the
    large forests) and the lleaves libraries of the LightGBM models (LLVM takes seconds to minutes), so that the
    suite's run times the predictors rather than installers and compilers."""
    from .peers.hummingbird import check_venv, create_venv

    if "hummingbird" not in skip and check_venv():
        failure = create_venv(say=say)
        say(f"hummingbird: {failure or check_venv() or 'environment ready'}")
    arrays = [n for n in names if not models.SPECS[n].frame]
    if "treelite" not in skip:
        _prebuild("treelite", arrays, cache_dir=cache_dir, threads=threads, say=say, cached=_treelite_cached)
    if "lleaves" not in skip:
        _prebuild("lleaves", [n for n in arrays if models.SPECS[n].family == "lightgbm"], cache_dir=cache_dir,
                  threads=threads, say=say, cached=_lleaves_cached)


def _treelite_cached(name: str, cache_dir: Path) -> bool:
    from .peers.treelite import library_path

    return library_path(models.model_path(name, cache_dir), cache_dir).exists()


def _lleaves_cached(name: str, cache_dir: Path) -> bool:
    from .peers.lleaves import cache_paths, model_text

    return cache_paths(model_text(models.load_native(name, cache_dir)), name, cache_dir)[1].exists()


def _prebuild(peer_name: str, names: Sequence[str], *, cache_dir: Path, threads: int, say: Callable[[str], None],
              cached: Callable[[str, Path], bool]) -> None:
    """Run the peer's ``prepare`` (which compiles and caches its library) for each model not ``cached`` yet."""
    from .peers import get
    from .peers.base import Context, NotApplicable

    peer = get(peer_name)
    if peer.available():
        say(f"{peer_name}: {peer.available()}; nothing to prebuild")
        return
    for name in names:
        t = time.monotonic()
        try:
            if cached(name, cache_dir):
                continue
            peer.prepare(name, Context(threads=threads, db="", cache_dir=Path(cache_dir), method="predict"))
            say(f"{peer_name}: compiled {name} in {time.monotonic() - t:.0f} s")
        except NotApplicable as exc:
            say(f"{peer_name}: {name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the suite reports it properly; here it is only a head start
            say(f"{peer_name}: {name} failed to compile: {type(exc).__name__}: {exc}"[:300])

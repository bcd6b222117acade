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


class FallbackRanker:
    """The tuner's default ranker (the learned cost model); on its first error, the empirical ranker.

    The cost model is young: a bug in it should cost the suite its screening, not the tuning run.
    """

    def __init__(self, db: str):
        from tuner.device import current_device
        from tuner.tuning import EmpiricalRanker, default_ranker

        self.fallback = EmpiricalRanker()
        self.failed: str | None = None
        try:
            import records

            self._db = records.open_database(db)
            self.primary = default_ranker(self._db, current_device())
        except Exception as exc:  # noqa: BLE001
            self._db, self.primary = None, None
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self.failed = f"{type(exc).__name__}: {exc}"[:200]
        log.warning("cost model unusable (%s); ranking with the empirical ranker", self.failed)
        self.primary = None

    def predict(self, task, configs, batch):  # noqa: ANN001, ANN201 - the tuner's Ranker protocol
        if self.primary is not None:
            try:
                return self.primary.predict(task, configs, batch)
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)
        return self.fallback.predict(task, configs, batch)

    def observe(self, task, batch, configs, results) -> None:  # noqa: ANN001
        self.fallback.observe(task, batch, configs, results)
        if self.primary is not None:
            try:
                self.primary.observe(task, batch, configs, results)
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)

    def close(self) -> None:
        if self.primary is not None and hasattr(self.primary, "save"):
            try:
                self.primary.save()
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)
        if self._db is not None:
            self._db.close()


def tune_models(names: Sequence[str], *, db: str, cache_dir: Path, batch_sizes: Sequence[int],
                time_budget: float | None, threads: int | None, trials: int | None = None, say: Callable[[str], None] = print) -> dict[str, float]:
    """Tune each model with ``tuner.tune`` (configs already in ``db`` are not measured again); seconds per model."""
    import tuner
    from strategies.errors import UnsupportedModelError

    spent = {}
    for i, name in enumerate(names, 1):
        m = models.load(name, cache_dir)
        sizes = batch_sizes_for(name, batch_sizes)
        say(f"[{i}/{len(names)}] tuning {name} ({m.spec.description}) at batch sizes {', '.join(map(str, sizes))}, "
            + (f"budget {time_budget:.0f} s" if time_budget else f"at most {trials} trials"))
        t = time.monotonic()
        ranker = FallbackRanker(db)
        try:
            report = tuner.tune(m.model, m.X, db=db, batch_sizes=sizes, time_budget=time_budget, trials=trials,
                                threads=threads, progress=True, ranker=ranker)
        except UnsupportedModelError as exc:  # e.g. the string-column pipelines, until tunebird converts them
            say(f"    skipped: tunebird cannot compile it: {str(exc).splitlines()[0][:200]}")
            continue
        finally:
            ranker.close()
        spent[name] = time.monotonic() - t
        speed = ", ".join(f"{b}: {s:.2f}x" for b, s in sorted(report.speedup.items()))
        if ranker.failed:
            say(f"    note: the cost model failed ({ranker.failed}); the empirical ranker took over")
        say(f"    {report.trials_measured} new trials in {spent[name]:.0f} s; tuned vs untuned {speed or '-'}")
    return spent


def prebuild_peers(names: Sequence[str], *, cache_dir: Path, threads: int, skip: Sequence[str] = (),
                   say: Callable[[str], None] = print) -> None:
    """Create Hummingbird's environment and compile and cache the Treelite libraries (gcc takes minutes for the
    large forests), so that the suite's run times the predictors rather than installers and the C compiler."""
    from .peers import get
    from .peers.base import Context, NotApplicable
    from .peers.hummingbird import check_venv, create_venv
    from .peers.treelite import library_path

    if "hummingbird" not in skip and check_venv():
        failure = create_venv(say=say)
        say(f"hummingbird: {failure or check_venv() or 'environment ready'}")
    if "treelite" in skip:
        return
    peer = get("treelite")
    if peer.available():
        say(f"treelite: {peer.available()}; nothing to prebuild")
        return
    for name in names:
        lib = library_path(models.model_path(name, cache_dir), cache_dir)
        if lib.exists():
            continue
        t = time.monotonic()
        try:
            peer.prepare(name, Context(threads=threads, db="", cache_dir=Path(cache_dir), method="predict"))
            say(f"treelite: compiled {name} in {time.monotonic() - t:.0f} s")
        except NotApplicable as exc:
            say(f"treelite: {name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the suite reports it properly; here it is only a head start
            say(f"treelite: {name} failed to compile: {type(exc).__name__}: {exc}"[:300])

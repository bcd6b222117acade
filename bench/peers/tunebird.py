"""tunebird itself: the untuned default (``tuner.compile``) and the tuned predictor (``tuner.load`` from the db)."""

from __future__ import annotations

import warnings

from .base import Context, Fn, NotApplicable, System


def plan_summary(predictor: object) -> str:
    """``batch 1: strategy@backend x threads; ...`` for a predictor's plans."""
    parts = []
    for plan in predictor.plans:
        cfgs = " + ".join(f"{c['strategy']}@{c['backend']} t{c['threads']}" for c in plan.configs())
        parts.append(f"{plan.tuned_batch or 'any'}: {cfgs}")
    return "; ".join(parts)


def unsupported(exc: Exception) -> NotApplicable:
    """tunebird's UnsupportedModelError as the cell's status (e.g. pipelines with string columns it cannot compile)."""
    lines = str(exc).strip().splitlines()
    return NotApplicable("unsupported", f"UnsupportedModelError: {lines[0][:200] if lines else ''}")


class _Tunebird(System):
    def warm_imports(self) -> None:
        import torch  # noqa: F401
        import tvm  # noqa: F401

        import strategies  # noqa: F401
        import tuner.api  # noqa: F401
        import tuner.tuning  # noqa: F401


class Untuned(_Tunebird):
    name = "tunebird-untuned"
    label = "tunebird untuned"

    def prepare(self, model_name: str, ctx: Context) -> tuple[Fn, str]:
        import tuner
        from strategies.ground.errors import UnsupportedModelError

        from .. import models

        try:
            p = tuner.compile(models.load_native(model_name, ctx.cache_dir), threads=ctx.threads)
        except UnsupportedModelError as exc:
            raise unsupported(exc) from exc
        p.warm_up()
        return getattr(p, ctx.method), plan_summary(p)

    def notes(self) -> str:
        return "tuner.compile(model, threads=threads): the default strategy by Hummingbird's depth rule, torch backend"


class Tuned(_Tunebird):
    name = "tunebird-tuned"
    label = "tunebird tuned"
    _predictor = None  # what prepare loaded, for cell_facts

    def prepare(self, model_name: str, ctx: Context) -> tuple[Fn, str]:
        import tuner
        from strategies.ground.errors import NotTunedError, UnsupportedModelError

        from .. import models

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = tuner.load(models.load_native(model_name, ctx.cache_dir), db=ctx.db, strict=True)
        except NotTunedError as exc:
            raise NotApplicable("not tuned", f"not tuned in {ctx.db}: run make bench-tune") from exc
        except UnsupportedModelError as exc:
            raise unsupported(exc) from exc
        p.warm_up()
        over = sorted({c["threads"] for plan in p.plans for c in plan.configs() if c["threads"] > ctx.threads})
        if over:
            raise NotApplicable("not tuned", f"tuned plans use {over} threads, more than {ctx.threads}; "
                                "tune with --threads")
        self._predictor = p
        return getattr(p, ctx.method), plan_summary(p)

    def cell_facts(self, batch: int) -> dict[str, object]:
        """The plan serving ``batch``: its tuned batch size and threads (the most any of its tasks uses)."""
        if self._predictor is None:
            return {}
        plan = self._predictor.plan_for(batch)
        return {"plan_batch": plan.tuned_batch, "threads": max(c["threads"] for c in plan.configs())}

    def notes(self) -> str:
        return ("tuner.load(model, db=...): the plans tuned on this machine (at most the same thread count; "
                "each call uses the plan tuned for the nearest batch size)")

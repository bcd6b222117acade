"""Call the original library's own prediction, with a given thread count (for benchmarks and checks)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def primary_method(methods: tuple[str, ...]) -> str:
    """The method a benchmark times: probabilities for classifiers, else predict / transform."""
    for m in ("predict_proba", "predict", "transform", "score_samples"):
        if m in methods:
            return m
    raise ValueError(f"no benchmarkable method among {methods}")


def native_function(model: Any, method: str, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """``X -> native model.<method>(X)``; XGBoost through ``inplace_predict``, LightGBM with ``num_threads``."""
    mod, name = type(model).__module__, type(model).__name__
    if mod.startswith("xgboost"):
        booster = model if name == "Booster" else model.get_booster()
        if threads:
            booster.set_param({"nthread": threads})
        if name == "Booster":
            kind = "margin" if method == "decision_function" else "value"
            return lambda X: booster.inplace_predict(X, predict_type=kind)
        if threads:
            model.set_params(n_jobs=threads)
        return getattr(model, method)
    if mod.startswith("lightgbm"):
        kwargs = {"num_threads": threads} if threads else {}
        if name == "Booster":
            raw = method == "decision_function"
            return lambda X: model.predict(X, raw_score=raw, **kwargs)
        fn = getattr(model, method)
        return lambda X: fn(X, **kwargs)
    if threads and hasattr(model, "n_jobs"):
        model.set_params(n_jobs=threads)
    return getattr(model, method)

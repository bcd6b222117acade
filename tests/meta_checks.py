"""The check every meta-estimator test runs: reference and a compiled backend against scikit-learn."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

import strategies
import tuner
from strategies import reference
from tolerances import assert_close, assert_same_labels, assert_scores

LABEL_METHODS = ("predict",)


def check(model: Any, X: np.ndarray, methods: Iterable[str], backend: str | None = "torch", *,
          labels: bool | None = None, float32_native: bool = False, **knobs: Any) -> strategies.ConvertedModel:
    """Every method in ``methods``: the reference within 1e-6 of scikit-learn, ``backend`` within the score
    tolerance; ``predict`` identical when ``labels`` (default: for classifiers), else within tolerance."""
    conv = strategies.convert(model)
    labels = conv.head.task == "classifier" if labels is None else labels
    pred = tuner.compile(model, backend=backend, **knobs) if backend is not None else None
    for method in methods:
        want = getattr(model, method)(X)
        ref = reference.predict(conv, X, method)
        got = getattr(pred, method)(X) if pred is not None else None
        what = f"{type(model).__name__}.{method}"
        if method in LABEL_METHODS and labels:
            assert_same_labels(ref, want, what + " reference")
            if got is not None:
                assert_same_labels(got, want, f"{what} {backend}")
        else:
            assert_close(ref, want, float32_native=float32_native, what=what + " reference")
            if got is not None:
                assert_scores(got, want, what=f"{what} {backend}")
    return conv

"""The hidden-from-tuning check: a tuned winner's outputs equal the native model's on rows the tuner never saw.

Each zoo tree model (NaN, +-inf, exact thresholds, categorical and zero-as-missing
splits) is tuned on the TensorIR backend, whose strategies are the generated
kernels, with four trials at batch sizes 1 and 256.  The predictor
``tuner.load`` returns is then run on fresh rows drawn with another seed, with
NaN, infinities and values on and beside the model's thresholds, at the tuned
batch sizes and at sizes between them.  Tolerance as in the conformance suite:
labels identical, scores within 1e-5 relative to the output's magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest

import strategies
import tuner
from strategies.sampling import sample_inputs
from tolerances import assert_same_labels, assert_scores
from tuner.measure import MeasureSettings
from zoo import ZOO, data

FAST = MeasureSettings(warmup=1, min_repeats=3, min_seconds=0.02, timeout_s=120)
MODELS = ["xgb_binary_nan", "xgb_categorical", "lgb_multiclass_zero_missing",
          "sk_hist_gradient_boosting_cat", "sk_decision_tree_deep"]


@pytest.mark.parametrize("name", MODELS)
def test_tuned_winner_matches_native_on_rows_never_seen(name: str, tmp_path) -> None:
    model = ZOO[name]()
    conv = strategies.convert(model)
    special = dict(nan=conv.input.allow_nan, inf=conv.input.allow_inf)
    seen = sample_inputs(conv, 300, seed=1, **special)
    db = f"sqlite:///{tmp_path / 'tune.db'}"
    report = tuner.tune(model, seen, db=db, batch_sizes=(1, 256), trials=4, progress=False,
                        backends=("tvm-tir",), measure_settings=FAST)
    assert report.trials_measured >= 1
    p = tuner.load(model, db=db, strict=True)
    assert p.tuned
    X = sample_inputs(conv, 700, seed=12345, **special)
    assert not any(np.array_equal(h, s, equal_nan=True) for h in X[:50] for s in seen)
    for method in conv.methods:
        want = native(model, method, X)
        for n in (1, 3, 255, 256, 700):
            got = getattr(p, method)(X[:n])
            if method == "predict" and (conv.head.task in ("classifier", "outlier") or conv.head.predict_argmax):
                assert_same_labels(got, want[:n], what=f"{name} {method} n={n}")
            else:
                assert_scores(got, want[:n], what=f"{name} {method} n={n}")


def native(model, method: str, X: np.ndarray) -> np.ndarray:
    kind = type(model).__module__
    if kind.startswith("xgboost") and type(model).__name__ == "Booster":
        return model.inplace_predict(X, predict_type="margin" if method == "decision_function" else "value")
    if kind.startswith("lightgbm") and type(model).__name__ == "Booster":
        return model.predict(X, raw_score=method == "decision_function")
    return getattr(model, method)(X)

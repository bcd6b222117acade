"""RidgeCV and LogisticRegressionCV, re-expressing the RidgeCV / LogisticRegressionCV cases of
Hummingbird's tests/test_sklearn_linear_converter.py.

Same data: X = 100x200 uniform float32 (np.random.seed(0)); RidgeCV targets
randint(2) / rand (both drawn after seed(0)), with and without intercept;
LogisticRegressionCV on 2 or 3 random classes (also shifted by 2), without
intercept.  Hummingbird checks predict (RidgeCV) and predict_proba
(LogisticRegressionCV); predict (labels, exactly) and decision_function are
checked too.

scikit-learn 1.9 has no ``multi_class`` and its liblinear solver refuses 3
classes, so the 3-class cases are re-expressed as what scikit-learn now offers
for them: "multi", "shifted_classes" and "no_intercept" (liblinear, then
one-vs-rest) use the default lbfgs solver (multinomial); "multi_ovr" is
OneVsRestClassifier(LogisticRegressionCV(solver="liblinear")), the same
one-vs-rest model multi_class="ovr" fitted; "multi_multin" is solver="sag"
(multinomial by default now).  "bi_no_intercept" keeps the liblinear solver
without intercept that Hummingbird's "no_intercept" case fitted.

Left out: nothing.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.base import is_classifier
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.multiclass import OneVsRestClassifier
from threadpoolctl import threadpool_limits

import tuner
from tolerances import assert_same_labels, assert_scores

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # scikit-learn 1.9 announces new defaults for l1_ratios and scoring; the current ones are the tested ones
    pytest.mark.filterwarnings("ignore:The default value:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The fitted attributes of LogisticRegressionCV:FutureWarning"),
]


@pytest.fixture(autouse=True)
def _one_thread():
    # BLAS threads only fight each other on a loaded 2-core machine (the suite runs with -n 2).
    with threadpool_limits(limits=1):
        yield


def features() -> np.ndarray:
    np.random.seed(0)
    return np.array(np.random.rand(100, 200), dtype=np.float32)


def ridge_target(kind: str) -> np.ndarray:
    np.random.seed(0)
    return np.random.randint(2, size=100) if kind == "int" else np.random.rand(100)


def class_target(num_classes: int, shift: int = 0) -> np.ndarray:
    features()  # Hummingbird draws the labels right after X, from the same seeded stream
    return np.random.randint(num_classes, size=100) + shift


def check(model, X, methods, backend):
    pred = tuner.compile(model, backend=backend)
    if is_classifier(model):
        assert_same_labels(pred.classes_, model.classes_, what="classes_")
    for method in methods:
        expected, actual = getattr(model, method)(X), getattr(pred, method)(X)
        what = f"{method} on {backend}"
        if method == "predict" and is_classifier(model):
            assert_same_labels(actual, expected, what=what)
        else:
            assert_scores(actual, expected, what=what)


@pytest.mark.parametrize("target,fit_intercept,backend", [
    ("int", True, "torch"), ("float", True, "torch"), ("float", False, "torch"), ("float", True, "torchscript"),
])
def test_ridge_cv(target, fit_intercept, backend):
    y = ridge_target(target)
    X = features()
    model = RidgeCV(fit_intercept=fit_intercept).fit(X, y)
    check(model, X, ["predict"], backend)


# id -> (number of classes, label shift, estimator)
LOGISTIC_CASES = {
    "bi": (2, 0, lambda: LogisticRegressionCV(solver="liblinear")),
    "multi": (3, 0, lambda: LogisticRegressionCV()),
    "shifted_classes": (3, 2, lambda: LogisticRegressionCV()),
    "multi_ovr": (3, 0, lambda: OneVsRestClassifier(LogisticRegressionCV(solver="liblinear"))),
    "multi_multin": (3, 0, lambda: LogisticRegressionCV(solver="sag")),
    "no_intercept": (3, 0, lambda: LogisticRegressionCV(fit_intercept=False)),
    "bi_no_intercept": (2, 0, lambda: LogisticRegressionCV(solver="liblinear", fit_intercept=False)),
}


@functools.lru_cache(maxsize=None)
def fitted_logistic(case: str):
    """Each case is fitted once (the lbfgs searches take a few seconds)."""
    num_classes, shift, make = LOGISTIC_CASES[case]
    X = features()
    return make().fit(X, class_target(num_classes, shift))


@pytest.mark.parametrize("case,backend", [*[(c, "torch") for c in LOGISTIC_CASES],
                                          ("bi", "torchscript"), ("multi", "torchscript")])
def test_logistic_regression_cv(case, backend):
    check(fitted_logistic(case), features(), ["predict", "predict_proba", "decision_function"], backend)

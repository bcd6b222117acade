"""KNeighborsClassifier / KNeighborsRegressor, re-expressing Hummingbird's tests/test_sklearn_kneighbors.py.

Hummingbird's cases, with its models and data: the classifier on breast cancer and iris (float32, fitted on
the first 60% of rows, scored on the rest or on the training rows), the regressor on diabetes, every
algorithm, weights and metric it tries, and the multi-output regressor on ``make_regression``.  Each checks
``predict_proba`` / ``predict`` of the compiled program (torch; a few on torchscript, inductor, tvm) and of
the reference against scikit-learn: scores within the score tolerance, labels identical.

Left out: the regressor on California housing (``fetch_california_housing`` downloads its data; this
suite runs offline), so the regressor cases use diabetes only; ``wminkowski`` (Hummingbird skips it for
scikit-learn > 1.0); ``seuclidean`` and ``mahalanobis`` are refused (checked below), not computed.

Beyond Hummingbird: exact ties (scikit-learn's heap keeps tied rows in its own order, not the lowest
indices), duplicated training rows with different labels, zero distances with distance weights, every
knob value, and the refusals.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from sklearn import datasets
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

import strategies
import tuner
from strategies import reference
from strategies.ground.errors import UnsupportedModelError
from tolerances import assert_same_labels, assert_scores

pytestmark = pytest.mark.filterwarnings("ignore:Parameter p is found in metric_params",
                                      "ignore:Some metric_kwargs have been passed")


@functools.lru_cache(maxsize=None)
def data(name: str) -> tuple[np.ndarray, np.ndarray]:
    loader = {"breast_cancer": datasets.load_breast_cancer, "iris": datasets.load_iris,
              "diabetes": datasets.load_diabetes}[name]
    X, y = loader(return_X_y=True)
    if name == "diabetes":
        X = X[0:441]
    return X.astype(np.float32), y


def check(model, X, backend: str = "torch", **knobs) -> None:
    """Compiled program and reference against scikit-learn, for every method the model has."""
    conv = strategies.convert(model)
    pred = tuner.compile(model, backend=backend, **knobs)
    methods = ("predict_proba", "predict") if hasattr(model, "classes_") else ("predict",)
    for method in methods:
        want = getattr(model, method)(X)
        for what, got in (("reference", reference.predict(conv, X, method)), (backend, getattr(pred, method)(X))):
            if method == "predict" and hasattr(model, "classes_"):
                assert_same_labels(got, want, what=f"{what} {method}")
            else:
                assert_scores(got, want, what=f"{what} {method}")


# id -> (n_neighbors, KNeighbors* parameters, score on the training rows)
CLASSIFIER_CASES = {
    "default": (5, dict(), False),
    "kdtree": (5, dict(algorithm="kd_tree"), False),
    "balltree": (5, dict(algorithm="ball_tree"), False),
    "auto": (5, dict(algorithm="auto"), False),
    "distance_weight": (3, dict(weights="distance"), False),
    "distance_weight_train_data": (3, dict(weights="distance"), True),
    "euclidean": (3, dict(metric="euclidean"), False),
    "manhattan": (3, dict(metric="manhattan", metric_params={}), False),
    "minkowski_p5": (3, dict(metric_params={"p": 5}), False),
}
HB_DEFAULTS = dict(algorithm="brute", weights="uniform", metric="minkowski", metric_params={"p": 2})


def hb_model(cls, n_neighbors, params, X, y):
    n_train = int(X.shape[0] * 0.6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(n_neighbors=n_neighbors, **{**HB_DEFAULTS, **params}).fit(X[:n_train], y[:n_train])
    return model, n_train


@pytest.mark.parametrize("dataset", ["breast_cancer", "iris"])
@pytest.mark.parametrize("case", CLASSIFIER_CASES)
def test_kneighbors_classifier(case, dataset):
    n_neighbors, params, on_train = CLASSIFIER_CASES[case]
    X, y = data(dataset)
    model, n_train = hb_model(KNeighborsClassifier, n_neighbors, params, X, y)
    check(model, X if on_train else X[n_train:])


REGRESSOR_CASES = {**CLASSIFIER_CASES, "minkowski_p3": (3, dict(metric_params={"p": 3}), False)}
del REGRESSOR_CASES["minkowski_p5"]


@pytest.mark.parametrize("case", REGRESSOR_CASES)
def test_kneighbors_regressor(case):
    n_neighbors, params, on_train = REGRESSOR_CASES[case]
    X, y = data("diabetes")
    model, n_train = hb_model(KNeighborsRegressor, n_neighbors, params, X, y[:441])
    check(model, X if on_train else X[n_train:])


@pytest.mark.parametrize("metric", ["seuclidean", "mahalanobis"])
def test_kneighbors_refused_metrics(metric):
    X, y = data("iris")
    params = {"V": np.var(X, axis=0)} if metric == "seuclidean" else {"VI": np.linalg.inv(np.cov(X.T))}
    model = KNeighborsClassifier(3, algorithm="brute", metric=metric, metric_params=params).fit(X, y)
    with pytest.raises(UnsupportedModelError, match=metric):
        tuner.compile(model, backend="torch")


@pytest.mark.parametrize("n_targets", [1, 2, 7])
def test_kneighbors_multioutput_regressor(n_targets):
    X, y = datasets.make_regression(n_samples=1000, n_features=10, n_informative=5, n_targets=n_targets,
                                    random_state=1, noise=0.5)
    check(KNeighborsRegressor().fit(X, y), X)


@pytest.mark.parametrize("backend", ["torchscript", "inductor", "tvm"])
def test_kneighbors_backends(backend):
    X, y = data("iris")
    model = KNeighborsClassifier(4, weights="distance", algorithm="brute").fit(X[::6], y[::6])
    # the heap's data-dependent replay builds on torch and torchscript only (tests/test_knn_selection.py):
    # elsewhere top-k must be asked for; and inductor fuses the exact form's long elementwise chains for
    # minutes: there torch's GEMM form (both refused unless asked for)
    knobs = {"torchscript": {}, "tvm": dict(selection="topk"), "inductor": dict(selection="topk", form="gemm")}[backend]
    check(model, X, backend, **knobs)


# --------------------------------------------------------------------------- beyond Hummingbird


def grid(n: int, seed: int) -> np.ndarray:
    """Small integers: distances tie exactly and every form computes them exactly."""
    return np.random.default_rng(seed).integers(-3, 4, size=(n, 3)).astype(np.float64)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("metric,params", [("euclidean", {}), ("manhattan", {}), ("minkowski", dict(p=3)),
                                           ("chebyshev", {}), ("cosine", {})])
def test_exact_ties(metric, params, weights):
    """Rows tied with the k-th distance: the heap keeps the ones scikit-learn's brute-force heap keeps."""
    Xt, Xq = grid(60, 0), grid(80, 1)
    y = np.arange(60) % 4  # tied rows carry different labels, so the choice shows
    for k in (3, 6):
        clf = KNeighborsClassifier(k, weights=weights, metric=metric, algorithm="brute", **params).fit(Xt, y)
        reg = KNeighborsRegressor(k, weights=weights, metric=metric, algorithm="brute", **params).fit(Xt, y * 1.5)
        if metric == "cosine":  # scikit-learn's argpartition picks among cosine ties: the reference only
            conv = strategies.convert(clf)
            assert_scores(reference.predict(conv, Xq, "predict_proba"), clf.predict_proba(Xq))
            continue
        check(clf, Xq)
        check(reg, Xq)


def test_heap_order_is_not_index_order():
    """Three rows at distance 5, then two at 1, k=3: scikit-learn keeps row 1, not row 0."""
    X = np.array([[5.0], [-5.0], [5.0], [1.0], [-1.0]])
    model = KNeighborsRegressor(3, algorithm="brute").fit(X, np.arange(5.0))
    assert set(model.kneighbors([[0.0]])[1][0]) == {1, 3, 4}
    check(model, np.array([[0.0]]))


def test_duplicated_rows_and_zero_distances():
    """Training rows repeated with other labels; queries on the training rows (zero distances)."""
    X = np.vstack([grid(40, 2)] * 3)
    y = np.r_[np.zeros(40), np.ones(40), np.full(40, 2)].astype(int)
    for weights in ("uniform", "distance"):
        model = KNeighborsClassifier(4, weights=weights, algorithm="brute").fit(X, y)
        check(model, X[:50])
        check(model, grid(50, 3))


@pytest.mark.parametrize("knobs", [dict(form="gemm"), dict(form="direct"), dict(tile=64), dict(selection="sort"),
                                   dict(selection="topk"), dict(form="direct", tile=64, selection="topk")])
def test_knobs(knobs):
    """Every formulation on data without ties (the sort / top-k selections break ties by index)."""
    X, y = data("iris")
    X = X + np.random.default_rng(0).normal(scale=1e-3, size=X.shape).astype(np.float32)
    check(KNeighborsClassifier(5, weights="distance", algorithm="brute").fit(X[::2], y[::2]), X, **knobs)
    check(KNeighborsRegressor(3, metric="manhattan").fit(X[::2], y[::2] * 0.5), X, **knobs)


def test_refusals():
    X, y = data("iris")
    for model, match in (
        (KNeighborsClassifier(weights=lambda d: d).fit(X, y), "weights"),
        (KNeighborsClassifier(metric=lambda a, b: 0.0, algorithm="brute").fit(X, y), "callable"),
        (KNeighborsClassifier().fit(X, np.column_stack([y, y])), "multi-output"),
    ):
        with pytest.raises(UnsupportedModelError, match=match):
            tuner.compile(model, backend="torch")
    model = KNeighborsClassifier().fit(X, y)
    bad = X[:3].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        tuner.compile(model, backend="torch").predict(bad)

"""Naive Bayes classifiers: GaussianNB, BernoulliNB, MultinomialNB, ComplementNB, CategoricalNB.

Re-expresses Hummingbird's ``tests/test_sklearn_nb_converter.py``: every BernoulliNB, MultinomialNB and
GaussianNB case (two and three classes, ``alpha``, ``binarize``, ``fit_prior``, ``class_prior`` /
``priors``, ``var_smoothing``, shifted labels) with the same data (``np.random.seed(0)``; 100 rows of 200
float32 features), checking ``predict_proba`` and ``predict``.  Its ``*_tvm`` variants (the same models on
TVM) are here one ``tvm`` case per classifier kind.  Added: ComplementNB (``norm``), CategoricalNB
(``min_categories``, categories never seen in training, refused values), the ``gemm`` form of the
Gaussian quadratic, torchscript, and the refusals.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.naive_bayes import BernoulliNB, CategoricalNB, ComplementNB, GaussianNB, MultinomialNB

import strategies
import tuner
from strategies import reference
from strategies.ground.errors import UnsupportedModelError
from tolerances import assert_same_labels, assert_scores


def hb_data(num_classes: int, labels_shift: int = 0, binary_x: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Hummingbird's data: seed 0, X first (200 columns, ints in {0, 1} or uniform), then the labels."""
    np.random.seed(0)
    X = np.random.randint(2, size=(100, 200)) if binary_x else np.random.rand(100, 200)
    X = np.array(X, dtype=np.float32)
    y = np.random.randint(num_classes, size=100) + labels_shift
    return X, y


def hb_prior() -> np.ndarray:
    np.random.seed(0)
    return np.random.rand(3)


def check(model, X: np.ndarray, backend: str = "torch", **knobs) -> None:
    conv = strategies.convert(model)
    assert_scores(reference.predict(conv, X, "predict_proba"), model.predict_proba(X), what="reference")
    assert_same_labels(reference.predict(conv, X, "predict"), model.predict(X), what="reference")
    p = tuner.compile(model, backend=backend, **knobs)
    assert_scores(p.predict_proba(X), model.predict_proba(X), what=f"{backend} predict_proba")
    assert_same_labels(p.predict(X), model.predict(X), what=f"{backend} predict")


# --------------------------------------------------------------------------- Hummingbird's cases

BERNOULLI = {
    "bi": (2, {}),
    "multi": (3, {}),
    "multi_alpha": (3, dict(alpha=0.5)),
    "multi_binarize": (3, dict(binarize=0.5)),
    "multi_fit_prior": (3, dict(fit_prior=True)),
    "multi_class_prior": (3, dict(class_prior="hb")),
    "multi_labels_shift": (3, dict(labels_shift=3)),
}


def fit_bernoulli(num_classes, alpha=1.0, binarize=None, fit_prior=False, class_prior=None, labels_shift=0):
    prior = hb_prior() if class_prior == "hb" else None
    X, y = hb_data(num_classes, labels_shift, binary_x=binarize is None)
    model = BernoulliNB(alpha=alpha, binarize=binarize, fit_prior=fit_prior, class_prior=prior).fit(X, y)
    return model, X


@pytest.mark.parametrize("case", BERNOULLI)
def test_hb_bernoulli(case):
    k, kw = BERNOULLI[case]
    check(*fit_bernoulli(k, **kw))


MULTINOMIAL = {k: v for k, v in BERNOULLI.items() if k != "multi_binarize"}


def fit_multinomial(num_classes, alpha=1.0, fit_prior=False, class_prior=None, labels_shift=0):
    prior = hb_prior() if class_prior == "hb" else None
    X, y = hb_data(num_classes, labels_shift)
    return MultinomialNB(alpha=alpha, fit_prior=fit_prior, class_prior=prior).fit(X, y), X


@pytest.mark.parametrize("case", MULTINOMIAL)
def test_hb_multinomial(case):
    k, kw = MULTINOMIAL[case]
    check(*fit_multinomial(k, **kw))


GAUSSIAN = {
    "bi": (2, {}),
    "multi": (3, {}),
    "multi_class_prior": (3, dict(priors="hb")),
    "multi_alpha": (3, dict(var_smoothing=1e-2)),
    "multi_labels_shift": (3, dict(labels_shift=3)),
}


def fit_gaussian(num_classes, priors=None, var_smoothing=1e-9, labels_shift=0):
    if priors == "hb":
        priors = hb_prior()
        priors = priors / np.sum(priors)
    X, y = hb_data(num_classes, labels_shift)
    return GaussianNB(priors=priors, var_smoothing=var_smoothing).fit(X, y), X


@pytest.mark.parametrize("form", ["direct", "gemm"])
@pytest.mark.parametrize("case", GAUSSIAN)
def test_hb_gaussian(case, form):
    k, kw = GAUSSIAN[case]
    model, X = fit_gaussian(k, **kw)
    check(model, X, form=form)
    check(model, X.astype(np.float64), form=form)


@pytest.mark.parametrize("kind", ["bernoulli_binarize", "multinomial", "gaussian"])
def test_hb_tvm(kind):
    model, X = {"bernoulli_binarize": lambda: fit_bernoulli(3, binarize=0.5), "multinomial": lambda: fit_multinomial(3),
                "gaussian": lambda: fit_gaussian(3)}[kind]()
    check(model, X, "tvm")


# --------------------------------------------------------------------------- beyond Hummingbird


@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("k", [2, 3])
def test_complement(k, norm):
    X, y = hb_data(k)
    model = ComplementNB(norm=norm).fit(X, y)
    check(model, X)
    check(model, X.astype(np.float64), "torchscript")


def categorical_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(0, 3, 150), rng.integers(0, 5, 150), rng.integers(0, 2, 150)]).astype(float)
    return X, rng.integers(0, 3, 150)


def test_categorical():
    X, y = categorical_data()
    check(CategoricalNB().fit(X, y), X)


def test_categorical_unseen_categories():
    """``min_categories`` gives each feature categories no training row had: they predict with their smoothed
    (unseen) probabilities, as in scikit-learn."""
    X, y = categorical_data(1)
    model = CategoricalNB(min_categories=[4, 6, 3], alpha=0.5).fit(X, y)
    grid = np.array(np.meshgrid(np.arange(4), np.arange(6), np.arange(3))).reshape(3, -1).T.astype(float)
    check(model, grid)
    check(model, grid, "torchscript")


def test_categorical_refuses_values_it_cannot_reproduce():
    X, y = categorical_data()
    model = CategoricalNB().fit(X, y)
    p = tuner.compile(model, backend="torch")
    with pytest.raises(IndexError):  # scikit-learn fails on a category beyond those it was fitted with
        model.predict(np.array([[3.0, 0.0, 0.0]]))
    for bad in ([3.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, np.nan]):
        with pytest.raises(ValueError, match="column"):
            p.predict(np.array([bad]))


def test_refuses_nan_and_inf():
    model, X = fit_gaussian(2)
    p = tuner.compile(model, backend="torch")
    for bad in (np.nan, np.inf):
        Z = X[:3].astype(np.float64)
        Z[1, 5] = bad
        with pytest.raises(ValueError):
            model.predict(Z)
        with pytest.raises(ValueError):
            p.predict(Z)


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
def test_refuses_infinite_log_probabilities():
    X, y = hb_data(2, binary_x=True)
    X[:, 0] = 0  # feature 0 never occurs: log(0) with alpha=0
    model = MultinomialNB(alpha=0.0, force_alpha=True).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="non-finite"):
        strategies.convert(model)

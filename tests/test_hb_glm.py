"""Generalized linear regressors and ``SGDClassifier(loss="modified_huber")`` probabilities.

Re-expresses the GLM and modified_huber cases of Hummingbird's ``tests/test_sklearn_linear_converter.py``
(``test_tweedie_regressor``, ``test_poisson_regressor``, ``test_gamma_regressor``, ``test_modified_huber``,
``test_modified_huber2``, ``test_modified_huber_multi``; the same models, data and inputs; the SGD fits
get ``random_state=0`` so that they are reproducible), checking ``predict`` / ``predict_proba`` /
``decision_function``, and adds the Tweedie powers and links, clipped scores, multiclass rows whose
clipped probabilities are all zero, torchscript and tvm, and the refusals.  The other SGD cases of that
file (hinge, squared_hinge, huber, perceptron, ... ``predict``) are plain linear classifiers, outside
this file.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import GammaRegressor, PoissonRegressor, SGDClassifier, TweedieRegressor

import strategies
import tuner
from strategies import reference
from strategies.ground.errors import InvalidConfigError
from strategies.ir import PostTransform
from tolerances import assert_same_labels, assert_scores

GLM_X = np.array([[1, 2], [2, 3], [3, 4], [4, 3]], dtype=np.float64)
GLM_INPUTS = np.array([[1, 1], [3, 4]], dtype=np.float64)
HUBER_X = np.array([[-0.5, -1], [-1, -1], [-0.1, -0.1], [0.1, -0.2], [0.5, 1], [1, 1], [0.1, 0.1], [-0.1, 0.2]])
HUBER_INPUTS = np.array([[-1, -1], [1, 1], [-0.2, 0.1], [0.2, -0.1]], dtype=np.float64)


def check_regressor(model, X: np.ndarray, backend: str = "torch") -> None:
    expected = model.predict(X)
    conv = strategies.convert(model)
    assert_scores(reference.predict(conv, X, "predict"), expected, what="reference")
    assert_scores(tuner.compile(model, backend=backend).predict(X), expected, what=backend)


def check_classifier(model, X: np.ndarray, backend: str = "torch") -> None:
    conv = strategies.convert(model)
    p = tuner.compile(model, backend=backend)
    for method in ("predict_proba", "decision_function"):
        assert_scores(reference.predict(conv, X, method), getattr(model, method)(X), what=f"reference {method}")
        assert_scores(getattr(p, method)(X), getattr(model, method)(X), what=f"{backend} {method}")
    assert_same_labels(p.predict(X), model.predict(X), what=backend)


@pytest.mark.parametrize("model, y", [
    (TweedieRegressor(), [2, 3.5, 5, 5.5]),
    (PoissonRegressor(), [12, 17, 22, 21]),
    (GammaRegressor(), [19, 26, 33, 30]),
], ids=["tweedie", "poisson", "gamma"])
def test_hb_glm(model, y):
    model.fit(GLM_X, y)
    check_regressor(model, GLM_INPUTS)
    check_regressor(model, GLM_X)


@pytest.mark.parametrize("link", ["auto", "identity", "log"])
@pytest.mark.parametrize("power", [0, 1, 1.5, 2, 3])
def test_tweedie_powers_and_links(power, link):
    rng = np.random.default_rng(int(power * 10) + len(link))
    X = rng.uniform(0.5, 2.0, size=(60, 3))
    y = 5 + X @ np.array([1.0, 0.5, -0.3]) + rng.uniform(0, 0.5, size=60)
    model = TweedieRegressor(power=power, link=link, alpha=0.1, max_iter=300).fit(X, y)
    expected_kind = "exp" if (link == "log" or (link == "auto" and power > 0)) else "identity"
    assert strategies.convert(model).graph.post_transform.kind == expected_kind
    check_regressor(model, X)


def test_glm_other_backends():
    model = PoissonRegressor().fit(GLM_X, [12, 17, 22, 21])
    for backend in ("torchscript", "tvm"):
        check_regressor(model, GLM_X, backend)


def test_glm_refuses_nan():
    p = tuner.compile(GammaRegressor().fit(GLM_X, [19, 26, 33, 30]), backend="torch")
    with pytest.raises(ValueError, match="NaN"):
        p.predict(np.array([[1.0, np.nan]]))


# --------------------------------------------------------------------------- modified_huber


def huber(y) -> SGDClassifier:
    return SGDClassifier(loss="modified_huber", max_iter=1000, tol=1e-3, random_state=0).fit(HUBER_X, y)


def test_hb_modified_huber():
    check_classifier(huber([1, 1, 1, 1, 2, 2, 2, 2]), HUBER_INPUTS)


def test_hb_modified_huber2():
    check_classifier(huber([1, 1, 1, 1, 2, 2, 2, 2]), HUBER_X)


def test_hb_modified_huber_multi():
    model = huber([0, 1, 1, 1, 2, 2, 2, 2])
    check_classifier(model, HUBER_INPUTS)
    check_classifier(model, HUBER_X)


def test_modified_huber_clipping_and_all_zero_rows():
    """Scores beyond +-1 are clipped; rows whose clipped probabilities are all 0 become uniform."""
    model = huber([0, 1, 1, 1, 2, 2, 2, 2])
    rng = np.random.default_rng(1)
    X = np.vstack([HUBER_X, rng.normal(scale=4.0, size=(200, 2))])
    model.intercept_ = model.intercept_ - (np.median(model.decision_function(X).max(axis=1)) + 1.0)  # half the rows:
    # every score below -1
    scores = model.decision_function(X)
    assert np.any(np.all(scores <= -1, axis=1)) and np.any(np.abs(scores) > 1)
    assert np.any(np.all(model.predict_proba(X) == 1 / 3, axis=1))
    check_classifier(model, X)
    check_classifier(model, X, "torchscript")


def test_modified_huber_binary_clipping():
    model = huber([1, 1, 1, 1, 2, 2, 2, 2])
    X = np.vstack([HUBER_X, 10 * HUBER_X, 0.01 * HUBER_X])
    check_classifier(model, X)


def test_modified_huber_tvm():
    check_classifier(huber([0, 1, 1, 1, 2, 2, 2, 2]), HUBER_X, "tvm")


def test_modified_huber_reference_rule():
    pt = PostTransform("modified_huber")
    raw = np.array([[-2.0, -1.0, -5.0], [0.0, 0.5, 3.0], [-1.0, 1.0, -1.0]])
    out = reference.apply_post_transform(pt, raw)
    np.testing.assert_array_equal(out[0], [1 / 3] * 3)
    np.testing.assert_allclose(out[1], np.array([0.5, 0.75, 1.0]) / 2.25)
    np.testing.assert_array_equal(out[2], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(reference.apply_post_transform(pt, np.array([[-3.0], [0.2]])), [[0.0], [0.6]])


def test_modified_huber_refused_by_tir():
    """The TensorIR linear kernel has no modified_huber epilogue: it refuses rather than computing it wrong."""
    with pytest.raises(InvalidConfigError, match="modified_huber"):
        tuner.compile(huber([0, 1, 1, 1, 2, 2, 2, 2]), backend="tvm-tir")

"""MLPClassifier and MLPRegressor: the ``mlp`` operator and its strategies.

Re-expresses Hummingbird's ``tests/test_sklearn_mlp_converter.py``: every classifier case (two and
three classes, shifted labels, the relu / tanh / logistic / identity activations) and every regressor
case, with the same models (``hidden_layer_sizes=(100, 100, 50)``) and data (``np.random.seed(0)``;
100 rows of 200 float32 features), checking ``predict_proba`` / ``predict``.  Its ``*_tvm`` classifier
variants are here the multiclass model on ``tvm`` (the other activations run the same ops) and a small
binary model on ``tvm``.  Added: every strategy and knob on torch, torchscript and inductor, multi-output and Poisson
regressors, multilabel classifiers (int64 indicator ``predict``), and the refusal of NaN.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

import strategies
import tuner
from strategies import reference
from strategies.ground.errors import UnsupportedModelError
from tolerances import assert_same_labels, assert_scores

CONFIGS = [
    ("mlp_fused", {}),
    ("mlp_fused", {"layout": "nk", "bias": "augmented"}),
    ("mlp_layers", {"layout": "nk"}),
]


def hb_data(num_classes: int | None, labels_shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hummingbird's data: seed 0, X first, then integer labels (or, for a regressor, uniform targets)."""
    np.random.seed(0)
    X = np.array(np.random.rand(100, 200), dtype=np.float32)
    y = np.random.rand(100) if num_classes is None else np.random.randint(num_classes, size=100) + labels_shift
    return X, y


def fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


@functools.lru_cache(maxsize=None)
def hb_classifier(num_classes: int, activation: str = "relu", labels_shift: int = 0):
    X, y = hb_data(num_classes, labels_shift)
    return fit(MLPClassifier(hidden_layer_sizes=(100, 100, 50), activation=activation), X, y), X


@functools.lru_cache(maxsize=None)
def hb_regressor(activation: str = "relu"):
    X, y = hb_data(None)
    return fit(MLPRegressor(hidden_layer_sizes=(100, 100, 50), activation=activation), X, y), X


def check_classifier(model, X: np.ndarray, backend: str = "torch", strategy: str | None = None, **knobs) -> None:
    conv = strategies.convert(model)
    assert_scores(reference.predict(conv, X, "predict_proba"), model.predict_proba(X), what="reference")
    p = tuner.compile(model, backend=backend, strategy=strategy, **knobs)
    what = f"{strategy} {knobs} @{backend}"
    assert_scores(p.predict_proba(X), model.predict_proba(X), what=what)
    assert_same_labels(p.predict(X), model.predict(X), what=what)


def check_regressor(model, X: np.ndarray, backend: str = "torch", strategy: str | None = None, **knobs) -> None:
    conv = strategies.convert(model)
    assert_scores(reference.predict(conv, X, "predict"), model.predict(X), what="reference")
    got = tuner.compile(model, backend=backend, strategy=strategy, **knobs).predict(X)
    assert_scores(got, model.predict(X), what=f"{strategy} {knobs} @{backend}")


# --------------------------------------------------------------------------- Hummingbird's cases

CLASSIFIERS = {
    "bi": (2, "relu", 0),
    "multi": (3, "relu", 0),
    "multi_shifted_labels": (3, "relu", 3),
    "multi_tanh": (3, "tanh", 0),
    "multi_logistic": (3, "logistic", 0),
    "multi_identity": (3, "identity", 0),
}


@pytest.mark.parametrize("case", CLASSIFIERS)
def test_hb_classifier(case):
    model, X = hb_classifier(*CLASSIFIERS[case])
    for strategy, knobs in CONFIGS:
        check_classifier(model, X, "torch", strategy, **knobs)
    check_classifier(model, X.astype(np.float64))


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_hb_regressor(activation):
    model, X = hb_regressor(activation)
    for strategy, knobs in CONFIGS:
        check_regressor(model, X, "torch", strategy, **knobs)


def test_hb_classifier_tvm():
    model, X = hb_classifier(*CLASSIFIERS["multi"])
    check_classifier(model, X, "tvm", "mlp_fused", bias="augmented")


# --------------------------------------------------------------------------- beyond Hummingbird


def small_data(n: int = 80, f: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, f))


def test_torchscript_inductor_tvm():
    X = small_data()
    model = fit(MLPClassifier((6, 4), activation="tanh", max_iter=50, random_state=0), X, X[:, 0] + X[:, 1] > 0)
    check_classifier(model, X, "torchscript", "mlp_layers")
    check_classifier(model, X, "tvm", "mlp_layers", layout="nk")
    check_classifier(model, X, "inductor", "mlp_fused", layout="nk")


def test_multi_output_regressor():
    X = small_data()
    y = np.column_stack([X[:, 0] + X[:, 1], X[:, 2] * X[:, 3]])
    model = fit(MLPRegressor(hidden_layer_sizes=(7,), activation="logistic", max_iter=80, random_state=0), X, y)
    assert model.predict(X).shape == (80, 2)
    for strategy, knobs in CONFIGS:
        check_regressor(model, X, "torch", strategy, **knobs)


def test_poisson_regressor():
    """``loss="poisson"``: the output activation is ``exp``."""
    X = small_data()
    model = fit(MLPRegressor(loss="poisson", hidden_layer_sizes=(5,), max_iter=80, random_state=0), X,
                np.exp(0.3 * X[:, 0]))
    assert model.out_activation_ == "exp"
    check_regressor(model, X)


@pytest.mark.parametrize("backend", ["torch", "tvm"])
def test_multilabel(backend):
    """Multilabel targets: ``predict`` is scikit-learn's int64 indicator matrix (probability > 0.5)."""
    X = small_data(120, 6)
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] * X[:, 4] > 0])
    model = fit(MLPClassifier((8,), max_iter=200, random_state=0), X, Y)
    assert model._label_binarizer.y_type_ == "multilabel-indicator"
    X[:3, 0] = 0.0  # rows near the 0.5 cut are where a tolerance would hide a wrong label: none here
    want = model.predict(X)
    assert want.dtype == np.int64 and want.shape == (120, 3) and 0 < want.mean() < 1
    p = tuner.compile(model, backend=backend)
    got = p.predict(X)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert_scores(p.predict_proba(X), model.predict_proba(X), what=f"multilabel @{backend}")
    np.testing.assert_array_equal(p.predict(X[:1]), want[:1])


def test_multilabel_member_refused():
    """A multilabel MLP inside a MultiOutputClassifier has no one label per row: refused by name."""
    from sklearn.multioutput import MultiOutputClassifier

    X = small_data()
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    inner = fit(MLPClassifier((4,), max_iter=20, random_state=0), X, Y)
    model = MultiOutputClassifier(MLPClassifier((4,), max_iter=20, random_state=0))
    model.estimators_ = [inner]
    model.classes_ = [np.array([0, 1])]
    model.n_features_in_ = X.shape[1]
    with pytest.raises(UnsupportedModelError, match="multilabel member"):
        strategies.convert(model)


def test_refuses_nan():
    model, X = hb_classifier(*CLASSIFIERS["bi"])
    p = tuner.compile(model, backend="torch")
    Z = X[:2].astype(np.float64)
    Z[0, 3] = np.nan
    with pytest.raises(ValueError):
        model.predict(Z)
    with pytest.raises(ValueError, match="NaN"):
        p.predict(Z)


def test_round_trip_and_summary():
    model, _ = hb_classifier(*CLASSIFIERS["multi_tanh"])
    conv = strategies.convert(model)
    op = conv.graph.ops[-1]
    assert op.kind == "mlp" and op.widths == (200, 100, 100, 50, 3) and op.post_transform.kind == "softmax"
    back = strategies.ir.from_bytes(strategies.ir.to_bytes(conv.graph))
    assert strategies.ir.content_hash(back) == strategies.ir.content_hash(conv.graph)

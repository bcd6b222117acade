"""Multi-output trees and forests, and trees fitted on one class, re-expressing the multi-output and
single-class cases of Hummingbird's tests/test_sklearn_decision_tree_converter.py.

Hummingbird's cases:

* ``test_tree_regressors_multioutput_regression``: DecisionTreeRegressor, ExtraTreesRegressor and
  RandomForestRegressor on ``make_regression(100 samples, 10 features, 5 informative, n_targets in
  {1, 2, 7})``, ``predict`` of the float32 data, for each tree formulation (gemm, tree_trav,
  perf_tree_trav: here ``gemm``, ``tree_traversal``, ``perfect_tree_traversal``; perf_tree_trav with
  ``max_depth=10``).  Hummingbird draws a random seed per case; here the seed is fixed (0) so that a
  failure reproduces.
* ``test_random_forest_implementation``: a RandomForestClassifier and a RandomForestRegressor
  (``n_estimators=1, max_depth=1``) fitted on one row (so on one class), for each formulation;
  Hummingbird checks which module it built, here ``predict`` / ``predict_proba`` are checked.
* ``*_classifier_single_node_tree_converter`` (gemm, tree_trav, perf_tree_trav): a one-tree forest
  fitted on one row of class 0; ``predict_proba``.

Left out: none of these.  (The other cases of that file are single-output and covered elsewhere; its
linear-converter sibling has no multi-output linear case.)

Added: multi-output classifiers (``predict``; ``predict_proba``, a list of arrays, is refused), single-class
trees and forests on many rows, inputs with NaN / inf / values at thresholds, and the TensorIR strategies
(``tiled_traversal``, ``quickscorer``) and TVM Relax on the same models.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn import datasets
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier

import strategies
import tuner
from strategies import reference
from strategies.ground.errors import UnsupportedModelError
from strategies.sampling import sample_inputs
from tolerances import assert_same_labels, assert_scores

TORCH_STRATEGIES = ("gemm", "tree_traversal", "perfect_tree_traversal")
REGRESSORS = {"DecisionTreeRegressor": DecisionTreeRegressor, "ExtraTreesRegressor": ExtraTreesRegressor,
              "RandomForestRegressor": RandomForestRegressor}


@functools.lru_cache(maxsize=None)
def regression(name: str, n_targets: int, max_depth: int | None):
    X, y = datasets.make_regression(n_samples=100, n_features=10, n_informative=5, n_targets=n_targets,
                                    random_state=0)
    return REGRESSORS[name](random_state=0, max_depth=max_depth).fit(X, y), X.astype("float32")


@pytest.mark.parametrize("strategy", TORCH_STRATEGIES)
@pytest.mark.parametrize("n_targets", [1, 2, 7])
@pytest.mark.parametrize("name", list(REGRESSORS))
def test_hb_tree_regressors_multioutput(name, n_targets, strategy):
    model, X = regression(name, n_targets, 10 if strategy == "perfect_tree_traversal" else None)
    got = tuner.compile(model, backend="torch", strategy=strategy).predict(X)
    assert_scores(got, model.predict(X), what=f"{name} x {n_targets} targets, {strategy}")


def one_row():
    rng = np.random.RandomState(0)
    X = np.array(rng.rand(1, 1), dtype=np.float32)
    return X, rng.randint(2, size=1)


@pytest.mark.parametrize("strategy", TORCH_STRATEGIES)
def test_hb_random_forest_implementation(strategy):
    X, y = one_row()
    clf = RandomForestClassifier(n_estimators=1, max_depth=1).fit(X, y)
    pred = tuner.compile(clf, backend="torch", strategy=strategy)
    assert_same_labels(pred.predict(X), clf.predict(X))
    assert_scores(pred.predict_proba(X), clf.predict_proba(X))
    reg = RandomForestRegressor(n_estimators=1, max_depth=1).fit(X, y)
    assert_scores(tuner.compile(reg, backend="torch", strategy=strategy).predict(X), reg.predict(X))


@pytest.mark.parametrize("strategy", TORCH_STRATEGIES)
def test_hb_random_forest_classifier_single_node_tree(strategy):
    X, _ = one_row()
    model = RandomForestClassifier(n_estimators=1).fit(X, np.zeros(1, dtype=np.int64))
    pred = tuner.compile(model, backend="torch", strategy=strategy)
    assert_scores(pred.predict_proba(X), model.predict_proba(X))
    assert_same_labels(pred.predict(X), model.predict(X))


@functools.lru_cache(maxsize=None)
def multi_target_classes(n: int = 300):
    """Three outputs: 3 classes, 2 shifted classes, and one class only."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 5))
    Y = np.column_stack([(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5), (X[:, 2] > 0).astype(int) + 5,
                         np.full(n, 7)])
    return X, Y


@pytest.mark.parametrize("cls", [DecisionTreeClassifier, ExtraTreeClassifier, RandomForestClassifier,
                                 ExtraTreesClassifier], ids=lambda c: c.__name__)
def test_multioutput_classifier_predict(cls):
    X, Y = multi_target_classes()
    model = cls(random_state=0, max_depth=6, **({"n_estimators": 20} if "Forest" in cls.__name__ or
                                                   "Trees" in cls.__name__ else {})).fit(X, Y)
    conv = strategies.convert(model)
    Xs = sample_inputs(conv, 400, seed=3, base=X, nan=conv.input.allow_nan, inf=conv.input.allow_inf)
    assert conv.input.allow_nan
    want = model.predict(Xs)
    assert_same_labels(reference.predict(conv, Xs, "predict"), want, "reference")
    for strategy in TORCH_STRATEGIES:
        pred = tuner.compile(model, backend="torch", strategy=strategy)
        assert_same_labels(pred.predict(Xs), want, strategy)
    with pytest.raises(AttributeError, match="predict_proba"):
        pred.predict_proba(Xs)


def test_multioutput_classifier_refusals():
    X, Y = multi_target_classes()
    labels = np.where(Y == 7, "seven", "other")
    with pytest.raises(UnsupportedModelError, match="numeric classes"):
        strategies.convert(DecisionTreeClassifier(max_depth=2).fit(X, labels))


@pytest.mark.parametrize("cls", [DecisionTreeClassifier, ExtraTreesClassifier], ids=lambda c: c.__name__)
def test_single_class(cls):
    X, _ = multi_target_classes()
    model = cls(random_state=0).fit(X, np.full(X.shape[0], "only"))
    pred = tuner.compile(model, backend="torch")
    assert list(pred.classes_) == ["only"]
    assert_same_labels(pred.predict(X), model.predict(X))
    assert_scores(pred.predict_proba(X), model.predict_proba(X))
    assert pred.predict_proba(X).shape == (X.shape[0], 1)


@pytest.mark.parametrize("strategy", ["tiled_traversal", "quickscorer"])
def test_tensor_ir_strategies(strategy):
    model, X = regression("RandomForestRegressor", 7, 6)
    small = RandomForestRegressor(n_estimators=5, max_depth=6, random_state=0).fit(X, model.predict(X))
    assert_scores(tuner.compile(small, backend="tvm-tir", strategy=strategy).predict(X), small.predict(X))
    Xc, _ = multi_target_classes()  # (a multi-output classifier's trees are vector leaves as the regressor's)
    one = RandomForestClassifier(n_estimators=3).fit(Xc, np.zeros(len(Xc), dtype=np.int64))
    pred = tuner.compile(one, backend="tvm-tir", strategy=strategy)
    assert_scores(pred.predict_proba(Xc[:5]), one.predict_proba(Xc[:5]))
    assert_same_labels(pred.predict(Xc[:5]), one.predict(Xc[:5]))


def test_tvm_relax():
    Xc, Y = multi_target_classes()
    clf = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(Xc, Y)
    assert_same_labels(tuner.compile(clf, backend="tvm", strategy="gemm").predict(Xc), clf.predict(Xc))

"""BaggingClassifier / BaggingRegressor against scikit-learn.

Re-expresses Hummingbird's ``tests/test_sklearn_bagging.py`` (same models, data and parameters): SVC (one
row of zeros, and all of ``X``), LogisticRegression, LinearSVR (one row of zeros, and all of ``X``) and
LinearRegression as base estimators.  Added here: feature subsets with and without bootstrap, members that
saw only some classes, the voting fallback of members without ``predict_proba``, ``decision_function``,
the strategies of the ``label`` / ``average`` / ``activation`` operators, and the other backends.
Nothing left out.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import BaggingClassifier, BaggingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC, LinearSVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

import strategies
from strategies.frontends.sklearn import STEPS
from meta_checks import check

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@functools.lru_cache(maxsize=None)
def clf_data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=100, n_features=4, n_informative=2, n_redundant=0, random_state=0,
                               shuffle=False)


@functools.lru_cache(maxsize=None)
def reg_data() -> tuple[np.ndarray, np.ndarray]:
    return make_regression(n_samples=1000, n_features=8, n_informative=5, n_targets=1, random_state=0,
                           shuffle=True)


def need(name: str) -> None:
    if name not in STEPS:
        pytest.skip(f"no {name} converter is registered yet")


# --------------------------------------------------------------------------- Hummingbird's cases


@pytest.mark.parametrize("rows", ["zeros", "all"])
def test_bagging_svc(rows):
    need("SVC")
    X, y = clf_data()
    clf = BaggingClassifier(estimator=SVC(), n_estimators=10, random_state=0).fit(X, y)
    check(clf, np.zeros((1, 4)) if rows == "zeros" else X, ["predict", "predict_proba", "decision_function"])


def test_bagging_logistic_regression():
    X, y = clf_data()
    clf = BaggingClassifier(estimator=LogisticRegression(), n_estimators=10, random_state=0).fit(X, y)
    check(clf, X, ["predict", "predict_proba", "decision_function"])


@pytest.mark.parametrize("rows", ["zeros", "all"])
def test_bagging_linear_svr(rows):
    X, y = reg_data()
    reg = BaggingRegressor(estimator=LinearSVR(), n_estimators=10, random_state=0).fit(X, y)
    check(reg, np.zeros((1, 8)) if rows == "zeros" else X, ["predict"])


def test_bagging_linear_regression():
    X, y = reg_data()
    reg = BaggingRegressor(estimator=LinearRegression(), n_estimators=10, random_state=0).fit(X, y)
    check(reg, X, ["predict"])


# --------------------------------------------------------------------------- beyond Hummingbird's


@pytest.mark.parametrize("strategy", ["gemm", "tree_traversal", "perfect_tree_traversal"])
@pytest.mark.parametrize("bootstrap_features", [False, True])
def test_feature_subsets_trees(bootstrap_features, strategy):
    """A bag of trees on feature subsets becomes one tree ensemble on the input (features remapped), whose
    mean rounds as the bagging's sum / n_estimators: the tree strategies compete on the whole bag."""
    X, y = make_classification(n_samples=150, n_features=8, n_informative=4, n_classes=3, random_state=1)
    X[::7, 2] = np.nan  # trees route missing values
    clf = BaggingClassifier(DecisionTreeClassifier(max_depth=4), n_estimators=8, max_features=0.5,
                            bootstrap_features=bootstrap_features, random_state=0).fit(X, y)
    assert any(len(set(f)) < len(f) for f in clf.estimators_features_) == bootstrap_features
    conv = check(clf, X, ["predict", "predict_proba"], strategy=strategy)
    assert [op.kind for op in conv.graph.ops] == ["tree_ensemble"]


def test_members_missing_classes():
    """Small samples: members fitted without sample weights (pipelines) saw only some classes; their
    probabilities go to those classes' columns."""
    X, y = make_classification(n_samples=120, n_features=5, n_informative=3, n_classes=4, n_clusters_per_class=1,
                               random_state=2)
    base = make_pipeline(StandardScaler(), DecisionTreeClassifier())
    clf = BaggingClassifier(base, n_estimators=12, max_samples=6, random_state=0).fit(X, y)
    assert any(len(e.classes_) < 4 for e in clf.estimators_)
    check(clf, X, ["predict", "predict_proba"])


def test_voting_fallback_and_string_labels():
    """Members without predict_proba vote; the labels are strings."""
    X, y = make_classification(n_samples=150, n_features=6, n_informative=4, n_classes=3, random_state=3)
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = BaggingClassifier(LinearSVC(), n_estimators=7, max_features=4, random_state=0).fit(X, labels)
    conv = check(clf, X, ["predict", "predict_proba", "decision_function"])
    assert conv.head.methods == ("predict", "predict_proba", "decision_function")


def test_regressor_trees_feature_subsets():
    X, y = reg_data()
    reg = BaggingRegressor(DecisionTreeRegressor(max_depth=5), n_estimators=6, max_features=5,
                           bootstrap_features=True, random_state=0).fit(X[:300], y[:300])
    conv = check(reg, X[:300], ["predict"])
    assert [op.kind for op in conv.graph.ops] == ["tree_ensemble"]


def test_decision_function_refused_when_classes_missing():
    """A member that saw only some classes has a narrower decision function: scikit-learn's sum cannot be
    reproduced, so the method is not offered (predict / predict_proba still are)."""
    X, y = make_classification(n_samples=90, n_features=4, n_informative=3, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, random_state=4)
    base = make_pipeline(StandardScaler(), LogisticRegression())
    clf = BaggingClassifier(base, n_estimators=10, max_samples=5, random_state=0).fit(X, y)
    assert any(len(e.classes_) < 3 for e in clf.estimators_)
    conv = strategies.convert(clf)
    assert "decision_function" not in conv.head.methods
    check(clf, X, ["predict", "predict_proba"])


@pytest.mark.parametrize("backend", ["torchscript", "tvm"])
def test_backends(backend):
    X, y = clf_data()
    clf = BaggingClassifier(LogisticRegression(), n_estimators=3, max_features=3, random_state=0).fit(X, y)
    check(clf, X, ["predict", "predict_proba", "decision_function"], backend=backend)

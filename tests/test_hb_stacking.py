"""StackingClassifier / StackingRegressor / VotingClassifier / VotingRegressor against scikit-learn.

Re-expresses the stacking cases of Hummingbird's ``tests/test_sklearn_pipeline.py``: iris with a random
forest and a scaled logistic regression under a logistic regression (with and without ``passthrough``),
the same with a scaled LinearSVC (whose ``decision_function`` Hummingbird refuses; converted here), and
diabetes with RidgeCV and LinearSVR under a random forest.  Hummingbird's tests have no voting case; the
voting cases here are new (soft / hard, weights, ties, string labels), as are ``stack_method='predict'``,
binary stacking (the first probability column dropped), a nested ensemble, identical members hashing
alike, and the torchscript / tvm / inductor backends.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris, make_classification
from sklearn.ensemble import (BaggingClassifier, GradientBoostingClassifier, RandomForestClassifier,
                              RandomForestRegressor, StackingClassifier, StackingRegressor, VotingClassifier,
                              VotingRegressor)
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeCV
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC, LinearSVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

import strategies
from strategies.ground.errors import UnsupportedModelError
from strategies.ir import content_hash
from meta_checks import check

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CLF_METHODS = ["predict", "predict_proba", "decision_function"]


@functools.lru_cache(maxsize=None)
def iris():
    X, y = load_iris(return_X_y=True)
    return train_test_split(X, y, stratify=y, random_state=42)


def iris_members(second):
    return [("rf", RandomForestClassifier(n_estimators=10, random_state=42)),
            ("svr", make_pipeline(StandardScaler(), second))]


# --------------------------------------------------------------------------- Hummingbird's cases


@pytest.mark.parametrize("passthrough", [False, True])
def test_stacking_classifier(passthrough):
    X_train, X_test, y_train, _ = iris()
    clf = StackingClassifier(estimators=iris_members(LogisticRegression(random_state=42)),
                             final_estimator=LogisticRegression(), passthrough=passthrough).fit(X_train, y_train)
    check(clf, X_test, CLF_METHODS)


def test_stacking_classifier_decision_function():
    X_train, X_test, y_train, _ = iris()
    clf = StackingClassifier(estimators=iris_members(LinearSVC(random_state=42)),
                             final_estimator=LogisticRegression()).fit(X_train, y_train)
    assert clf.stack_method_ == ["predict_proba", "decision_function"]
    check(clf, X_test, CLF_METHODS)


def test_stacking_regressor():
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, random_state=42)
    reg = StackingRegressor(estimators=[("lr", RidgeCV()), ("svr", LinearSVR(random_state=42))],
                            final_estimator=RandomForestRegressor(n_estimators=10, random_state=42))
    check(reg.fit(X_train, y_train), X_test, ["predict"])


# --------------------------------------------------------------------------- beyond Hummingbird's


def binary(n: int = 200):
    return make_classification(n_samples=n, n_features=6, n_informative=4, random_state=0)


@pytest.mark.parametrize("stack_method", ["auto", "predict"])
def test_stacking_binary(stack_method):
    X, y = binary()
    members = [("gb", GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0)),
               ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)), ("drop", "drop")]
    clf = StackingClassifier(members, final_estimator=DecisionTreeClassifier(max_depth=3, random_state=0),
                             stack_method=stack_method, passthrough=True).fit(X, np.array(["no", "yes"])[y])
    check(clf, X, ["predict", "predict_proba"])


@pytest.mark.parametrize("weights", [None, [2, 1, 1]])
def test_voting_soft(weights):
    X_train, X_test, y_train, _ = iris()
    members = [("lr", LogisticRegression(max_iter=500)), ("rf", RandomForestClassifier(10, random_state=0)),
               ("dt", DecisionTreeClassifier(max_depth=2, random_state=0))]
    clf = VotingClassifier(members, voting="soft", weights=weights).fit(X_train, y_train)
    check(clf, X_test, ["predict", "predict_proba"])


def test_voting_hard_ties_and_weights():
    """Two voters that often disagree: the tie goes to the lowest class; then weights break it."""
    X, y = binary()
    labels = np.array(["b", "a"])[y]  # classes_ = ["a", "b"]: the lowest class index is "a"
    members = [("lr", LogisticRegression()), ("dt", DecisionTreeClassifier(max_depth=1, random_state=0))]
    clf = VotingClassifier(members, voting="hard").fit(X, labels)
    votes = np.column_stack([e.predict(X) for e in clf.estimators_])
    assert np.any(votes[:, 0] != votes[:, 1]), "the case needs ties"
    check(clf, X, ["predict"])
    check(clf.set_params(weights=[1, 3]), X, ["predict"])


def test_voting_regressor():
    X, y = load_diabetes(return_X_y=True)
    members = [("lr", LinearRegression()), ("dt", DecisionTreeRegressor(max_depth=4, random_state=0)),
               ("rf", RandomForestRegressor(n_estimators=5, random_state=0))]
    check(VotingRegressor(members).fit(X, y), X, ["predict"])
    check(VotingRegressor(members, weights=[0.5, 2, 1]).fit(X, y), X, ["predict"])


def test_nested_ensembles():
    """Voting over a bagging of pipelines and a stacking: members compose at any depth."""
    X_train, X_test, y_train, _ = iris()
    bag = BaggingClassifier(make_pipeline(StandardScaler(), LogisticRegression()), n_estimators=4,
                            max_features=3, random_state=0)
    stack = StackingClassifier(iris_members(LogisticRegression()), final_estimator=LogisticRegression())
    clf = VotingClassifier([("bag", bag), ("stack", stack)], voting="soft").fit(X_train, y_train)
    check(clf, X_test, ["predict", "predict_proba"])


def test_identical_members_identical_ops():
    """The same fitted model twice gives the same operators (content hashes), so they are tuned alike."""
    X, y = binary()
    members = [("a", RandomForestClassifier(n_estimators=5, random_state=0)),
               ("b", RandomForestClassifier(n_estimators=5, random_state=0))]
    clf = VotingClassifier(members, voting="soft").fit(X, y)
    trees = [op for op in strategies.convert(clf).graph.ops if op.kind == "tree_ensemble"]
    assert len(trees) == 2 and content_hash(trees[0]) == content_hash(trees[1])


@pytest.mark.parametrize("backend", ["torchscript", "tvm", pytest.param("inductor", marks=pytest.mark.slow)])
def test_backends(backend):
    X, y = binary(60)
    members = [("lr", LogisticRegression()), ("dt", DecisionTreeClassifier(max_depth=2, random_state=0))]
    clf = StackingClassifier(members, final_estimator=LogisticRegression()).fit(X, y)
    check(clf, X, ["predict", "decision_function"], backend=backend)  # one program (raw scores) to build


def test_refusals():
    X, y = binary()
    members = [("lr", LogisticRegression()), ("dt", DecisionTreeClassifier(max_depth=2, random_state=0))]
    clf = VotingClassifier(members, voting="hard", weights=[1, -1]).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="include negative ones"):
        strategies.convert(clf)
    Y = np.column_stack([y, X[:, 0] > 0]).astype(int)
    multilabel = StackingClassifier([("dt", DecisionTreeClassifier(max_depth=2))],
                                    final_estimator=DecisionTreeClassifier())
    with pytest.raises(UnsupportedModelError, match="multilabel stacking"):
        strategies.convert(multilabel.fit(X, Y))

"""MultiOutputRegressor / RegressorChain / MultiOutputClassifier / ClassifierChain against scikit-learn.

Re-expresses Hummingbird's ``tests/test_sklearn_multioutput_regression.py``: for 2, 3 and 4 targets, each of
DecisionTreeRegressor, ExtraTreesRegressor, RandomForestRegressor and LinearRegression inside a
MultiOutputRegressor and inside a RegressorChain with a shuffled order, on ``make_regression`` data (50
rows, 10 features, 5 informative) cast to float32.  Hummingbird draws a fresh random seed per case; here
the seeds are fixed (one per case) so that a failure can be reproduced.  Added: MultiOutputClassifier
(``predict``, and ``predict_proba`` as scikit-learn's list of arrays) and ClassifierChain with every
``chain_method``, string-free numeric labels, and the torchscript / tvm backends.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
from sklearn import datasets
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.multioutput import ClassifierChain, MultiOutputClassifier, MultiOutputRegressor, RegressorChain
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

import strategies
import tuner
from strategies import reference
from strategies.ground.errors import UnsupportedModelError
from meta_checks import check
from tolerances import assert_scores

REGRESSORS = {"tree": DecisionTreeRegressor, "extra": ExtraTreesRegressor, "forest": RandomForestRegressor,
              "linear": LinearRegression}


def regression_case(n_targets: int, kind: str, seed: int):
    X, y = datasets.make_regression(n_samples=50, n_features=10, n_informative=5, n_targets=n_targets,
                                    random_state=seed)
    base = REGRESSORS[kind]() if kind == "linear" else REGRESSORS[kind](random_state=seed)
    return X.astype("float32"), y.astype("float32"), base


@pytest.mark.parametrize("kind", REGRESSORS)
@pytest.mark.parametrize("n_targets", [2, 3, 4])
def test_multioutput_regressor(n_targets, kind):
    X, y, base = regression_case(n_targets, kind, seed=100 * n_targets + len(kind))
    model = MultiOutputRegressor(base).fit(X, y)
    # LinearRegression fitted on float32 computes in float32 for float32 input; the IR in float64
    conv = check(model, X, ["predict"], float32_native=kind == "linear")
    # the members side by side in one operator: an ensemble (tree_output = the target), or a linear model
    assert [op.kind for op in conv.graph.ops] == ["linear" if kind == "linear" else "tree_ensemble"]


@pytest.mark.parametrize("kind", REGRESSORS)
@pytest.mark.parametrize("n_targets", [2, 3, 4])
def test_regressor_chain(n_targets, kind):
    seed = 7 * n_targets + len(kind)
    X, y, base = regression_case(n_targets, kind, seed)
    order = list(range(n_targets))
    random.Random(seed).shuffle(order)
    model = RegressorChain(base, order=order).fit(X, y)
    check(model, X, ["predict"], float32_native=kind == "linear")


@functools.lru_cache(maxsize=None)
def multilabel(n: int = 160, seed: int = 0):
    """Three 0 / 1 targets, each a noisy linear rule of six features (make_multilabel_classification's
    rejection sampling takes seconds)."""
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n, 6)), 2)
    Y = (X @ rng.normal(size=(6, 3)) + rng.normal(scale=0.5, size=(n, 3)) > 0).astype(np.int64)
    return X, Y


@pytest.mark.parametrize("backend", ["torch", "tvm"])
def test_multioutput_classifier(backend):
    X, Y = multilabel()
    Y = Y * np.array([1, 2, 5])  # labels {0, 1}, {0, 2}, {0, 5}
    Y[:, 2] += (X[:, 0] > 1).astype(np.int64)  # a third class in the last output
    model = MultiOutputClassifier(RandomForestClassifier(n_estimators=5, random_state=0)).fit(X, Y)
    conv = check(model, X, ["predict"], labels=True, backend=backend)
    assert conv.head.methods == ("predict", "predict_proba")
    check_proba_list(model, X, backend)


def test_multioutput_classifier_mixed_members():
    """Members of another kind per output: a binary logistic regression's one probability column becomes two."""
    X, Y = multilabel()
    model = MultiOutputClassifier(LogisticRegression()).fit(X, Y)
    check_proba_list(model, X, "torch")
    svc = MultiOutputClassifier(LinearSVC()).fit(X, Y)  # no predict_proba: predict only
    assert strategies.convert(svc).head.methods == ("predict",)


def test_proba_list_refused_where_one_array_is_written():
    """ONNX export and distributed scoring write one array per method: the list is refused by name."""
    from tuner.scoring import output_layout

    X, Y = multilabel()
    p = tuner.compile(MultiOutputClassifier(DecisionTreeClassifier(max_depth=3, random_state=0)).fit(X, Y))
    with pytest.raises(UnsupportedModelError, match="list of arrays"):
        p.to_onnx(method="predict_proba")
    with pytest.raises(ValueError, match="list of arrays"):
        output_layout(p, "predict_proba", X[:2])
    assert p.to_onnx() is not None  # predict alone exports


def check_proba_list(model, X, backend):
    """``predict_proba`` is a list of one (n, n_classes) array per output, as scikit-learn returns it."""
    want = model.predict_proba(X)
    for got in (reference.predict(strategies.convert(model), X, "predict_proba"),
                tuner.compile(model, backend=backend).predict_proba(X)):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            assert_scores(g, w, what=f"{type(model.estimators_[0]).__name__} predict_proba list @{backend}")


def test_multioutput_classifier_string_labels_refused():
    X, Y = multilabel()
    model = MultiOutputClassifier(LogisticRegression()).fit(X, np.where(Y == 1, "yes", "no"))
    with pytest.raises(UnsupportedModelError, match="only numeric labels"):
        strategies.convert(model)


@pytest.mark.parametrize("chain_method", ["predict", "predict_proba", "decision_function"])
def test_classifier_chain(chain_method):
    X, Y = multilabel()
    model = ClassifierChain(LogisticRegression(), order=[2, 0, 1], chain_method=chain_method).fit(X, Y)
    check(model, X, ["predict", "predict_proba", "decision_function"], labels=True)


def test_classifier_chain_trees_and_no_proba():
    X, Y = multilabel(seed=1)
    trees = ClassifierChain(DecisionTreeClassifier(max_depth=4, random_state=0), order="random",
                            random_state=3).fit(X, Y)
    check(trees, X, ["predict", "predict_proba"], labels=True)
    svc = ClassifierChain(LinearSVC(), chain_method="decision_function").fit(X, Y)
    conv = check(svc, X, ["predict", "decision_function"], labels=True)
    assert conv.head.methods == ("predict", "decision_function")


def test_chains_refuse_nan():
    X, Y = multilabel()
    model = ClassifierChain(DecisionTreeClassifier(max_depth=3)).fit(X, Y)
    assert not strategies.convert(model).input.allow_nan  # scikit-learn's chain checks its input


@pytest.mark.parametrize("backend", ["torchscript", "tvm"])
def test_backends(backend):
    X, y, base = regression_case(3, "linear", seed=5)
    check(RegressorChain(base, order=[1, 2, 0]).fit(X, y), X, ["predict"], backend=backend, float32_native=True)


def test_chain_method_log_proba_refused():
    X, Y = multilabel()
    model = ClassifierChain(LogisticRegression(), chain_method="predict_log_proba").fit(X, Y)
    with pytest.raises(UnsupportedModelError, match="chain_method='predict_log_proba' is not supported"):
        strategies.convert(model)

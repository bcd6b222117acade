"""GridSearchCV / RandomizedSearchCV, re-expressing Hummingbird's tests/test_sklearn_model_selection.py.

Same data (breast cancer and iris as float32, fitted on the first 60% of rows,
scored on the rest), the same DecisionTreeClassifier(random_state=42), grid
{"min_samples_split": range(2, 403, 10)}, cv=5, and the same extra settings
(two scorers, refit="AUC", return_train_score=True).  RandomizedSearchCV gets
random_state=0 so that the chosen tree reproduces.  Hummingbird checks
predict_proba; predict (labels, exactly) is checked too.

Left out: nothing.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn import datasets
from sklearn.metrics import accuracy_score, make_scorer
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.tree import DecisionTreeClassifier

import tuner
from tolerances import assert_same_labels, assert_scores

GRID = {"min_samples_split": range(2, 403, 10)}
EXTRA = dict(scoring={"AUC": "roc_auc", "Accuracy": make_scorer(accuracy_score)}, refit="AUC",
             return_train_score=True)
SEARCHES = {
    "gridsearchcv_1": lambda: GridSearchCV(DecisionTreeClassifier(random_state=42), GRID, cv=5),
    "gridsearchcv_2": lambda: GridSearchCV(DecisionTreeClassifier(random_state=42), GRID, cv=5, **EXTRA),
    "randomizedsearchcv_1": lambda: RandomizedSearchCV(DecisionTreeClassifier(random_state=42), GRID, cv=5,
                                                       random_state=0),
    "randomizedsearchcv_2": lambda: RandomizedSearchCV(DecisionTreeClassifier(random_state=42), GRID, cv=5,
                                                       random_state=0, **EXTRA),
}


@functools.lru_cache(maxsize=None)
def fitted(case: str, dataset: str):
    """(search, held-out rows); each search is fitted once."""
    data = datasets.load_breast_cancer() if dataset == "breast_cancer" else datasets.load_iris()
    X = data.data.astype(np.float32)
    n_train = int(X.shape[0] * 0.6)
    return SEARCHES[case]().fit(X[:n_train], data.target[:n_train]), X[n_train:]


@pytest.mark.parametrize("case,dataset,backend", [
    *[(c, d, "torch") for c in SEARCHES for d in ("breast_cancer", "iris")],
    ("gridsearchcv_1", "breast_cancer", "torchscript"),
    ("randomizedsearchcv_2", "iris", "torchscript"),
])
def test_model_selection(case, dataset, backend):
    model, X = fitted(case, dataset)
    pred = tuner.compile(model, backend=backend)
    assert_same_labels(pred.classes_, model.classes_, what="classes_")
    assert_scores(pred.predict_proba(X), model.predict_proba(X), what=f"predict_proba on {backend}")
    assert_same_labels(pred.predict(X), model.predict(X), what=f"predict on {backend}")

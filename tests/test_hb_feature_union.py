"""FeatureUnion, re-expressing Hummingbird's tests/test_sklearn_feature_union.py.

Same data (iris as float32, half held out with random_state=42) and models;
transform is checked against scikit-learn with the project tolerance.

Left out: nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import tuner
from tolerances import assert_scores


def iris_halves():
    data = load_iris()
    X = data.data.astype(np.float32)
    X_train, X_test, *_ = train_test_split(X, data.target, test_size=0.5, random_state=42)
    return X_train, X_test


@pytest.mark.parametrize("backend", ["torch", "torchscript"])
@pytest.mark.parametrize("weights", [None, {"standard": 2, "minmax": 4}], ids=["default", "transformer_weights"])
def test_feature_union(weights, backend):
    X_train, X_test = iris_halves()
    model = FeatureUnion([("standard", StandardScaler()), ("minmax", MinMaxScaler())],
                         transformer_weights=weights).fit(X_train)
    pred = tuner.compile(model, backend=backend)
    assert_scores(pred.transform(X_test), model.transform(X_test), what=f"transform on {backend}")

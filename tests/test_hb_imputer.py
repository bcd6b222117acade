"""SimpleImputer and MissingIndicator, re-expressing Hummingbird's tests/test_sklearn_imputer_converter.py.

Same 3x2 float32 data and parameters; transform is checked against scikit-learn
(MissingIndicator's boolean mask value by value, exactly).  Hummingbird's
"torch.jit" runs are backend="torchscript" here; MissingIndicator gets a torch
tensor as in Hummingbird.

Left out: TestSklearnImputer (sklearn.preprocessing.Imputer was removed in
scikit-learn 0.22; its two cases are SimpleImputer cases already here); 3 of
Hummingbird's 5 TVM cases (one TVM build takes ~5 s; one SimpleImputer and one
MissingIndicator case run on backend="tvm").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.impute import MissingIndicator, SimpleImputer

import tuner
from tolerances import assert_same_labels, assert_scores

WITH_NAN = np.array([[1, 2], [np.nan, 3], [7, 6]], dtype=np.float32)
NO_NAN = np.array([[1, 2], [1, 3], [7, 6]], dtype=np.float32)
WITH_ZERO = np.array([[1, 2], [0, 3], [7, 6]], dtype=np.float32)

IMPUTERS = {
    "float_inputs": (lambda: SimpleImputer(strategy="mean", fill_value="nan"), WITH_NAN),
    "no_nan_inputs": (lambda: SimpleImputer(missing_values=0, strategy="most_frequent"), NO_NAN),
    "nan_to_0": (lambda: SimpleImputer(strategy="constant", fill_value=0), NO_NAN),
}


@pytest.mark.parametrize("backend", ["torch", "torchscript"])
@pytest.mark.parametrize("case", sorted(IMPUTERS))
def test_simple_imputer(case, backend):
    make, X = IMPUTERS[case]
    model = make().fit(X)
    pred = tuner.compile(model, backend=backend)
    assert_scores(pred.transform(X), model.transform(X), what=f"{case} on {backend}")


def test_simple_imputer_tvm():
    model = SimpleImputer(strategy="mean", fill_value="nan").fit(WITH_NAN)
    pred = tuner.compile(model, backend="tvm")
    assert_scores(pred.transform(WITH_NAN), model.transform(WITH_NAN), what="tvm")


@pytest.mark.parametrize("backend", ["torch", "torchscript"])
@pytest.mark.parametrize("features", ["all", "missing-only"])
@pytest.mark.parametrize("missing,X", [(np.nan, WITH_NAN), (0, WITH_ZERO)], ids=["nan", "isnan_false"])
def test_missing_indicator(missing, X, features, backend):
    model = MissingIndicator(features=features, missing_values=missing).fit(X)
    pred = tuner.compile(model, backend=backend)
    assert_same_labels(pred.transform(torch.from_numpy(X)), model.transform(X), what=f"{features} on {backend}")


def test_missing_indicator_tvm():
    model = MissingIndicator(features="all").fit(WITH_NAN)
    pred = tuner.compile(model, backend="tvm")
    assert_same_labels(pred.transform(torch.from_numpy(WITH_NAN)), model.transform(WITH_NAN), what="tvm")

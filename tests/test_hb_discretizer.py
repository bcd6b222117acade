"""Binarizer and KBinsDiscretizer, re-expressing Hummingbird's tests/test_sklearn_discretizer_converters.py.

Same data (a 4x3 float32 array; breast cancer) and the same grid: thresholds
0, 1, -2; n_bins 2, 3, 5, 10, 20 x encode ordinal / onehot / onehot-dense with
the default (quantile) strategy.  The input is a torch tensor, as in Hummingbird.
transform is checked against scikit-learn ("onehot" output densified).

Left out: nothing.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import Binarizer, KBinsDiscretizer

import tuner
from tolerances import assert_scores

# Tiny data and many bins: scikit-learn removes too-narrow bins and says so.
pytestmark = pytest.mark.filterwarnings("ignore:Bins whose width are too small")

DUMMY = np.array([[1, 2, -3], [4, -3, 0], [0, 1, 4], [0, -5, 6]], dtype=np.float32)


@functools.lru_cache(maxsize=None)
def data(name: str) -> np.ndarray:
    return DUMMY if name == "dummy" else load_breast_cancer().data


def check_transform(model, X, backend):
    expected = model.transform(X)
    if sparse.issparse(expected):
        expected = expected.toarray()
    pred = tuner.compile(model, backend=backend)
    assert_scores(pred.transform(torch.from_numpy(X)), expected, what=f"transform on {backend}")


@pytest.mark.parametrize("threshold,backend", [(0.0, "torch"), (1.0, "torch"), (-2.0, "torch"),
                                               (1.0, "torchscript")])
def test_binarizer(threshold, backend):
    check_transform(Binarizer(threshold=threshold).fit(DUMMY), DUMMY, backend)


@pytest.mark.parametrize("encode", ["ordinal", "onehot", "onehot-dense"])
@pytest.mark.parametrize("n_bins", [2, 3, 5, 10, 20])
@pytest.mark.parametrize("dataset", ["dummy", "breast_cancer"])
def test_k_bins_discretizer(dataset, n_bins, encode):
    X = data(dataset)
    check_transform(KBinsDiscretizer(n_bins=n_bins, encode=encode).fit(X), X, "torch")


@pytest.mark.parametrize("dataset,n_bins,encode", [("dummy", 3, "onehot"), ("breast_cancer", 10, "ordinal")])
def test_k_bins_discretizer_torchscript(dataset, n_bins, encode):
    X = data(dataset)
    check_transform(KBinsDiscretizer(n_bins=n_bins, encode=encode).fit(X), X, "torchscript")

"""Feature selection, re-expressing Hummingbird's tests/test_sklearn_array_feature_extractor_converter.py.

Same data (digits; a 4x3 float32 array for VarianceThreshold) and selectors:
SelectPercentile(percentile=15) and SelectKBest(k=20) with chi2 and
mutual_info_classif, VarianceThreshold(); the input is a torch tensor, as in
Hummingbird.  mutual_info_classif is given random_state=0 so that the selected
columns (and any failure) reproduce.  transform is checked against scikit-learn.

Left out: nothing.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.feature_selection import SelectKBest, SelectPercentile, VarianceThreshold, chi2, mutual_info_classif

import tuner
from tolerances import assert_scores

mutual_info = functools.partial(mutual_info_classif, random_state=0)
SMALL = np.array([[0.0, 0.0, 3.0], [1.0, -1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, -2.0]], dtype=np.float32)

SELECTORS = {
    "select_percentile_mutual_info": lambda: SelectPercentile(mutual_info, percentile=15),
    "select_percentile_chi2": lambda: SelectPercentile(chi2, percentile=15),
    "variance_threshold": lambda: VarianceThreshold(),
    "k_best_mutual_info_classif": lambda: SelectKBest(mutual_info, k=20),
    "k_best_chi2": lambda: SelectKBest(chi2, k=20),
}


@functools.lru_cache(maxsize=None)
def fitted(case: str):
    """(selector, X); each selector is fitted once (mutual information on digits takes a moment)."""
    if case == "variance_threshold":
        return SELECTORS[case]().fit(SMALL), SMALL
    X, y = load_digits(return_X_y=True)
    return SELECTORS[case]().fit(X, y), X


@pytest.mark.parametrize("case,backend", [*[(c, "torch") for c in SELECTORS],
                                          ("k_best_chi2", "torchscript"), ("variance_threshold", "torchscript")])
def test_feature_selection(case, backend):
    model, X = fitted(case)
    pred = tuner.compile(model, backend=backend)
    assert_scores(pred.transform(torch.from_numpy(X)), model.transform(X), what=f"{case} on {backend}")

"""PolynomialFeatures, re-expressing Hummingbird's tests/test_sklearn_poly_features_converter.py.

Same 3x4 float32 data, order="F", given as a torch tensor as in Hummingbird;
transform is checked against scikit-learn.  Hummingbird's commented-out
interaction_only cases (a Hummingbird bug) are included, since scikit-learn
supports them; its "raises" case actually expects success, for degree 4 and for
interaction_only (the latter is "interaction_and_bias" here), and is kept that way.

Left out: nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.preprocessing import PolynomialFeatures

import tuner
from tolerances import assert_scores

DATA = np.array([[1.2, 3.2, 1.3, -5.6], [4.3, -3.2, 5.7, 1.0], [0, 3.2, 4.7, -8.9]], dtype=np.float32)

# id -> PolynomialFeatures parameters (all with order="F")
CASES = {
    "with_bias": dict(degree=2, include_bias=True),
    "with_no_bias": dict(degree=2, include_bias=False),
    "interaction_and_bias": dict(degree=2, include_bias=True, interaction_only=True),
    "interaction_and_no_bias": dict(degree=2, include_bias=False, interaction_only=True),
    "degree_4": dict(degree=4, include_bias=True),
}


@pytest.mark.parametrize("case,backend", [*[(c, "torch") for c in CASES],
                                          ("with_bias", "torchscript"), ("degree_4", "torchscript")])
def test_polynomial_features(case, backend):
    model = PolynomialFeatures(order="F", **CASES[case]).fit(DATA)
    pred = tuner.compile(model, backend=backend)
    assert_scores(pred.transform(torch.from_numpy(DATA)), model.transform(DATA), what=f"{case} on {backend}")

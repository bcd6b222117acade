"""LabelEncoder, re-expressing Hummingbird's tests/test_sklearn_label_encoder_converter.py.

Same 1-D data (int32 labels; a list of city names); transform's codes must be
identical to scikit-learn's.  For an unseen label Hummingbird expects an
AssertionError; scikit-learn raises ValueError, and so must tunebird.

Left out: nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import LabelEncoder

import tuner
from tolerances import assert_same_labels

CITIES = ["paris", "tokyo", "amsterdam", "tokyo"]
DATA = {
    "int32": lambda: np.array([1, 4, 5, 2, 0, 2], dtype=np.int32),
    "str": lambda: list(CITIES),
}


@pytest.mark.parametrize("backend", ["torch", "torchscript"])
@pytest.mark.parametrize("data", sorted(DATA))
def test_label_encoder(data, backend):
    y = DATA[data]()
    model = LabelEncoder().fit(y)
    pred = tuner.compile(model, backend=backend)
    assert_same_labels(pred.transform(y), model.transform(y), what=f"transform on {backend}")


def test_label_encoder_unseen_label_raises():
    model = LabelEncoder().fit(CITIES)
    pred = tuner.compile(model)
    unseen = ["milan"] + CITIES[1:]
    with pytest.raises(ValueError):
        model.transform(unseen)
    with pytest.raises(ValueError):
        pred.transform(unseen)

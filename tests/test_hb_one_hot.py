"""OneHotEncoder, re-expressing Hummingbird's tests/test_sklearn_one_hot_encoder_converter.py.

Same 4x3 data (int64, int32, strings as nested lists or a NumPy string array,
with one category of 4 and one of 5 characters); transform is checked against
scikit-learn's (sparse) output as a dense array.  Hummingbird's torchscript
cases run here on backend="torchscript".

Left out: nothing (Hummingbird's test-input argument to convert has no tunebird counterpart).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import OneHotEncoder

import tuner
from tolerances import assert_scores

INTS = [[1, 2, 3], [4, 3, 0], [0, 1, 4], [0, 5, 6]]
STRINGS = [["a", "r", "x"], ["a", "r", "x"], ["aaaa", "r", "x"], ["a", "r", "xx"]]
STRINGS_5 = [["a", "r", "x"], ["a", "r", "x"], ["aaaaa", "r", "x"], ["a", "r", "xx"]]  # length not a multiple of 4

DATA = {
    "int64": lambda: np.array(INTS, dtype=np.int64),
    "int32": lambda: np.array(INTS, dtype=np.int32),
    "string_list": lambda: STRINGS,
    "string_array": lambda: np.array(STRINGS),
    "string_not_mod4_len": lambda: STRINGS_5,
}


@pytest.mark.parametrize("data,backend", [
    ("int64", "torch"), ("int32", "torch"), ("string_list", "torch"), ("string_not_mod4_len", "torch"),
    ("int64", "torchscript"), ("int32", "torchscript"), ("string_array", "torchscript"),
    ("string_not_mod4_len", "torchscript"),
])
def test_one_hot_encoder(data, backend):
    X = DATA[data]()
    model = OneHotEncoder().fit(X)
    pred = tuner.compile(model, backend=backend)
    assert_scores(pred.transform(X), model.transform(X).toarray(), what=f"transform on {backend}")

"""The tolerances the issues state, in one place, and the comparison helper that applies them.

Reference evaluator vs native library (float64 accumulation): 1e-6 relative, or
1e-9 absolute, elementwise.  For natives that themselves compute in float32
(XGBoost sums leaves in float32) the native's own rounding is larger than that
near zero, so the absolute part is float32's unit roundoff (2**-24 ~ 6e-8) times
the output's scale (the largest |value| in the batch, at least 1): the native
result cannot be nearer the exact one than that.
"""

from __future__ import annotations

import numpy as np

REF_RTOL = 1e-6
REF_ATOL = 1e-9
F32_UNIT = 2.0**-24


def assert_close(actual, expected, *, rtol: float = REF_RTOL, atol: float = REF_ATOL, float32_native: bool = False, what: str = ""):
    """Elementwise |a - e| <= atol + rtol * |e|; NaN must match NaN. Labels: use assert_same_labels."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    if float32_native and e.size:
        finite = np.abs(e[np.isfinite(e)])
        scale = max(1.0, float(finite.max()) if finite.size else 1.0)
        atol = max(atol, 4 * F32_UNIT * scale)
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def assert_same_labels(actual, expected, what: str = ""):
    a = np.asarray(actual)
    e = np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    bad = np.flatnonzero(a != e)
    assert bad.size == 0, f"{what}: {bad.size} labels differ, first at rows {bad[:10].tolist()}: {a[bad[:5]]} vs {e[bad[:5]]}"


SCORE_RTOL = 1e-5


def assert_scores(actual, expected, *, rtol: float = SCORE_RTOL, what: str = ""):
    """The project's score tolerance: |a - e| <= rtol * max(|e|, scale), scale = max(1, max |e|) over the batch.

    (A float32 program is accurate relative to the output's magnitude, not to each tiny value.)
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    finite = np.abs(e[np.isfinite(e)])
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale, equal_nan=True, err_msg=what)

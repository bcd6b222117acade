"""Is a program's output right?  The one comparison every measured candidate and fusion choice passes."""

from __future__ import annotations

import numpy as np

# Scores within this relative tolerance of the reference (scaled by the output's magnitude) are valid:
# the same bound the conformance tests state for float32 backends.
VALID_RTOL = 1e-5



def check_outputs(got: np.ndarray, want: np.ndarray, rtol: float = VALID_RTOL) -> str | None:
    """None when ``got`` matches ``want``; otherwise a short description of the mismatch."""
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        return f"output shape {got.shape}, expected {want.shape}"
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    bad = ~(np.isclose(got, want, rtol=rtol, atol=rtol * scale) | (np.isnan(got) & np.isnan(want)))
    if bad.any():
        i = np.flatnonzero(bad.reshape(-1))[0]
        return f"{int(bad.sum())} of {bad.size} outputs differ from the reference, first {got.reshape(-1)[i]!r} vs {want.reshape(-1)[i]!r}"
    return None

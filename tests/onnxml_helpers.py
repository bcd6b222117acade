"""Shared by the ``test_onnxml_*`` files: run an ONNX-ML model in ONNX Runtime and in tunebird, compare."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tolerances import assert_same_labels, assert_scores

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def ort_outputs(model, X) -> list:
    """ONNX Runtime's outputs on ``X`` (ZipMap's list of dicts becomes an array, columns in class order)."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: X})
    fixed = []
    for o in outs:
        if isinstance(o, list) and o and isinstance(o[0], dict):
            keys = list(o[0])
            o = np.array([[d[k] for k in keys] for d in o])
        fixed.append(np.asarray(o))
    return fixed


def check(model, X, backend: str = "torch", X_ours=None, **kw):
    """Compile ``model`` (a ModelProto) and compare every method with ONNX Runtime's outputs on ``X``."""
    import tuner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = tuner.compile(model, backend=backend, **kw)
    X_ours = X if X_ours is None else X_ours
    expected = ort_outputs(model, X)
    if len(expected) == 2:  # label, probabilities
        assert_same_labels(p.predict(X_ours), expected[0].ravel(), what="label")
        scores = p.predict_proba if "predict_proba" in p.methods else p.decision_function
        assert_scores(scores(X_ours), expected[1], what="probabilities")
    elif "transform" in p.methods:
        got = p.transform(X_ours)
        assert_scores(np.asarray(got, np.float64).reshape(expected[0].shape), expected[0], what="transform")
    else:
        assert_scores(np.asarray(p.predict(X_ours)).reshape(expected[0].shape), expected[0], what="predict")
    return p

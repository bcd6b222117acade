"""Saved predictors reload in a fresh process and reproduce their outputs bit for bit, on every backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tuner
from tolerances import assert_scores
from strategies.backends.registry import all_backends
from strategies.ground.errors import ArtifactIntegrityError
from zoo import ZOO, data

REPO = Path(__file__).resolve().parents[1]

# (zoo model, method, strategy, backend): every backend on a tree ensemble with NaN, and a pipeline
CASES = [
    ("xgb_binary_nan", "predict_proba", "tree_traversal", "torch"),
    ("xgb_binary_nan", "predict_proba", "perfect_tree_traversal", "torchscript"),
    ("xgb_binary_nan", "predict_proba", "gemm", "tvm"),
    ("xgb_binary_nan", "predict_proba", "tiled_traversal", "tvm-tir"),
    ("lgb_multiclass_zero_missing", "predict_proba", "perfect_tree_traversal", "inductor"),
    ("sk_pipeline_scaler_logistic", "predict_proba", None, "torchscript"),
    ("sk_pipeline_impute_scale_forest", "predict", "tiled_traversal", "tvm-tir"),
]

LOADER = """
import json, sys, numpy as np
from pathlib import Path
import tuner
d = Path(sys.argv[1])
for case in json.loads((d / "cases.json").read_text()):
    p = tuner.load_artifact(d / (case["name"] + ".tb"))
    X = np.load(d / (case["name"] + ".x.npy"))
    np.save(d / (case["name"] + ".out.npy"), getattr(p, case["method"])(X))
"""


def test_saved_predictors_reload_bit_identical_in_a_fresh_process(tmp_path):
    expected, cases = {}, []
    for i, (model_name, method, strategy, backend) in enumerate(CASES):
        reason = all_backends()[backend].unavailable_reason()
        if reason:
            pytest.fail(f"backend {backend} unavailable: {reason}")
        model = ZOO[model_name]()
        kwargs = {"backend": backend, "threads": 1}
        if strategy:
            kwargs["strategy"] = strategy
        p = tuner.compile(model, **kwargs)
        name = f"case{i}"
        X = data(200, 6, nan=0.0 if model_name == "sk_pipeline_scaler_logistic" else 0.1, seed=7)
        np.save(tmp_path / f"{name}.x.npy", X)
        p.save(str(tmp_path / f"{name}.tb"))
        expected[name] = getattr(p, method)(X)
        np.testing.assert_allclose(expected[name], getattr(model, method)(X), rtol=1e-5, atol=1e-6)
        cases.append({"name": name, "method": method})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", LOADER, str(tmp_path)], env=env, cwd=tmp_path, timeout=600,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr == "", f"loading printed (native log lines must stay off the terminal):\n{run.stderr[-2000:]}"
    for case, spec in zip(cases, CASES):
        got = np.load(tmp_path / f"{case['name']}.out.npy")
        np.testing.assert_array_equal(got, expected[case["name"]], err_msg=str(spec))


def test_a_tampered_artifact_file_is_refused(tmp_path):
    p = tuner.compile(ZOO["xgb_binary_nan"](), backend="torch", threads=1)
    path = tmp_path / "model.tb"
    p.save(str(path))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactIntegrityError):
        tuner.load_artifact(path)


@pytest.mark.parametrize("backend", ["tvm-tir", "torch"])
def test_the_batch1_fast_path_gives_what_the_validated_path_gives(backend):
    model = ZOO["xgb_binary_nan"]()
    p = tuner.compile(model, backend=backend, threads=1)
    X = data(n=40, nan=0.1, seed=3)
    x32 = np.ascontiguousarray(X[:1], dtype=np.float32)
    fast = p.predict_proba(x32)  # a float32 C-contiguous row: straight to the program
    assert p._fast32["predict_proba"] is not False  # (float32 arrays have their own fast paths)
    slow = p.predict_proba(np.asfortranarray(X[:1].astype(np.float64)))  # converted and validated first
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(p.predict(x32), model.predict(x32))
    with pytest.raises(ValueError):  # a wrong width still fails with the boundary's message
        p.predict(np.zeros((1, x32.shape[1] + 1), np.float32))
    for m in ("predict", "predict_proba"):
        np.testing.assert_array_equal(getattr(p, m)(np.ascontiguousarray(X[:7], dtype=np.float32)),
                                      getattr(p, m)(X[:7].astype(np.float64)))


def test_the_fast_path_of_a_model_refusing_nan_checks_every_value():
    model = ZOO["sk_pipeline_scaler_logistic"]()
    p = tuner.compile(model, backend="tvm-tir", strategy="fused_linear", threads=1)
    assert not p.model.input.allow_nan
    X = data(n=40, seed=4)
    for dtype in (np.float64, np.float32):  # float32 rows go exactly (upcast) into the float64 program
        row = np.ascontiguousarray(X[:1], dtype=dtype)
        slow = p.predict_proba(np.asfortranarray(row.astype(np.float64)))  # validated and converted first
        np.testing.assert_array_equal(p.predict_proba(row), slow)
        assert (p._fast32 if dtype == np.float32 else p._fast)["predict_proba"] is not False
        assert_scores(p.predict_proba(row), model.predict_proba(X[:1]))
    big = np.full((1, X.shape[1]), np.finfo(np.float64).max / 2)  # finite, though their sum overflows
    assert_scores(p.predict_proba(big), model.predict_proba(big))
    for bad in (np.nan, np.inf, -np.inf):
        row = X[:1].copy()
        row[0, 1] = bad
        with pytest.raises(ValueError, match="NaN|inf"):
            p.predict_proba(row)

"""Every strategy x backend against the reference evaluator and the native library.

Inputs hold NaN (where the model accepts it), +-inf (likewise), exact thresholds
and their float neighbours.  Tolerance, per backend: labels identical; scores
within 1e-5 relative in float32, i.e. ``|got - want| <= 1e-5 * max(|want|, scale)``
with ``scale = max(1, max |want|)`` over the batch (a float32 sum of many leaves
is accurate relative to the output's magnitude, not to each tiny value).
"""

from __future__ import annotations

import numpy as np
import pytest

import strategies
from strategies.registry import get_strategy
import tuner
from strategies import reference
from strategies.ground.errors import InvalidConfigError
from strategies.sampling import sample_inputs
from tolerances import assert_same_labels, assert_scores
from zoo import LINEAR_MODELS, SVM_MODELS, TREE_MODELS, ZOO

TREE_STRATEGIES = ["gemm", "tree_traversal", "perfect_tree_traversal"]
RTOL = {"torch": 1e-5, "torchscript": 1e-5, "inductor": 1e-5, "tvm": 1e-5, "tvm-tir": 1e-5}


def native_call(model, method: str, X: np.ndarray) -> np.ndarray:
    mod = type(model).__module__
    if mod.startswith("xgboost") and type(model).__name__ == "Booster":
        kind = "margin" if method == "decision_function" else "value"
        return model.inplace_predict(X, predict_type=kind)
    if mod.startswith("lightgbm") and type(model).__name__ == "Booster":
        return model.predict(X, raw_score=method == "decision_function")
    return getattr(model, method)(X)


def is_label(conv, method: str) -> bool:
    h = conv.head
    return method == "predict" and (h.task in ("classifier", "outlier") or h.predict_argmax)


def check(name: str, strategy: str, backend: str, n: int = 300, **knobs) -> None:
    native = ZOO[name]()
    conv = strategies.convert(native)
    X = sample_inputs(conv, n, seed=11, nan=conv.input.allow_nan, inf=conv.input.allow_inf)
    pred = tuner.compile(native, strategy=strategy, backend=backend, batch_size=128, **knobs)
    rtol = RTOL[backend]
    for method in conv.methods:
        what = f"{name} {strategy}@{backend} {method}"
        got = getattr(pred, method)(X)
        want = reference.predict(conv, X, method)
        nat = native_call(native, method, X)
        if is_label(conv, method):
            assert_same_labels(got, want, what + " vs reference")
            assert_same_labels(got, nat, what + " vs native")
        else:
            assert_scores(got, want, rtol=rtol, what=what + " vs reference")
            assert_scores(got, nat, rtol=rtol, what=what + " vs native")


def _supported(name: str, strategy: str) -> bool:
    op = [o for o in strategies.convert(ZOO[name]()).graph.ops if o.kind == "tree_ensemble"][0]
    return get_strategy(strategy).unsupported_reason(op) is None


@pytest.mark.parametrize("backend", ["torch", "torchscript"])
@pytest.mark.parametrize("strategy", TREE_STRATEGIES)
@pytest.mark.parametrize("name", TREE_MODELS)
def test_tree_models_fast_backends(name, strategy, backend):
    if not _supported(name, strategy):
        with pytest.raises(InvalidConfigError, match=strategy):
            tuner.compile(ZOO[name](), strategy=strategy, backend=backend)
        return
    check(name, strategy, backend)


@pytest.mark.parametrize("name", TREE_MODELS)
def test_tiled_traversal(name):
    op = [o for o in strategies.convert(ZOO[name]()).graph.ops if o.kind == "tree_ensemble"][0]
    layout = "perfect" if get_strategy("tiled_traversal").invalid_reason(op, {}) is None else "sparse"
    check(name, "tiled_traversal", "tvm-tir", layout=layout)


@pytest.mark.parametrize("name", TREE_MODELS)
def test_quickscorer(name):
    if not _supported(name, "quickscorer"):
        with pytest.raises(InvalidConfigError, match="quickscorer"):
            tuner.compile(ZOO[name](), strategy="quickscorer", backend="tvm-tir")
        return
    check(name, "quickscorer", "tvm-tir")
    check(name, "quickscorer", "tvm-tir", n=1000, vector_rows=8, word_bits=64, rows_per_block=64)
    check(name, "quickscorer", "tvm-tir", vector_rows=1, tree_block=0)


@pytest.mark.parametrize("name", TREE_MODELS)
def test_tree_lanes(name):
    check(name, "tree_lanes", "tvm-tir", n=40)
    check(name, "tree_lanes", "tvm-tir", n=40, lanes=8, interleave=1, x_lookup="gather", unroll=False)
    check(name, "tree_lanes", "tvm-tir", n=300, interleave=8, rows_per_block=64, prefetch=2)
    try:
        check(name, "tree_lanes", "tvm-tir", n=300, layout="perfect", interleave=4, x_lookup="gather", prefetch=1)
    except InvalidConfigError as e:  # trees deeper than the perfect layout pads to
        assert "layout='perfect'" in str(e), e
    try:
        check(name, "tree_lanes", "tvm-tir", n=300, record="pair", lanes=8, interleave=8, x_lookup="gather")
    except InvalidConfigError as e:  # float64 compares: no room for the threshold beside the feature
        assert "record='pair'" in str(e), e


@pytest.mark.parametrize("backend", ["torch", "torchscript", "tvm", "tvm-tir"])
@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", LINEAR_MODELS)
def test_linear_models(name, dtype, fold, backend):
    if backend == "tvm" and (dtype, fold) != ("float64", True):
        pytest.skip("tvm: one linear config per model keeps the suite short")
    strategy = "fused_linear" if backend == "tvm-tir" else "matmul"  # tvm-tir: the kernel takes the whole chain
    check(name, strategy, backend, dtype=dtype, fold_scaler=fold)


@pytest.mark.parametrize("backend", ["torch", "torchscript", "tvm"])
@pytest.mark.parametrize("knobs", [{}, {"sv_block": 64, "reduce": "concat"}, {"sv_block": 16, "distance": "direct"}],
                         ids=["whole", "tiles-concat", "direct"])
@pytest.mark.parametrize("name", SVM_MODELS)
def test_svm_models(name, knobs, backend):
    if backend == "tvm" and knobs:
        pytest.skip("tvm: one kernel config per model keeps the suite short")
    check(name, "kernel_tiles", backend, **knobs)


MLP_NB_CONFIGS = {
    "mlp-fused": ("sk_pipeline_scaler_mlp_tanh", "mlp_fused", {}),
    "mlp-fused-nk-augmented": ("sk_pipeline_scaler_mlp_tanh", "mlp_fused", {"layout": "nk", "bias": "augmented"}),
    "mlp-layers": ("sk_pipeline_scaler_mlp_tanh", "mlp_layers", {}),
    "gnb-direct": ("sk_gaussian_nb", "gaussian_nb_quadratic", {}),
    "gnb-gemm": ("sk_gaussian_nb", "gaussian_nb_quadratic", {"form": "gemm"}),
}


@pytest.mark.parametrize("backend", ["torch", "torchscript", "tvm"])
@pytest.mark.parametrize("config", MLP_NB_CONFIGS)
def test_mlp_and_naive_bayes_models(config, backend):
    name, strategy, knobs = MLP_NB_CONFIGS[config]
    if backend == "tvm" and knobs:
        pytest.skip("tvm: one config per strategy keeps the suite short")
    check(name, strategy, backend, **knobs)


TVM_MODELS = ["xgb_binary_nan", "lgb_categorical", "sk_pipeline_impute_scale_forest", "lgb_multiclass_zero_missing"]


@pytest.mark.parametrize("strategy", TREE_STRATEGIES)
@pytest.mark.parametrize("name", TVM_MODELS)
def test_tvm_relax(name, strategy):
    check(name, strategy, "tvm")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", TREE_STRATEGIES)
@pytest.mark.parametrize("name", ["xgb_binary_nan", "sk_pipeline_impute_scale_forest"])
def test_inductor(name, strategy):
    check(name, strategy, "inductor")


@pytest.mark.slow
def test_inductor_linear_pipeline():
    check("sk_pipeline_scaler_logistic", "matmul", "inductor", fold_scaler=True)


def test_post_transform_unfused_matches_fused():
    native = ZOO["xgb_multiclass"]()
    X = sample_inputs(strategies.convert(native), 200, seed=3)
    fused = tuner.compile(native, strategy="tree_traversal").predict_proba(X)
    split = tuner.compile(native, strategy="tree_traversal", fuse_post=False).predict_proba(X)
    assert_scores(split, fused, what="unfused post-transform")


def test_input_kinds_and_empty_batch():
    import pandas as pd
    import torch

    native = ZOO["sk_random_forest_clf"]()
    pred = tuner.compile(native)
    X = np.nan_to_num(sample_inputs(strategies.convert(native), 50, seed=2, inf=False))
    want = native.predict_proba(X)
    for x in (X, X.astype(np.float32), pd.DataFrame(X), torch.from_numpy(X), X.tolist()):
        assert_scores(pred.predict_proba(x), want, what=type(x).__name__)
    assert pred.predict_proba(X[:0]).shape == (0, 3)
    assert pred.predict(X[:0]).shape == (0,)
    np.testing.assert_array_equal(pred.classes_, native.classes_)
    assert not hasattr(pred, "transform")
    ints = np.round(X).astype(np.int64)
    assert_same_labels(pred.predict(ints), native.predict(ints), "int input")


def test_clear_errors():
    native = ZOO["xgb_binary_nan"]()
    with pytest.raises(InvalidConfigError, match=r"unknown strategy 'fast'.*'gemm'"):
        tuner.compile(native, strategy="fast")
    with pytest.raises(InvalidConfigError, match=r"unknown backend 'cuda'.*'torch'"):
        tuner.compile(native, backend="cuda")
    with pytest.raises(InvalidConfigError, match=r"knob 'tree_group' must be one of \[0, 8, 32, 128\], got 7"):
        tuner.compile(native, strategy="gemm", tree_group=7)
    with pytest.raises(InvalidConfigError, match=r"has no knob\(s\) \['bogus'\]"):
        tuner.compile(native, strategy="gemm", bogus=1)
    with pytest.raises(InvalidConfigError, match="batch_size must be a positive integer"):
        tuner.compile(native, batch_size=0)
    with pytest.raises(InvalidConfigError, match="cannot serve operator"):
        from strategies.backends.base import BuildRequest
        from strategies.backends.registry import get_backend

        op = strategies.convert(ZOO["sk_logistic_multinomial"]()).graph.ops[0]
        get_backend("tvm-tir")().build(BuildRequest((op,), {"strategy": "tiled_traversal", "threads": 1, "knobs": {}}))
    pred = tuner.compile(native)
    with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 6"):
        pred.predict(np.zeros((2, 3)))
    with pytest.raises(AttributeError, match="has no method 'transform'"):
        pred.transform(np.zeros((2, 6)))


@pytest.mark.slow
def test_tvm_metaschedule_knob():
    # A linear model: one matmul task, so 8 MetaSchedule trials stay well under a minute.
    from strategies.head import Head, InputSpec
    from strategies.ir import Graph, Linear
    from strategies.model import ConvertedModel

    rng = np.random.default_rng(0)
    op = Linear(coef=rng.normal(size=(3, 16)), intercept=rng.normal(size=3))
    model = ConvertedModel(Graph(16, (op,)), Head("regressor", ("predict",)), InputSpec(16), "test.Linear")
    X = rng.normal(size=(70, 16))
    pred = tuner.compile(model, backend="tvm", batch_size=32, ms_trials=8, dtype="float32")
    assert pred.plans[0].tasks[0].program().static_batch == 32
    assert_scores(pred.predict(X), reference.predict(model, X), what="MetaSchedule-tuned matmul")

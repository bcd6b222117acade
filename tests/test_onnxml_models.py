"""ONNX-ML models (trees, linear models, pipelines; skl2onnx and onnxmltools output) in, against ONNX Runtime.

Re-expresses Hummingbird's ``tests/test_onnxml_decision_tree_converter.py``, ``test_onnxml_lightgbm_converter.py``,
``test_onnxml_linear_converter.py`` and ``test_onnxml_sv_converter.py`` (same models, data, parameters), plus
issue 14's "done when": a scaler + tree-ensemble pipeline from skl2onnx and XGBoost / LightGBM models from
onnxmltools compile, tune and match ONNX Runtime.  Left out: Hummingbird's ``*_raises_rt`` cases (errors of
its own ``convert`` arguments) and its float64-input LightGBM case (it converts the LightGBM model itself, not
an ONNX file; a double-input forest is tested instead, ``test_double_input_trees``).
``test_onnxml_sv_converter.py``: its binary ``SVC()`` is re-expressed; its three-class ``SVC()`` without
probabilities is refused (skl2onnx writes the ovr decision with Neg / Abs / Sum nodes), so ``SVC`` with
``probability=True`` is tested for more classes, and ``SVMRegressor`` (SVR / NuSVR) besides.  Linear / poly SVR kernels are
not within the score tolerance of ONNX Runtime's float32 sums (see ``test_svm_regressor_dot_kernels``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from onnxml_helpers import check, ort_outputs
from tolerances import assert_same_labels, assert_scores

pytest.importorskip("skl2onnx")
from skl2onnx import convert_sklearn  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC, SVR, NuSVC, NuSVR  # noqa: E402
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402

import tuner  # noqa: E402

X3 = np.array([[0, 1], [1, 1], [2, 0]], dtype=np.float32)


def _sk(model, n_features, kind=FloatTensorType):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_sklearn(model, initial_types=[("input", kind([None, n_features]))], target_opset={"": 15, "ai.onnx.ml": 3})


def _random(n_classes=None, n_total=100, n_features=28):
    rng = np.random.RandomState(0)
    X = rng.rand(n_total, n_features).astype(np.float32)
    y = rng.randint(n_classes or n_total, size=n_total)
    return X, y


def _with_edges(X):
    """X plus rows holding NaN and +-inf (ONNX Runtime routes them as its comparisons do)."""
    extra = np.repeat(X[:1], 3, axis=0)
    extra[0, 0], extra[1, 1], extra[2, 0] = np.nan, np.inf, -np.inf
    return np.vstack([X, extra]).astype(np.float32)


# ---------------------------------------------------------------- test_onnxml_decision_tree_converter.py


@pytest.mark.parametrize("model, X, y", [
    (DecisionTreeRegressor(), X3, np.array([100, -10, 50], dtype=np.float32)),
    (RandomForestRegressor(n_estimators=1), X3, np.array([100, -10, 50], dtype=np.float32)),
    (DecisionTreeRegressor(), *_random()),
    (RandomForestRegressor(), *_random()),
    (DecisionTreeClassifier(), X3, [0, 1, 0]),
    (DecisionTreeClassifier(), *_random(2)),
    (DecisionTreeClassifier(), *_random(3)),
    (RandomForestClassifier(n_estimators=3), np.array([[0, 1], [1, 1], [2, 0], [1, 2]], np.float32), [0, 1, 0, 1]),
    (RandomForestClassifier(n_estimators=10), *_random(2)),
], ids=["dt_reg", "rf_reg_1", "dt_reg_random", "rf_reg_random", "dt_binary", "dt_binary_random",
        "dt_multi_random", "rf_cls", "rf_cls_random"])
def test_sklearn_trees(model, X, y):
    model.set_params(random_state=0)
    model.fit(X, y)
    check(_sk(model, X.shape[1]), _with_edges(X))


# ---------------------------------------------------------------- test_onnxml_linear_converter.py


@pytest.mark.parametrize("classes", [2, 3])
def test_logistic_regression(classes):
    X, y = _random(classes, n_features=20)
    # Hummingbird's liblinear ovr; scikit-learn 1.8 has liblinear for two classes only (lbfgs for three)
    model = LogisticRegression(solver="liblinear" if classes == 2 else "lbfgs", fit_intercept=True).fit(X, y)
    check(_sk(model, 20), X)


@pytest.mark.parametrize("values", [10, 1000])
def test_linear_regression(values):
    X, y = _random(values, n_features=20)
    check(_sk(LinearRegression().fit(X, y), 20), X)


@pytest.mark.parametrize("classes, model", [
    (2, SVC()),
    (2, SVC(probability=True, random_state=0)),
    (3, SVC(probability=True, random_state=0)),
    (3, SVC(kernel="poly", degree=2, probability=True, random_state=0)),
    (4, NuSVC(kernel="sigmoid", gamma=0.05, probability=True, random_state=0)),
], ids=["binary", "binary_proba", "multi_proba", "poly_multi_proba", "nu_sigmoid_4"])
@pytest.mark.filterwarnings("ignore:The `probability` parameter:FutureWarning")
def test_svc(classes, model):
    """``SVMClassifier``: the label by one-vs-one votes, probabilities by pairwise coupling, a binary model
    without probabilities outputs ``[-d, d]`` (its ``decision_function`` here)."""
    X, y = _random(classes, n_features=20)
    check(_sk(model.fit(X, y), 20), np.vstack([X, np.random.RandomState(5).rand(100, 20).astype(np.float32)]))


# inductor: the same kernel ops as a converted scikit-learn SVC, whose inductor build tests/test_svm.py checks
@pytest.mark.parametrize("backend", ["torchscript"])
@pytest.mark.filterwarnings("ignore:The `probability` parameter:FutureWarning")
def test_svc_backends_and_nan_refused(backend):
    X, y = _random(3, n_features=6)
    onx = _sk(SVC(probability=True, random_state=0).fit(X, y), 6)
    p = check(onx, X, backend=backend)
    # ONNX Runtime's coupling turns a NaN row uniform, libsvm's would not: refused, as scikit-learn refuses it
    with pytest.raises(ValueError, match="NaN"):
        p.predict(_with_edges(X))


def test_svc_multiclass_without_probabilities_refused():
    # skl2onnx writes the ovr decision with Neg / Abs / Sum nodes after the SVMClassifier
    X, y = _random(3, n_features=20)
    with pytest.raises(tuner.UnsupportedModelError, match="is not supported"):
        tuner.compile(_sk(SVC().fit(X, y), 20), backend="torch")


# ---------------------------------------------------------------- test_onnxml_lightgbm_converter.py + issue 14

lgb = pytest.importorskip("lightgbm")


def _lgb(model, n_features):
    from onnxmltools.convert import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType as F

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_lightgbm(model, initial_types=[("input", F([None, n_features]))], target_opset=9)


Y3 = np.array([100, -10, 50], dtype=np.float32)


@pytest.mark.parametrize("make, X, y", [
    (lambda: lgb.LGBMRegressor(n_estimators=3, min_child_samples=1, verbose=-1), X3, Y3),
    (lambda: lgb.LGBMRegressor(n_estimators=1, min_child_samples=1, verbose=-1), X3, Y3),
    (lambda: lgb.LGBMRegressor(n_estimators=2, max_depth=1, min_child_samples=1, verbose=-1), X3, Y3),
    (lambda: lgb.LGBMRegressor(verbose=-1), *_random()),
    (lambda: lgb.LGBMClassifier(verbose=-1), *_random(2)),
    (lambda: lgb.LGBMClassifier(n_estimators=3, min_child_samples=1, verbose=-1), X3, [0, 1, 0]),
    (lambda: lgb.LGBMClassifier(n_estimators=10, verbose=-1), *_random(3)),
], ids=["reg", "reg1", "reg2", "reg_random", "binary_random", "cls_small", "multi"])
def test_lightgbm(make, X, y):
    model = make().fit(X, y)
    check(_lgb(model, X.shape[1]), _with_edges(X))


def test_lightgbm_booster():
    data = lgb.Dataset(X3, label=[0, 1, 1.1])
    booster = lgb.train({"boosting_type": "gbdt", "objective": "regression", "n_estimators": 3,
                         "min_child_samples": 1, "max_depth": 1, "verbose": -1}, data)
    check(_lgb(booster, 2), X3)


def test_xgboost_from_onnxmltools():
    xgb = pytest.importorskip("xgboost")
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as F

    for n_classes in (2, 3):
        X, y = _random(n_classes, n_features=8)
        model = xgb.XGBClassifier(n_estimators=5, max_depth=3).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onx = convert_xgboost(model, initial_types=[("input", F([None, 8]))], target_opset=15)
        check(onx, _with_edges(X))
    X, y = _random(None, n_features=8)
    reg = xgb.XGBRegressor(n_estimators=5, max_depth=3).fit(X, y)
    onx = convert_xgboost(reg, initial_types=[("input", F([None, 8]))], target_opset=15)
    check(onx, _with_edges(X))


def test_pipeline_scaler_trees_file_and_backends(tmp_path):
    X, y = _random(3, n_total=200, n_features=6)
    pipe = make_pipeline(StandardScaler(), GradientBoostingClassifier(n_estimators=5, max_depth=3, random_state=0))
    onx = _sk(pipe.fit(X, y), 6)
    path = tmp_path / "pipe.onnx"
    path.write_bytes(onx.SerializeToString())
    Xe = _with_edges(X)
    expected = ort_outputs(onx, Xe)
    p = tuner.compile(str(path), backend="torch")
    np.testing.assert_array_equal(p.predict(Xe), expected[0])
    for backend in ("torchscript", "tvm"):
        check(onx, Xe, backend=backend)
    rf = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0))
    check(_sk(rf.fit(X, y), 6), Xe)


def _onnx_of(source: str, X, y):
    if source == "skl2onnx_pipeline":
        pipe = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0))
        return _sk(pipe.fit(X, y), X.shape[1])
    if source == "onnxmltools_lightgbm":
        return _lgb(lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y), X.shape[1])
    xgb = pytest.importorskip("xgboost")
    from onnxmltools.convert import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as F

    model = xgb.XGBClassifier(n_estimators=5, max_depth=3).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_xgboost(model, initial_types=[("input", F([None, X.shape[1]]))], target_opset=15)


@pytest.mark.parametrize("source", ["skl2onnx_pipeline", "onnxmltools_xgboost", "onnxmltools_lightgbm"])
def test_tune_onnx_model(tmp_path, source):
    """The issue's three files compile, tune, and the tuned predictor matches ONNX Runtime."""
    from tuner.measure import MeasureSettings

    X, y = _random(2, n_total=200, n_features=6)
    onx = _onnx_of(source, X, y)
    fast = MeasureSettings(warmup=1, min_repeats=3, min_seconds=0.02, timeout_s=60)
    report = tuner.tune(onx, X, db=str(tmp_path / "t.db"), batch_sizes=(64,), trials=3, time_budget=30,
                        progress=False, backends=("torch",), measure_settings=fast)
    assert report.trials_measured >= 1 and report.artifacts >= 1
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="nothing is tuned")
        p = tuner.load(onx, db=str(tmp_path / "t.db"))
    Xe = _with_edges(X)
    label, proba = ort_outputs(onx, Xe)
    assert_same_labels(p.predict(Xe), label.ravel(), what=f"{source}: tuned labels")
    assert_scores(p.predict_proba(Xe), proba, what=f"{source}: tuned probabilities")


def test_double_input_trees():
    """A double input: ONNX Runtime's trees compare in float64 then (values between float32s matter)."""
    X, y = _random(None, n_features=4)
    from onnx import TensorProto

    onx = _sk(RandomForestRegressor(n_estimators=3, max_depth=5, random_state=0).fit(X, y), 4)
    onx.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE  # skl2onnx's double output fails ORT's check
    X64 = X.astype(np.float64) + np.random.RandomState(1).choice([0.0, 1e-12, -1e-12], size=X.shape)
    check(onx, _with_edges(X64.astype(np.float32)).astype(np.float64))
    check(onx, X64)


def test_damaged_onnx_file(tmp_path):
    from strategies.frontends import InvalidModelFileError

    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07not a protobuf at all\xff\xff")
    with pytest.raises(InvalidModelFileError, match="bad.onnx is not a valid ONNX model"):
        tuner.compile(str(path), backend="torch")


@pytest.mark.parametrize("weights, post, modes", [
    ([0.2, 0.9, 0.6], "NONE", ["BRANCH_LEQ", "BRANCH_LT"]),
    ([0.2, 0.9, 0.6], "LOGISTIC", ["BRANCH_GT", "BRANCH_GTE"]),
    ([-0.4, 0.7, 0.1], "NONE", ["BRANCH_GTE", "BRANCH_LEQ"]),
    ([-0.4, 0.7, 0.1], "LOGISTIC", ["BRANCH_LT", "BRANCH_GT"]),
], ids=["pos_none", "pos_logistic", "mixed_none", "mixed_logistic"])
def test_one_score_binary_tree_classifier(weights, post, modes):
    """A hand-written two-class ensemble scoring class 0 only: ONNX Runtime's binary labels and probabilities,
    every branch mode, values exactly at the thresholds and NaN (tracked true at the root)."""
    from onnx import TensorProto, helper

    node = helper.make_node(
        "TreeEnsembleClassifier", ["X"], ["label", "probabilities"], domain="ai.onnx.ml",
        nodes_treeids=[0] * 5, nodes_nodeids=[0, 1, 2, 3, 4], nodes_featureids=[0, 1, 0, 0, 0],
        nodes_values=[0.5, 0.25, 0, 0, 0], nodes_modes=[modes[0], modes[1], "LEAF", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 2, 0, 0, 0], nodes_falsenodeids=[4, 3, 0, 0, 0],
        nodes_missing_value_tracks_true=[1, 0, 0, 0, 0],
        class_treeids=[0, 0, 0], class_nodeids=[2, 3, 4], class_ids=[0, 0, 0], class_weights=weights,
        classlabels_int64s=[3, 7], post_transform=post)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
                          [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                           helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])])
    onx = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 3)],
                            ir_version=8)
    grid = np.array([0.0, 0.25, 0.5, 0.75, np.nan, np.nextafter(np.float32(0.5), np.float32(1))], np.float32)
    X = np.array([[a, b] for a in grid for b in grid], np.float32)
    if post == "LOGISTIC" and min(weights) >= 0:  # ONNX Runtime labels by raw score > 0.5 there: refused
        with pytest.raises(tuner.UnsupportedModelError, match="non-negative weights"):
            tuner.compile(onx, backend="torch")
        return
    check(onx, X)


def test_scaler_folded_into_splits_is_exact():
    """ONNX Runtime scales in float32 and then compares: the splits moved onto the unscaled input must send
    every float32 value where ONNX Runtime does, also a few ulps around each threshold, for either sign of
    the scale, and NaN / +-inf."""
    from onnx import TensorProto, helper

    offset, scale = [0.1, -3.7], [3.3, -0.77]
    thresholds = [0.3333, -1.25, 2.0]
    scaler = helper.make_node("Scaler", ["X"], ["s"], domain="ai.onnx.ml", offset=offset, scale=scale)
    # root on feature 0, then feature 1, then feature 0 again
    trees = helper.make_node(
        "TreeEnsembleRegressor", ["s"], ["Y"], domain="ai.onnx.ml", n_targets=1,
        nodes_treeids=[0] * 7, nodes_nodeids=list(range(7)), nodes_featureids=[0, 1, 0, 0, 0, 0, 0],
        nodes_values=thresholds + [0.0] * 4, nodes_modes=["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GT"] + ["LEAF"] * 4,
        nodes_truenodeids=[1, 3, 5, 0, 0, 0, 0], nodes_falsenodeids=[2, 4, 6, 0, 0, 0, 0],
        nodes_missing_value_tracks_true=[0, 1, 0, 0, 0, 0, 0],
        target_treeids=[0] * 4, target_nodeids=[3, 4, 5, 6], target_ids=[0] * 4, target_weights=[1.0, 2.0, 3.0, 4.0])
    g = helper.make_graph([scaler, trees], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])])
    onx = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 3)],
                            ir_version=8)
    cols = []
    for j in range(2):
        vals = []
        for t in thresholds:
            x0 = np.float32(offset[j] + t / scale[j])
            for _ in range(6):
                x0 = np.nextafter(x0, np.float32(-np.inf))
            for _ in range(12):
                vals.append(x0)
                x0 = np.nextafter(x0, np.float32(np.inf))
        cols.append(np.array(vals + [np.nan, np.inf, -np.inf, 0.0], np.float32))
    X = np.array([[a, b] for a in cols[0] for b in cols[1]], np.float32)
    p = check(onx, X)
    assert p.model.graph.nodes[0].op.kind == "tree_ensemble"  # the scaler is gone: folded


@pytest.mark.parametrize("aggregate", [1, 0], ids=["sum", "average"])
def test_opset5_tree_ensemble(aggregate):
    """The opset-5 ``TreeEnsemble`` (hand-written: converters do not emit it yet): leaves apart from nodes,
    modes as a uint8 tensor, SUM or AVERAGE over two trees."""
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node(
        "TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", n_targets=2, aggregate_function=aggregate,
        post_transform=0, tree_roots=[0, 2],
        nodes_featureids=[0, 1, 1], nodes_modes=numpy_helper.from_array(np.array([0, 1, 3], np.uint8)),
        nodes_splits=numpy_helper.from_array(np.array([0.5, 0.25, 0.1 + 1e-9], np.float32)),
        nodes_truenodeids=[1, 0, 2], nodes_trueleafs=[0, 1, 1], nodes_falsenodeids=[2, 1, 3],
        nodes_falseleafs=[1, 1, 1], nodes_missing_value_tracks_true=[0, 1, 0],
        leaf_targetids=[0, 1, 0, 1], leaf_weights=numpy_helper.from_array(np.array([1, 2, 10, 20], np.float32)))
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])])
    onx = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)],
                            ir_version=10)
    grid = np.array([0.1, np.float32(0.1 + 1e-9), np.nextafter(np.float32(0.1), np.float32(1)), 0.25, 0.5,
                     np.nan, np.inf, -np.inf], np.float32)
    check(onx, np.array([[a, b] for a in grid for b in grid], np.float32))


def _svr_float64(onx, X):
    """The SVMRegressor of ``onx`` evaluated in float64 from its (float32) attributes, independently."""
    from onnx import helper

    a = {x.name: helper.get_attribute_value(x) for x in onx.graph.node[0].attribute}
    sv = np.asarray(a["support_vectors"], np.float32).astype(np.float64).reshape(a["n_supports"], -1)
    gamma, coef0, degree = [float(np.float32(v)) for v in a["kernel_params"]]
    dot = X.astype(np.float64) @ sv.T
    k = dot if a["kernel_type"] == b"LINEAR" else (gamma * dot + coef0) ** int(degree)
    return k @ np.asarray(a["coefficients"], np.float32).astype(np.float64) + np.float32(a["rho"][0])


@pytest.mark.parametrize("model", [
    SVR(kernel="rbf"), SVR(kernel="sigmoid", gamma=0.1), NuSVR(kernel="rbf"),
], ids=["rbf", "sigmoid", "nu_rbf"])
def test_svm_regressor(model):
    X, _ = _random(None, n_features=20)
    y = np.random.RandomState(3).rand(X.shape[0])
    check(_sk(model.fit(X, y), 20), X)


@pytest.mark.parametrize("model", [SVR(kernel="linear"), SVR(kernel="poly", degree=2, coef0=0.5)],
                         ids=["linear", "poly"])
def test_svm_regressor_dot_kernels(model):
    """ONNX Runtime sums these kernels' large, cancelling terms in float32 and lands up to 3.5e-5 (relative)
    from the float64 value of the same parameters: tunebird computes that float64 value (checked here
    independently), and is *not* within the score tolerance of ONNX Runtime on this data (xfail below)."""
    from tolerances import assert_close

    X, _ = _random(None, n_features=20)
    y = np.random.RandomState(3).rand(X.shape[0])
    onx = _sk(model.fit(X, y), 20)
    p = tuner.compile(onx, backend="torch")
    assert_close(p.predict(X), _svr_float64(onx, X), what="predict vs float64 evaluation")


@pytest.mark.xfail(strict=True, reason="ONNX Runtime's float32 sums for linear SVR kernels differ by > 1e-5")
def test_svm_regressor_linear_vs_onnxruntime_known_gap():
    X, _ = _random(None, n_features=20)
    y = np.random.RandomState(3).rand(X.shape[0])
    check(_sk(SVR(kernel="linear").fit(X, y), 20), X)

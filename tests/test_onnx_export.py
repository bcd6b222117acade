"""ONNX out: ``Predictor.to_onnx`` and ``tunebird export`` run in ONNX Runtime with the Predictor's outputs.

Each model is compiled with torch strategies, exported, run in ONNX Runtime on
rows with NaN, on one row (the batch dimension is dynamic) and on rows at the
model's thresholds with NaN and inf where the model accepts them, and compared
with the Predictor: labels identical, scores within ``assert_scores``.  The
``onnxruntime`` backend is checked against the torch backend the same way.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import onnx
import onnxruntime as ort
import tuner
from strategies.sampling import sample_inputs
from tolerances import assert_same_labels, assert_scores


def _rows(n: int = 120, f: int = 5, seed: int = 0, nan: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    if nan:
        X[::7, 1] = np.nan
        X[3::11, 3] = np.nan
    return X


def _session(proto):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _check(predictor, proto, X: np.ndarray) -> dict[str, np.ndarray]:
    """Run ``proto`` on ``X``, its first row and rows at the thresholds; each output equals the predictor's method."""
    meta = {p.key: p.value for p in proto.metadata_props}
    method_of = {out: m for m, out in json.loads(meta["outputs"]).items()}
    sess = _session(proto)
    assert [i.name for i in sess.get_inputs()] == ["X"]
    spec = predictor.model.input
    special = sample_inputs(predictor.model, 200, seed=3, nan=spec.allow_nan, inf=spec.allow_inf)  # at thresholds
    got = {}
    for rows in (X, X[:1], special):
        outs = sess.run(None, {"X": rows.astype(meta["input_dtype"])})
        for o, value in zip(sess.get_outputs(), outs):
            want = getattr(predictor, method_of[o.name])(rows)
            what = f"{meta['source']} {o.name}"
            if want.dtype.kind in "fc":
                assert_scores(value, want, what=what)
            else:
                assert_same_labels(value, want, what=what)
            got[o.name] = value
    return got


def _zoo():
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import GradientBoostingRegressor, IsolationForest, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X = _rows()
    Xc = np.nan_to_num(X)
    y3 = np.where(Xc[:, 0] > 0, "yes", "no").astype(object)
    y3[Xc[:, 2] > 0.8] = "maybe"
    yb = (Xc[:, 0] + Xc[:, 2] > 0).astype(int)
    rng = np.random.default_rng(1)
    Xcat = Xc.copy()
    Xcat[:, 0] = rng.integers(0, 4, len(Xc))
    Xcat[:, 1] = rng.integers(0, 3, len(Xc)) * 10.0
    onehot = ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), [0, 1])], remainder="passthrough")
    return {
        "rf_strings": (RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0).fit(X, y3), X,
                       ("gemm", "tree_traversal", "perfect_tree_traversal")),
        "gbdt_reg": (GradientBoostingRegressor(n_estimators=4, max_depth=3, random_state=0).fit(Xc, Xc[:, 1]), Xc,
                     ("gemm", "tree_traversal")),
        "xgb_clf": (xgb.XGBClassifier(n_estimators=4, max_depth=3).fit(X, (yb + (Xc[:, 3] > 1)).astype(int)), X,
                    ("gemm", "perfect_tree_traversal")),
        "xgb_binary": (xgb.XGBClassifier(n_estimators=4, max_depth=3).fit(X, yb), X, ("tree_traversal",)),
        "lgb_reg": (lgb.LGBMRegressor(n_estimators=4, num_leaves=7, verbose=-1).fit(X, Xc[:, 0]), X,
                    ("gemm", "tree_traversal")),
        "scaler_logreg": (make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(X, y3), X,
                          (None,)),
        "onehot_ridge": (make_pipeline(onehot, Ridge()).fit(Xcat, Xc[:, 2]), Xcat, (None,)),
        "pca": (PCA(n_components=3).fit(Xc), Xc, (None,)),
        "isolation_forest": (IsolationForest(n_estimators=4, random_state=0).fit(Xc), Xc, (None,)),
        "mlp_multilabel": (_multilabel_mlp(Xc), Xc, (None,)),
    }


def _multilabel_mlp(X: np.ndarray):
    """A multilabel MLPClassifier: ``predict`` is an int64 indicator matrix (an ONNX ``Greater`` + ``Cast``)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5]).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MLPClassifier((6,), max_iter=150, random_state=0).fit(X, Y)


ZOO = _zoo()


@pytest.mark.parametrize("name", list(ZOO))
def test_every_torch_strategy_exports_and_matches(name, tmp_path):
    model, X, strategies = ZOO[name]
    for strategy in strategies:
        p = tuner.compile(model, strategy=strategy)
        path = tmp_path / f"{name}.onnx"
        proto = p.to_onnx(path)
        assert path.is_file() and onnx.load(str(path)).graph.output[0].name == proto.graph.output[0].name
        got = _check(p, proto, X)
        if "label" in got and p.model.head.task == "classifier":
            assert set(got) == {"label", "probabilities"}


def test_every_method_alone():
    for name in ("isolation_forest", "scaler_logreg", "xgb_binary"):
        model, X, _ = ZOO[name]
        p = tuner.compile(model)
        for method in p.methods:
            proto = p.to_onnx(None, method=method)
            assert len(proto.graph.output) == 1
            _check(p, proto, X)


def test_split_plan_with_separate_post_transform():
    """A plan of two tasks (preprocessing, then the ensemble with its softmax outside the program)."""
    import xgboost as xgb
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from strategies.compile import CompiledTask, resolve_config
    from tuner.partition import split_graph
    from tuner.plan import Plan
    from tuner.predictor import Predictor

    X = _rows()
    y = (np.nan_to_num(X[:, 0]) > 0).astype(int) + (np.nan_to_num(X[:, 2]) > 1)
    model = make_pipeline(SimpleImputer(), StandardScaler(), xgb.XGBClassifier(n_estimators=3, max_depth=3)).fit(X, y)
    conv = tuner.compile(model).model
    parts = split_graph(conv.graph)
    assert parts is not None and len(parts) == 2 and parts[-1].post_transform.kind == "softmax"
    tasks = [CompiledTask(g, resolve_config(g, {"backend": "torch", "fuse_post": False})) for g in parts]
    p = Predictor(conv, [Plan(tuple(tasks))])
    _check(p, p.to_onnx(None), X)


def test_metadata_and_input_dtype():
    model, X, _ = ZOO["rf_strings"]
    p = tuner.compile(model, strategy="gemm")
    proto = p.to_onnx(None)
    meta = {q.key: q.value for q in proto.metadata_props}
    assert meta["source"] == p.model.source and meta["tunebird_version"] == tuner.__version__
    assert json.loads(meta["plan"])[0]["strategy"] == "gemm"
    assert json.loads(meta["classes"]) == p.classes_.tolist()
    elem = proto.graph.input[0].type.tensor_type.elem_type
    assert onnx.helper.tensor_dtype_to_np_dtype(elem) == np.dtype(meta["input_dtype"])
    assert meta["input_dtype"] in proto.doc_string and "tunebird" in proto.doc_string
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch


def test_tvm_plan_exports_by_rebuilding_its_torch_module():
    pytest.importorskip("tvm")
    model, X, _ = ZOO["xgb_clf"]
    p = tuner.compile(model, strategy="gemm", backend="tvm")  # programs build lazily: nothing compiles here
    proto = p.to_onnx(None)
    assert json.loads({q.key: q.value for q in proto.metadata_props}["plan"])[0]["backend"] == "tvm"
    _check(tuner.compile(model, strategy="gemm"), proto, X)


def test_tvm_tir_plan_is_refused_unless_the_default_is_asked():
    pytest.importorskip("tvm")
    model, X, _ = ZOO["gbdt_reg"]
    p = tuner.compile(model, backend="tvm-tir")
    with pytest.raises(tuner.UnsupportedModelError, match=r"tvm-tir.*fallback='default'"):
        p.to_onnx(None)
    proto = p.to_onnx(None, fallback="default")
    plan = json.loads({q.key: q.value for q in proto.metadata_props}["plan"])
    assert {c["backend"] for c in plan} == {"torch"}
    _check(tuner.compile(model), proto, X)


def test_refusals_name_what_was_given():
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    df = pd.DataFrame({"c": ["a", "b", "c", "a"] * 10, "x": np.arange(40.0)})
    onehot = ColumnTransformer([("oh", OneHotEncoder(), ["c"])], remainder="passthrough")
    model = make_pipeline(onehot, LogisticRegression()).fit(df, np.arange(40) % 2)
    with pytest.raises(tuner.UnsupportedModelError, match=r"string column.*'c'"):
        tuner.compile(model).to_onnx(None)
    from sklearn.svm import SVC

    X = _rows(60, 4, nan=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.9 deprecates probability=True
        svc = SVC(probability=True, random_state=0).fit(X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5))
    with pytest.raises(tuner.UnsupportedModelError, match=r"'pairwise_coupling'.*cannot be exported"):
        tuner.compile(svc).to_onnx(None)
    p = tuner.compile(ZOO["pca"][0])
    with pytest.raises(ValueError, match="no method 'predict_proba'.*it has transform"):
        p.to_onnx(None, method="predict_proba")
    with pytest.raises(ValueError, match="fallback"):
        p.to_onnx(None, fallback="native")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        p.to_onnx(None, batch_size=0)


def test_cli_export_on_a_tuned_db(tmp_path, capsys):
    import joblib

    from tuner import cli

    model, X, _ = ZOO["xgb_clf"]
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    db = str(tmp_path / "t.db")
    tuner.tune(str(path), X, db=db, batch_sizes=(64,), trials=2, progress=False, backends=("torch",))
    out = tmp_path / "model.onnx"
    assert cli.main(["export", str(path), "--db", db, "-o", str(out), "--batch-size", "64"]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "tuned plan" in printed and "label (predict)" in printed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = tuner.load(str(path), db=db)
    assert p.tuned
    _check(p, onnx.load(str(out)), X)
    assert cli.main(["export", str(path), "--db", db, "-o", str(tmp_path / "p.onnx"), "--method", "predict_proba"]) == 0
    assert [o.name for o in onnx.load(str(tmp_path / "p.onnx")).graph.output] == ["probabilities"]


@pytest.mark.parametrize("name,strategy", [("rf_strings", "gemm"), ("rf_strings", "tree_traversal"),
                                           ("xgb_clf", "perfect_tree_traversal"), ("scaler_logreg", None),
                                           ("onehot_ridge", None), ("isolation_forest", None)])
def test_onnxruntime_backend_matches_torch(name, strategy, tmp_path):
    model, X, _ = ZOO[name]
    p = tuner.compile(model, strategy=strategy, backend="onnxruntime", threads=1)
    ref = tuner.compile(model, strategy=strategy, backend="torch", threads=1)
    program = p.warm_up().plans[0].tasks[-1].program()
    assert program.session.get_session_options().intra_op_num_threads == 1
    spec = p.model.input
    special = sample_inputs(p.model, 200, seed=4, nan=spec.allow_nan, inf=spec.allow_inf)
    p.save(tmp_path / "m.tb")
    loaded = tuner.load_artifact(tmp_path / "m.tb")
    for rows in (X, X[:1], special):
        for method in p.methods:
            want = getattr(ref, method)(rows)
            for got in (getattr(p, method)(rows), getattr(loaded, method)(rows)):
                if want.dtype.kind in "fc":
                    assert_scores(got, want, what=f"{name} {method}")
                else:
                    assert_same_labels(got, want, what=f"{name} {method}")
    assert json.loads({q.key: q.value for q in p.to_onnx(None).metadata_props}["plan"])[0]["backend"] == "onnxruntime"

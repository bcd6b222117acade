"""Bad input a user can act on: +-inf where scikit-learn's HistGradientBoosting accepts it (and only
there), model files that are no valid model, and damaged tuning logs.  Each error is one line that
names the column or the file; no native stack trace, no third-party warning reaches the terminal.

Small models are trained on the fly; the CLI runs in-process (``tuner.cli.main``) with its file
descriptors captured, so a line written by C++ straight to stderr would show.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline

import records
import strategies
import tuner
from records.database import DamagedDatabaseError, DeviceRecord, TrialRecord, WorkloadRecord
from strategies import reference
from strategies.ground.errors import UnsupportedModelError
from strategies.frontends import InvalidModelFileError
from strategies.frontends.lightgbm import model_text_problem
from strategies.frontends.sklearn import STEPS, _trees
from strategies.frontends.xgboost import ubjson_problem
from tests.conftest import need_treebeard
from tests.tolerances import assert_close, assert_same_labels, assert_scores
from tuner import cli

HGB_NAMES = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]


# --------------------------------------------------------------------------- HistGradientBoosting and inf


@pytest.fixture
def hgb_per_column(monkeypatch):
    """The HistGradientBoosting converter that refuses inf in categorical columns only (the registered one,
    as :func:`test_hgb_converter_is_registered` checks; set again here so these tests say what they test)."""
    for name in HGB_NAMES:
        monkeypatch.setitem(STEPS, name, _trees.hist_gradient_boosting)


def test_hgb_converter_is_registered():
    for name in HGB_NAMES:
        assert STEPS[name] is _trees.hist_gradient_boosting


def hgb_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Columns: 0 numeric with NaN (NaN tells the target), 1 categorical 0..5, 2 numeric."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 6, n).astype(float), rng.normal(size=n)])
    X[rng.random(n) < 0.2, 0] = np.nan
    y = np.isnan(X[:, 0]) * 2.0 + (X[:, 1] % 2) + np.nan_to_num(X[:, 2]) + rng.normal(scale=0.1, size=n)
    return X, y


def probe_rows(seed: int = 1) -> np.ndarray:
    """+-inf, NaN, 0 and huge values in the numeric columns; known, unknown, fractional and NaN categories."""
    rng = np.random.default_rng(seed)
    X, _ = hgb_data(60, seed)
    specials = np.array([np.inf, -np.inf, np.nan, 0.0, 1e308, -1e308])
    for j in (0, 2):
        hit = rng.random(len(X)) < 0.5
        X[hit, j] = rng.choice(specials, size=int(hit.sum()))
    X[:8, 0] = [np.inf, -np.inf, np.inf, -np.inf, np.nan, np.inf, 0.0, -np.inf]
    X[:8, 2] = [np.inf, np.inf, -np.inf, -np.inf, np.inf, np.nan, -np.inf, 0.0]
    X[:, 1] = np.resize([0, 1, 2, 3, 4, 5, 7, -1, np.nan, 2.5, 1e9], len(X))
    return X


def hgb_models():
    X, y = hgb_data()
    reg = HistGradientBoostingRegressor(max_iter=15, categorical_features=[1], random_state=0).fit(X, y)
    clf = HistGradientBoostingClassifier(max_iter=10, categorical_features=[1], random_state=0).fit(
        X, np.digitize(y, [0.5, 2.0]))
    binary = HistGradientBoostingClassifier(max_iter=10, categorical_features=[1], random_state=0).fit(X, y > 1)
    return {"regressor": reg, "multiclass": clf, "binary": binary}


def test_hgb_probe_covers_a_split_of_nan_from_all_numbers():
    # +inf <= +inf goes to the non-missing side: the case that tells inf from NaN
    reg = hgb_models()["regressor"]
    thresholds = [n["num_threshold"] for it in reg._predictors for p in it for n in p.nodes if not n["is_leaf"]]
    assert np.isposinf(thresholds).any()


@pytest.mark.parametrize("kind", ["regressor", "multiclass", "binary"])
def test_hgb_accepts_inf_in_numeric_columns_as_sklearn_does(hgb_per_column, kind):
    native = hgb_models()[kind]
    X = probe_rows()
    conv = strategies.convert(native)
    assert [c.allow_inf for c in conv.input.columns] == [True, False, True]
    assert all(c.allow_nan for c in conv.input.columns)
    pred = tuner.compile(native)
    for method in conv.methods:
        want = getattr(native, method)(X)
        what = f"{kind}.{method}"
        if method == "predict" and kind != "regressor":
            assert_same_labels(pred.predict(X), want, what)
            assert_same_labels(reference.predict(conv, X, method), want, what + " (reference)")
        else:
            assert_scores(getattr(pred, method)(X), want, what=what)
            assert_close(reference.predict(conv, X, method), want, what=what + " (reference)")


@pytest.mark.parametrize("strategy", ["gemm", "tree_traversal", "perfect_tree_traversal"])
def test_hgb_inf_routes_alike_in_every_torch_strategy(hgb_per_column, strategy):
    native = hgb_models()["regressor"]
    X = probe_rows(seed=2)
    pred = tuner.compile(native, strategy=strategy, backend="torch")
    assert_scores(pred.predict(X), native.predict(X), what=strategy)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_hgb_refuses_inf_in_a_categorical_column_naming_it(hgb_per_column, value):
    native = hgb_models()["binary"]
    X = probe_rows()[:5]
    X[3, 1] = value
    with pytest.raises(ValueError):
        native.predict(X)
    pred = tuner.compile(native)
    for call in (pred.predict, pred.predict_proba, lambda X: reference.predict(strategies.convert(native), X)):
        with pytest.raises(ValueError, match="infinity in column 1") as info:
            call(X)
        one_line(str(info.value))


def test_hgb_names_the_column_of_a_frame(hgb_per_column):
    pd = pytest.importorskip("pandas")
    X, y = hgb_data()
    df = pd.DataFrame(X, columns=["age", "colour", "size"])
    native = HistGradientBoostingRegressor(max_iter=5, categorical_features=["colour"], random_state=0).fit(df, y)
    pred = tuner.compile(native)
    good = df.iloc[:6].copy()
    good["age"] = [np.inf, -np.inf, 1.0, np.nan, 0.0, np.inf]
    good["size"] = [-np.inf, np.inf, np.inf, 0.0, np.nan, 1.0]
    assert_scores(pred.predict(good), native.predict(good))
    bad = good.copy()
    bad.loc[bad.index[2], "colour"] = np.inf
    with pytest.raises(ValueError):
        native.predict(bad)
    with pytest.raises(ValueError, match="infinity in column 'colour'"):
        pred.predict(bad)


def test_hgb_in_a_pipeline_refuses_inf_in_the_input_column_that_becomes_categorical(hgb_per_column):
    X, y = hgb_data()
    # the HGB's categorical column 2 is input column 1; its numeric ones are input columns 2 and 0
    ct = ColumnTransformer([("num", "passthrough", [2, 0]), ("cat", "passthrough", [1])])
    native = make_pipeline(ct, HistGradientBoostingRegressor(max_iter=8, categorical_features=[2],
                                                             random_state=0)).fit(X, y)
    conv = strategies.convert(native)
    assert [c.allow_inf for c in conv.input.columns] == [True, False, True]
    X = probe_rows(seed=3)
    assert_close(reference.predict(conv, X), native.predict(X))
    X[0, 1] = np.inf
    with pytest.raises(ValueError):
        native.predict(X)
    with pytest.raises(ValueError, match="infinity in column 1"):
        reference.predict(conv, X)


def test_hgb_without_categories_accepts_inf_everywhere(hgb_per_column):
    X, y = hgb_data()
    native = HistGradientBoostingRegressor(max_iter=8, random_state=0).fit(X, y)
    conv = strategies.convert(native)
    assert conv.input.allow_inf and conv.input.allow_nan
    X = probe_rows()
    X[:, 1] = np.resize([np.inf, -np.inf, 3.0], len(X))
    assert_scores(tuner.compile(native).predict(X), native.predict(X))


# --------------------------------------------------------------------------- model files


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.fixture(scope="module")
def xgb_files(tmp_path_factory) -> dict[str, Path]:
    xgboost = pytest.importorskip("xgboost")
    d = tmp_path_factory.mktemp("xgb")
    rng = np.random.default_rng(0)
    X = rng.random((200, 3))
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(X, label=X[:, 0] > 0.5), 3)
    booster.save_model(str(d / "ok.json"))
    booster.save_model(str(d / "ok.ubj"))
    return {"json": d / "ok.json", "ubj": d / "ok.ubj"}


@pytest.fixture(scope="module")
def lgb_text() -> bytes:
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    X = rng.random((300, 4))
    X[:, 3] = rng.integers(0, 12, 300)
    ds = lightgbm.Dataset(X, X[:, 0] + (X[:, 3] % 3), categorical_feature=[3], params={"verbose": -1})
    booster = lightgbm.train({"num_leaves": 4, "verbose": -1}, ds, 4)
    return booster.model_to_string().encode()


def bad_files(tmp: Path, xgb_files: dict[str, Path], lgb_text: bytes) -> dict[str, tuple[Path, str]]:
    """name -> (file, what its one-line error says after the file name)."""
    ok_json, ok_ubj = xgb_files["json"].read_bytes(), xgb_files["ubj"].read_bytes()
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, 600, dtype=np.uint8).tobytes()
    return {
        "json-random-bytes": (write(tmp / "a.json", noise), "is not a valid XGBoost JSON model: it is not UTF-8"),
        "json-empty": (write(tmp / "b.json", b""), "is not a valid XGBoost JSON model: the file is empty"),
        "json-no-learner": (write(tmp / "c.json", '{"learner": 3}'), "is not a valid XGBoost JSON model: it has no 'learner'"),
        "json-array": (write(tmp / "d.json", "[1, 2]"), "is not a valid XGBoost JSON model: its top level is not a JSON object"),
        "json-truncated": (write(tmp / "e.json", ok_json[: len(ok_json) // 2]), "is not a valid XGBoost JSON model: invalid JSON"),
        "json-not-json": (write(tmp / "f.json", "hello"), "is not a valid XGBoost JSON model: invalid JSON"),
        "ubj-random-bytes": (write(tmp / "a.ubj", noise), "is not a valid XGBoost UBJSON model"),
        "ubj-truncated": (write(tmp / "b.ubj", ok_ubj[: len(ok_ubj) // 2]), "is not a valid XGBoost UBJSON model: it is cut off"),
        "txt-random-bytes": (write(tmp / "a.txt", noise), "is not a valid LightGBM text model"),
        "txt-prose": (write(tmp / "b.txt", "not a model\n"), "is not a valid LightGBM text model: its first line"),
        "txt-empty": (write(tmp / "c.txt", ""), "is not a valid LightGBM text model: the file is empty"),
        "txt-truncated": (write(tmp / "d.txt", lgb_text[: len(lgb_text) // 3]), "is not a valid LightGBM text model"),
        "txt-crlf": (write(tmp / "e.txt", lgb_text.replace(b"\n", b"\r\n")), "tree_sizes does not match"),
        "joblib-random-bytes": (write(tmp / "a.joblib", noise), "is not a valid scikit-learn joblib/pickle file"),
        "pkl-text": (write(tmp / "b.pkl", "hello\n"), "is not a valid scikit-learn joblib/pickle file"),
        "pkl-missing-module": (write(tmp / "c.pkl", b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x08nomodule"
                                                    b"\x94\x8c\x03Foo\x94\x93\x94)\x81\x94."),
                               "cannot be unpickled here: No module named 'nomodule'"),
        "pkl-truncated": (write(tmp / "d.pkl", pickle.dumps(list(range(100)))[:40]), "unpickling failed"),
    }


def test_invalid_model_file_error_is_both_kinds():
    assert issubclass(InvalidModelFileError, UnsupportedModelError)
    assert issubclass(InvalidModelFileError, ValueError)


def test_bad_model_files_give_one_line_naming_the_file(tmp_path, xgb_files, lgb_text):
    for name, (path, says) in bad_files(tmp_path, xgb_files, lgb_text).items():
        for load in (strategies.load_model, tuner.compile):
            with pytest.raises(InvalidModelFileError) as info:
                load(str(path))
            message = one_line(str(info.value))
            assert message.startswith(f"{path} "), (name, message)
            assert says in message, (name, message)
            assert "Stack trace" not in message and "[bt]" not in message and len(message) < 300, (name, message)


def test_good_model_files_still_load(xgb_files, lgb_text, tmp_path):
    for path in xgb_files.values():
        assert type(strategies.load_model(path)).__name__ == "Booster"
    booster = strategies.load_model(write(tmp_path / "m.txt", lgb_text))
    assert booster.num_trees() == 4
    assert strategies.convert(tmp_path / "m.txt").graph.ops[0].n_features == 4


def test_unknown_extension_names_the_supported_ones(tmp_path):
    path = write(tmp_path / "model.onnx2", b"x")
    with pytest.raises(UnsupportedModelError) as info:
        tuner.compile(path)
    message = one_line(str(info.value))
    for suffix in (".json", ".ubj", ".txt", ".joblib", ".pkl"):
        assert suffix in message


def test_a_lightgbm_file_cut_anywhere_is_refused_or_whole(lgb_text, tmp_path):
    """LightGBM trusts the file's tree_sizes offsets: a truncated file can make it read past the end and
    abort the process.  Every cut is refused before LightGBM sees it, or keeps all the trees."""
    lines = lgb_text.splitlines(keepends=True)
    cuts = [b"".join(lines[:i]) for i in range(len(lines))] + [lgb_text[:i] for i in range(0, len(lgb_text), 97)]
    path = tmp_path / "cut.txt"
    for data in cuts:
        if model_text_problem(data) is None:
            assert strategies.load_model(write(path, data)).num_trees() == 4
        else:
            with pytest.raises(InvalidModelFileError):
                strategies.load_model(write(path, data))


def test_an_xgboost_ubj_file_cut_anywhere_is_refused(xgb_files, tmp_path):
    """XGBoost's UBJSON reader trusts the lengths in the file (a truncated file crashed it): every cut
    is refused before XGBoost reads it."""
    data = xgb_files["ubj"].read_bytes()
    path = tmp_path / "cut.ubj"
    for n in range(0, len(data), 7):
        with pytest.raises(InvalidModelFileError, match="is not a valid XGBoost UBJSON model: "):
            strategies.load_model(write(path, data[:n]))
    assert ubjson_problem(data) is None and ubjson_problem(data + b"Z") == "1 bytes follow the model"


@pytest.mark.parametrize("command", ["bench", "tune"])
def test_cli_prints_one_line_for_a_bad_model_file(command, tmp_path, xgb_files, lgb_text, capfd):
    files = bad_files(tmp_path, xgb_files, lgb_text)
    for name in ("json-no-learner", "json-random-bytes", "ubj-truncated", "txt-truncated", "txt-prose",
                 "joblib-random-bytes"):
        path, says = files[name]
        assert cli.main([command, str(path), "--db", str(tmp_path / "t.db")]) == 1
        out, err = capfd.readouterr()
        assert out == ""
        line = one_line(err)
        assert line.startswith(f"tunebird: error: {path} ") and says in line, (name, err)
    assert cli.main([command, str(write(tmp_path / "model.xyz", b"x"))]) == 1
    assert "expected one of" in one_line(capfd.readouterr().err)


def test_warnings_while_parsing_a_model_file_go_to_the_debug_log(tmp_path, caplog):
    from sklearn.linear_model import LinearRegression

    import sklearn

    model = LinearRegression().fit(np.eye(3), [1.0, 2.0, 3.0])
    data = pickle.dumps(model)
    version = sklearn.__version__.encode()
    assert data.count(version) == 1
    older = b"0" * (len(version) - 2) + b".0"  # a version of the same length: the pickle stays valid
    path = write(tmp_path / "old.pkl", data.replace(version, older))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with pytest.warns(UserWarning):  # scikit-learn warns when it unpickles another version's model
            joblib.load(path)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG, "strategies.frontends"):
        warnings.simplefilter("always")
        loaded = strategies.load_model(path)
    assert type(loaded).__name__ == "LinearRegression"
    assert caught == []
    assert any("InconsistentVersionWarning" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


def test_the_old_higgs_model_loads_without_a_warning():
    # in a fresh process: XGBoost emits its notice once per process, so another test may have had it
    higgs = need_treebeard() / "higgs_xgb_model_save.json"
    code = textwrap.dedent(f"""
        import logging, warnings
        logging.basicConfig(level=logging.DEBUG, format="LOG %(name)s %(message)s")
        filters = list(warnings.filters)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import strategies
            strategies.load_model({str(higgs)!r})
        assert not [w for w in caught if "XGBoost" in str(w.message)], [str(w.message) for w in caught]
        assert list(warnings.filters) == filters
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert any("before XGBoost 1.6" in line for line in out.stderr.splitlines() if line.startswith("LOG "))
    assert not [line for line in out.stderr.splitlines() if "Warning" in line and not line.startswith("LOG ")]


# --------------------------------------------------------------------------- damaged tuning logs


FP = "f" * 64
WORKLOAD = "a" * 64


def small_log(path: Path, n_trials: int = 1) -> Path:
    with records.open_database(path) as db:
        db.register_device(DeviceRecord(fingerprint=FP, cpu_model="test"))
        db.register_workload(WorkloadRecord(WORKLOAD, "test workload", ("tree_ensemble",)))
        db.add_trials(TrialRecord(WORKLOAD, FP, 1, {"i": i, "pad": "x" * 200}, latency_median_s=1e-3 + i * 1e-6)
                      for i in range(n_trials))
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path


def check_damaged_message(message: str, path: Path) -> None:
    line = one_line(message)
    assert str(path) in line and "damaged" in line, line
    assert "backup" in line and "tunebird records import" in line, line
    assert "sqlalche.me" not in line and "Traceback" not in line


def damaged_logs(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    good = small_log(tmp_path / "good.db", n_trials=50).read_bytes()
    header = bytearray(good)
    header[:16] = b"not sqlite at all"[:16]
    return {
        "random-bytes": write(tmp_path / "random.db", rng.integers(0, 256, 8192, dtype=np.uint8).tobytes()),
        "truncated-half": write(tmp_path / "half.db", good[: len(good) // 2]),
        "truncated-100-bytes": write(tmp_path / "short.db", good[:100]),
        "bad-header": write(tmp_path / "header.db", bytes(header)),
    }


@pytest.mark.parametrize("create", [True, False])
def test_open_database_on_a_damaged_file_says_how_to_recover(tmp_path, create):
    for name, path in damaged_logs(tmp_path).items():
        before = path.read_bytes()
        with pytest.raises(DamagedDatabaseError) as info:
            records.open_database(path, create=create)
        check_damaged_message(str(info.value), path)
        assert isinstance(info.value, records.SchemaVersionError)
        assert path.read_bytes() == before, f"{name}: opening changed the damaged file"


def test_damage_found_after_opening_is_reported_the_same_way(tmp_path):
    path = small_log(tmp_path / "log.db", n_trials=2000)
    data = bytearray(path.read_bytes())
    page = 4096
    n_pages = len(data) // page
    # the trials were written last: spoil pages near the end (their b-tree page type becomes invalid)
    for p in range(n_pages * 2 // 3, n_pages - 1, 3):
        data[p * page:(p + 1) * page] = b"\xff" * page
    path.write_bytes(bytes(data))
    db = records.open_database(path, create=False)
    try:
        assert db.devices()[0].fingerprint == FP
        with pytest.raises(DamagedDatabaseError) as info:
            db.trials()
        check_damaged_message(str(info.value), path)
    finally:
        db.close()


def test_cli_prints_one_line_for_a_damaged_log(tmp_path, capfd):
    logs = damaged_logs(tmp_path)
    for argv in (["records"], ["records", "export", str(tmp_path / "out.jsonl")], ["costmodel", "eval"]):
        for name, path in logs.items():
            assert cli.main([*argv, "--db", str(path)]) == 1, (argv, name)
            out, err = capfd.readouterr()
            assert out == ""
            line = one_line(err)
            assert line.startswith("tunebird: error: "), line
            check_damaged_message(line, path)


def test_cli_tune_on_a_damaged_log(tmp_path, capfd):
    from sklearn.tree import DecisionTreeRegressor

    X = np.random.default_rng(0).random((50, 3))
    model = tmp_path / "tree.joblib"
    joblib.dump(DecisionTreeRegressor(max_depth=2).fit(X, X[:, 0]), model)
    path = damaged_logs(tmp_path)["random-bytes"]
    assert cli.main(["tune", str(model), "--db", str(path), "--trials", "1", "-q"]) == 1
    out, err = capfd.readouterr()
    check_damaged_message(err.strip().splitlines()[-1], path)
    assert err.startswith("tunebird: error: ") and len(err.strip().splitlines()) == 1, err

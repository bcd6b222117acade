"""The mixed-type pipeline workload of the bench (``bench/pipelines.py``): the generator keeps its promises.

Small frames only (2,000 rows): the suite's 50,000-row models are not trained here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench import pipelines as P

N = 2_000


def _is_nan(v: object) -> bool:
    return isinstance(v, float) and math.isnan(v)


@pytest.fixture(scope="module")
def train():
    return P.make_frame(N, P.TRAIN_SEED)


@pytest.fixture(scope="module")
def pool():
    return P.make_frame(N, P.POOL_SEED, unseen=P.STR_UNSEEN)[0]


def test_columns_and_dtypes(train):
    X, y = train
    assert tuple(X.columns) == P.COLUMNS and len(X) == N
    assert len(P.STRING_COLUMNS) == 6 and sorted(P.STRING_COLUMNS.values()) == [3, 8, 20, 50, 120, 300]
    assert len(P.NUMERIC_COLUMNS) == 8
    for c in P.STRING_COLUMNS:
        assert X[c].dtype == object, c  # not pandas' str dtype, which would turn None into NaN
        kinds = {type(v).__name__ for v in X[c]}
        assert kinds == {"str", "NoneType", "float"}, (c, kinds)  # str, None and NaN
        assert all(_is_nan(v) for v in X[c] if isinstance(v, float))
    for c in P.NUMERIC_COLUMNS:
        assert X[c].dtype == np.float64, c
    assert set(np.unique(y)) == {0, 1} and 0.3 < y.mean() < 0.7


def test_missing_values_and_skew(train):
    X, _ = train
    f = P.missing_fractions(X)
    for c in P.STRING_COLUMNS:
        assert 0.015 < f[c]["nan"] < 0.05 and 0.002 < f[c]["none"] < 0.025, (c, f[c])
        assert f[c]["unseen"] == 0, c  # training data hold only the fitted categories
        assert set(X[c].dropna()) <= set(P.categories(c))
    for c in P.NUMERIC_COLUMNS:
        assert 0.03 < f[c]["nan"] < 0.075, (c, f[c])
    counts = X["merchant"].value_counts()
    assert counts.iloc[0] > 20 * counts.iloc[-1]  # skewed frequencies
    assert X["plan"].nunique() == 3 and X["channel"].nunique() == 8


def test_serving_pool_has_unseen_categories_and_missing(train, pool):
    X, _ = train
    f = P.missing_fractions(pool)
    for c in P.STRING_COLUMNS:
        assert 0.004 < f[c]["unseen"] < 0.02, (c, f[c])
        assert f[c]["nan"] > 0 and f[c]["none"] > 0, c
        new = set(pool[c].dropna()) - set(P.categories(c))
        assert new and not new & set(X[c].dropna()), c
    assert "unseen at fit time" in P.describe_pool(pool)


def test_generator_is_reproducible():
    a, ya = P.make_frame(300, 5, unseen=P.STR_UNSEEN)
    b, yb = P.make_frame(300, 5, unseen=P.STR_UNSEEN)
    pd.testing.assert_frame_equal(a, b)
    assert (ya == yb).all()


def test_batches_keep_none_and_nan_through_the_worker_file(pool, tmp_path):
    from bench.measure import load_inputs, save_inputs

    batches = {b: P.rotating_frames(pool, b, n_batches=2, seed=b) for b in (1, 64)}
    assert [len(x) for x in batches[64]] == [64, 64] and list(batches[64][0].index) == list(range(64))
    save_inputs(tmp_path / "inputs.pkl", batches)
    back = load_inputs(tmp_path / "inputs.pkl")
    for b, xs in batches.items():
        for x, y in zip(xs, back[b]):
            pd.testing.assert_frame_equal(x, y)
    big = {2000: P.rotating_frames(pool, 2000, n_batches=1, seed=0)}
    save_inputs(tmp_path / "big.pkl", big)
    city = load_inputs(tmp_path / "big.pkl")[2000][0]["city"]
    assert city.dtype == object and any(v is None for v in city) and any(_is_nan(v) for v in city)


def test_suite_registry():
    from bench import models
    from bench.tune import ALL_BATCH_SIZES, batch_sizes_for

    for name in ("pipe_hgb", "pipe_xgb", "pipe_logreg"):
        spec = models.SPECS[name]
        assert spec.frame and spec.train is not None
        assert batch_sizes_for(name, ALL_BATCH_SIZES) == (1, 1024, 10_000, 100_000)
    assert batch_sizes_for("higgs", ALL_BATCH_SIZES) == ALL_BATCH_SIZES
    # the pipelines do not shift the other models' pool seeds (1000 + rank among the array models)
    X, _ = models.input_rows("xgb_multiclass", None, 8)
    np.testing.assert_array_equal(X, models.make_data(8, seed=1011, nan=0.02)[0])


def test_onnx_feed_reproduces_scikit_learn_on_none_nan_and_unseen(train, pool):
    """The ONNX Runtime peer's input convention (None -> "None", NaN -> "nan") gives scikit-learn's outputs."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    import onnxruntime as ort
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from bench.peers.onnx import frame_columns, frame_feed, frame_to_onnx

    X, y = train
    model = make_pipeline(P.preprocessor(), LogisticRegression(max_iter=1000)).fit(X, y)
    columns = frame_columns(model)
    assert [c for c, kind in columns if kind == "string"] == list(P.STRING_COLUMNS)
    sess = ort.InferenceSession(frame_to_onnx(model, columns).SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["probabilities"], frame_feed(columns)(pool))[0]
    np.testing.assert_allclose(got, model.predict_proba(pool), atol=1e-5)

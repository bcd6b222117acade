"""``Predictor.kneighbors``: the nearest training rows of KNeighborsClassifier / KNeighborsRegressor, exactly as
scikit-learn's ``kneighbors`` returns them.

Indices identical (also among tied neighbours, whose order scikit-learn's brute-force search sets by its heap
and its sort, and differently for few and for many query rows), distances within the score tolerance, on
integer-valued data full of exact ties; the reference evaluator likewise.  Training sets above scikit-learn's
256-row chunk are compared with scikit-learn on one OpenMP thread (on more it merges per-thread heaps: the
README's caveat).  Also: ``n_neighbors`` other than the fitted one, ``return_distance=False``, the refusals
(``X=None``, bad ``n_neighbors``, ONNX export, distributed scoring), torchscript and saved artifacts, a tuned
predictor, and the backends that build only the index-order selections (tvm, inductor) on tie-free data.
"""

from __future__ import annotations

import numpy as np
import pytest
import threadpoolctl
from sklearn.cluster import KMeans
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import strategies
import tuner
from strategies import reference
from strategies.ground.errors import UnsupportedModelError
from strategies.ir.neighbors import parallel_on_y
from tolerances import assert_same_labels, assert_scores
from tuner.measure import MeasureSettings
from tuner.scoring import output_layout

pytestmark = pytest.mark.filterwarnings("ignore:Parameter p is found in metric_params")

FAST = MeasureSettings(warmup=1, min_repeats=3, min_seconds=0.02, timeout_s=120)
METRICS = {"euclidean": {}, "manhattan": {}, "minkowski": dict(p=3), "chebyshev": {}, "cosine": {}}


def grid(n: int, seed: int, features: int = 3) -> np.ndarray:
    """Small integers: distances tie exactly, and every form computes them exactly."""
    return np.random.default_rng(seed).integers(-3, 4, size=(n, features)).astype(np.float64)


def fit(cls, k: int, X: np.ndarray, **params):
    y = np.arange(len(X)) % 4
    return cls(k, algorithm="brute", **params).fit(X, y if cls is KNeighborsClassifier else y * 1.5)


def check(model, p, X: np.ndarray, what: str, **kw) -> None:
    """``p.kneighbors`` and the reference against scikit-learn: indices identical, distances within tolerance."""
    want_d, want_i = model.kneighbors(X, **kw)
    got_d, got_i = p.kneighbors(X, **kw)
    assert got_d.dtype == np.float64 and got_i.dtype == np.int64, what
    assert_same_labels(got_i, want_i, what=f"{what} indices")
    assert_scores(got_d, want_d, what=f"{what} distances")
    if not kw:
        ref_d, ref_i = reference.predict(p.model, X, "kneighbors")
        assert_same_labels(ref_i, want_i, what=f"{what} reference indices")
        assert_scores(ref_d, want_d, what=f"{what} reference distances")


QUERIES = (80, 5, 1)  # more rows than fitted (scikit-learn's parallel_on_X order), fewer (parallel_on_Y)


@pytest.mark.parametrize("cls", [KNeighborsClassifier, KNeighborsRegressor])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "minkowski", "chebyshev"])
def test_ties_as_scikit_learn(metric, weights, cls):
    Xt, Xq = grid(60, 0), grid(80, 1)
    for k in (1, 4, 6):
        model = fit(cls, k, Xt, weights=weights, metric=metric, **METRICS[metric])
        p = tuner.compile(model, backend="torch")
        assert "kneighbors" in p.methods
        for n in QUERIES:
            check(model, p, Xq[:n], f"{cls.__name__} k={k} {weights} {metric} n={n}")
        # the predictions are untouched by the extra method
        method = "predict_proba" if cls is KNeighborsClassifier else "predict"
        assert_scores(getattr(p, method)(Xq), getattr(model, method)(Xq), what=method)


def test_the_two_tie_orders_differ_and_both_are_kept():
    """For few query rows scikit-learn re-heaps before sorting; the head picks the order by the row count."""
    Xt, Xq = grid(60, 0), grid(80, 1)
    model = fit(KNeighborsRegressor, 6, Xt)
    assert parallel_on_y(5, 60) and not parallel_on_y(80, 60)
    many, few = model.kneighbors(Xq, return_distance=False), model.kneighbors(Xq[:5], return_distance=False)
    assert not np.array_equal(many[:5], few)  # the data make the orders differ
    p = tuner.compile(model, backend="torch")
    assert_same_labels(p.kneighbors(Xq, return_distance=False), many)
    assert_same_labels(p.kneighbors(Xq[:5], return_distance=False), few)


def test_more_than_fifteen_neighbours():
    """Past 15 values scikit-learn's sort is an introsort, not a stable one."""
    Xt, Xq = grid(90, 2), grid(100, 3)
    model = fit(KNeighborsClassifier, 20, Xt, weights="distance")
    p = tuner.compile(model, backend="torch")
    for n in QUERIES:
        check(model, p, Xq[:n], f"k=20 n={n}")


@pytest.mark.parametrize("cls", [KNeighborsClassifier, KNeighborsRegressor])
def test_cosine(cls):
    """scikit-learn's cosine path picks among ties with ``argpartition``: the reference follows it on tied
    data; the compiled program matches where no distances tie."""
    model = fit(cls, 4, grid(60, 4), metric="cosine")
    Xq = grid(30, 5)
    want_d, want_i = model.kneighbors(Xq)
    ref_d, ref_i = reference.predict(strategies.convert(model), Xq, "kneighbors")
    assert_same_labels(ref_i, want_i, what="reference indices")
    assert_scores(ref_d, want_d, what="reference distances")
    rng = np.random.default_rng(6)
    model = fit(cls, 4, rng.normal(size=(60, 3)), metric="cosine")
    check(model, tuner.compile(model, backend="torch"), rng.normal(size=(30, 3)), "cosine")


def test_float32_fit_and_queries():
    Xt, Xq = grid(50, 7).astype(np.float32), grid(60, 8).astype(np.float32)
    Xt[:, 0] += np.float32(0.1)
    model = fit(KNeighborsRegressor, 5, Xt, weights="distance")
    p = tuner.compile(model, backend="torch")
    for n in (60, 3):
        check(model, p, Xq[:n], f"float32 n={n}")


def test_training_set_past_one_chunk():
    """More than 256 fitted rows: scikit-learn on one thread (README: on more it merges per-thread heaps)."""
    Xt, Xq = grid(300, 9), grid(400, 10)
    model = fit(KNeighborsClassifier, 5, Xt, metric="manhattan")
    p = tuner.compile(model, backend="torch")
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        for n in (400, 20):
            check(model, p, Xq[:n], f"300 fitted n={n}")


def test_n_neighbors_and_return_distance():
    Xt, Xq = grid(40, 11), grid(50, 12)
    model = fit(KNeighborsRegressor, 5, Xt)
    p = tuner.compile(model, backend="torch")
    for k in (1, 3, 5, 9, 17, 40):
        for n in (50, 4):
            check(model, p, Xq[:n], f"n_neighbors={k} n={n}", n_neighbors=k)
            assert_same_labels(p.kneighbors(Xq[:n], k, return_distance=False),
                               model.kneighbors(Xq[:n], k, return_distance=False))
    assert p.kneighbors(Xq[:0])[0].shape == (0, 5) and p.kneighbors(Xq[:0], 2)[1].dtype == np.int64
    for bad, error, match in ((0, ValueError, r"\[1, 40\].*got 0"), (41, ValueError, r"\[1, 40\].*got 41"),
                              (2.5, TypeError, "integer, got 2.5"), (True, TypeError, "integer, got True")):
        with pytest.raises(error, match=match):
            p.kneighbors(Xq, n_neighbors=bad)
    with pytest.raises(ValueError, match="X=None"):
        p.kneighbors()
    with pytest.raises(ValueError, match="3 features"):
        p.kneighbors(Xq[:, :2])
    bad = Xq[:2].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        p.kneighbors(bad)


def test_torchscript_and_artifact(tmp_path):
    """The heap's tie replay is a scripted function inside the trace; the program is saved with the others."""
    Xt, Xq = grid(60, 0), grid(80, 1)
    model = fit(KNeighborsClassifier, 6, Xt, weights="distance")
    p = tuner.compile(model, backend="torchscript")
    for n in QUERIES:
        check(model, p, Xq[:n], f"torchscript n={n}")
    p.save(tmp_path / "knn.tb")
    loaded = tuner.load_artifact(tmp_path / "knn.tb")
    assert "kneighbors" in loaded.plans[0].tasks[-1].programs
    for n in QUERIES:
        check(model, loaded, Xq[:n], f"loaded n={n}")


def test_tuned_predictor(tmp_path):
    Xt, Xq = grid(60, 0), grid(80, 1)
    model = fit(KNeighborsRegressor, 5, Xt, weights="distance", metric="manhattan")
    db = f"sqlite:///{tmp_path / 'tune.db'}"
    report = tuner.tune(model, Xt, db=db, batch_sizes=(1, 64), trials=3, progress=False,
                        backends=("torch", "torchscript"), measure_settings=FAST)
    assert report.trials_measured >= 1
    p = tuner.load(model, db=db, strict=True)
    assert p.tuned
    for n in QUERIES:
        check(model, p, Xq[:n], f"tuned n={n}")


@pytest.mark.slow
@pytest.mark.parametrize("backend,knobs", [("tvm", dict(selection="topk")),
                                           ("inductor", dict(selection="sort", form="gemm"))])
def test_compiled_backends(backend, knobs):
    """tvm and inductor build only the selections that keep the lowest indices among ties at the k-th
    distance (asked for explicitly): equal to scikit-learn where distances do not tie."""
    rng = np.random.default_rng(13)
    model = fit(KNeighborsRegressor, 4, rng.normal(size=(50, 3)), weights="distance")
    Xq = rng.normal(size=(30, 3))
    p = tuner.compile(model, backend=backend, **knobs)
    for n in (30, 1):
        d, i = model.kneighbors(Xq[:n])
        got_d, got_i = p.kneighbors(Xq[:n])
        assert_same_labels(got_i, i, what=f"{backend} indices")
        assert_scores(got_d, d, what=f"{backend} distances")


def test_refused_where_one_array_per_method():
    Xt, Xq = grid(40, 14), grid(10, 15)
    model = fit(KNeighborsClassifier, 3, Xt)
    p = tuner.compile(model, backend="torch")
    with pytest.raises(UnsupportedModelError, match="kneighbors returns two arrays.*export predict, predict_proba"):
        p.to_onnx(None, method="kneighbors")
    with pytest.raises(UnsupportedModelError, match="kneighbors"):
        p.to_onnx(None, method=["predict", "kneighbors"])
    assert {o.name for o in p.to_onnx(None).graph.output} == {"label", "probabilities"}
    with pytest.raises(ValueError, match="kneighbors returns two arrays"):
        output_layout(p, "kneighbors", Xq[:2])


def test_which_models_have_it():
    Xt = grid(40, 16)
    y = np.arange(40) % 2
    assert "kneighbors" in tuner.compile(KNeighborsRegressor(3).fit(Xt, y), backend="torch").methods
    pipe = make_pipeline(StandardScaler(), KNeighborsClassifier(3)).fit(Xt, y)
    p = tuner.compile(pipe, backend="torch")
    assert not hasattr(pipe, "kneighbors") and "kneighbors" not in p.methods
    with pytest.raises(AttributeError, match="no method 'kneighbors'"):
        p.kneighbors(Xt)
    # predict_proba of a uniform classifier computes with the constructor's p, kneighbors with metric_params'
    odd = KNeighborsClassifier(3, p=3, metric_params={"p": 1}, algorithm="brute").fit(Xt, y)
    assert strategies.convert(odd).methods == ("predict", "predict_proba")
    assert not hasattr(tuner.compile(KMeans(2, n_init=1, random_state=0).fit(Xt), backend="torch"), "kneighbors")

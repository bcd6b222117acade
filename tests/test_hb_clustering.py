"""KMeans, MiniBatchKMeans and MeanShift, re-expressing Hummingbird's tests/test_sklearn_clustering.py.

Hummingbird's cases: KMeans with 2 and 5 clusters, ``lloyd`` and ``elkan``, on ``np.random.rand(100, 200)``
(seed 0) as float32, and KMeans with its defaults on the same data as float64; MeanShift with the
estimated bandwidth, 2.0 and 5.0, each with ``cluster_all`` True and False, on the float32 data.  Labels
must be identical; ``transform`` (which Hummingbird does not check) is checked within the score
tolerance.  Its TVM variants become one case per backend (torchscript, inductor, tvm).

Left out: nothing.  Beyond Hummingbird: MiniBatchKMeans, the ``direct`` formulation, one cluster.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.cluster import KMeans, MeanShift, MiniBatchKMeans

import strategies
import tuner
from strategies import reference
from tolerances import assert_same_labels, assert_scores


@functools.lru_cache(maxsize=None)
def data(dtype: str) -> np.ndarray:
    np.random.seed(0)
    return np.array(np.random.rand(100, 200), dtype=dtype)


@functools.lru_cache(maxsize=None)
def fitted(kind: str, *params) -> object:
    if kind == "kmeans":
        n_clusters, algorithm, dtype = params
        kw = {} if n_clusters is None else dict(n_clusters=n_clusters, algorithm=algorithm)
        return KMeans(random_state=0, **kw).fit(data(dtype))
    bandwidth, cluster_all = params
    return MeanShift(bandwidth=bandwidth, cluster_all=cluster_all).fit(data("float32"))


def check(model, X, backend: str = "torch", **knobs) -> None:
    conv = strategies.convert(model)
    pred = tuner.compile(model, backend=backend, **knobs)
    assert_same_labels(reference.predict(conv, X, "predict"), model.predict(X), what="reference predict")
    assert_same_labels(pred.predict(X), model.predict(X), what=f"{backend} predict")
    if hasattr(model, "transform"):
        assert_scores(reference.predict(conv, X, "transform"), model.transform(X), what="reference transform")
        assert_scores(pred.transform(X), model.transform(X), what=f"{backend} transform")


@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
@pytest.mark.parametrize("n_clusters", [2, 5])
def test_kmeans(n_clusters, algorithm):
    check(fitted("kmeans", n_clusters, algorithm, "float32"), data("float32"))


def test_kmeans_double():
    check(fitted("kmeans", None, None, "float64"), data("float64"))


@pytest.mark.parametrize("cluster_all", [True, False])
@pytest.mark.parametrize("bandwidth", [None, 2.0, 5.0])
def test_mean_shift(bandwidth, cluster_all):
    check(fitted("meanshift", bandwidth, cluster_all), data("float32"))


@pytest.mark.parametrize("backend", ["torchscript", "inductor", "tvm"])
def test_backends(backend):
    check(fitted("kmeans", 5, "lloyd", "float32"), data("float32"), backend)
    if backend == "tvm":
        check(fitted("meanshift", 2.0, True), data("float32"), backend)


@pytest.mark.parametrize("form", ["gemm", "direct"])
def test_minibatch_and_forms(form):
    X = data("float64")[:, :6] * 10
    check(MiniBatchKMeans(4, random_state=0, n_init=3).fit(X), X, form=form)
    check(KMeans(1, random_state=0, n_init=1).fit(X), X, form=form)

"""``kneighbors_search`` with ``selection="heap"``: top-k, and scikit-learn's heap replayed only for the query
rows whose ties at the k-th distance make its order matter; and the backends that may build it.

scikit-learn's own tie order depends on its OpenMP threads once the training set spans more than one of
its 256-row chunks and the queries are few (``ArgKmin`` then splits the training rows over threads and
merges their heaps): the comparisons on such training sets run scikit-learn on one thread, the order the
op's reference follows.
"""

from __future__ import annotations

import numpy as np
import pytest
import threadpoolctl
import torch
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

import strategies
import strategies.neighbors as nb
import tuner
from strategies.compile import resolve_config
from strategies.ground.errors import InvalidConfigError
from tolerances import assert_same_labels, assert_scores
from tuner.space import SpaceOptions, TaskSpace


def grid(n: int, features: int, seed: int, span: int = 2) -> np.ndarray:
    """Small integers: distances tie exactly, and every form computes them exactly."""
    return np.random.default_rng(seed).integers(-span, span + 1, size=(n, features)).astype(np.float64)


def tie_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows on an integer grid, a third of them duplicated; labels differing between duplicates."""
    Xt = grid(n, 3, seed)
    Xt = np.vstack([Xt, Xt[: n // 3]])
    return Xt, np.arange(len(Xt)) % 3, np.vstack([grid(60, 3, seed + 1), Xt[:20]])


def kneighbors_op(model):
    return next(op for op in strategies.convert(model).graph.ops if op.kind == "kneighbors")


@pytest.mark.parametrize("n_train", [40, 300])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_heap_selection_matches_scikit_learn(k, n_train):
    """Neighbour sets, probabilities, labels and regression values, on data full of exact ties."""
    Xt, y, Xq = tie_data(n_train, seed=k)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        for weights in ("uniform", "distance"):
            for metric in ("euclidean", "manhattan"):
                clf = KNeighborsClassifier(k, weights=weights, metric=metric, algorithm="brute").fit(Xt, y)
                reg = KNeighborsRegressor(k, weights=weights, metric=metric, algorithm="brute").fit(Xt, y * 1.5)
                op = kneighbors_op(clf)
                module = nb.KNeighborsSearch.build_module(op, {})
                d = module.reduced(torch.from_numpy(Xq))
                _, idx = nb.heap_select(d, k, module.levels)
                want = clf.kneighbors(Xq, return_distance=False)
                assert [set(r) for r in idx.tolist()] == [set(r) for r in want.tolist()]
                pc, pr = tuner.compile(clf, backend="torch"), tuner.compile(reg, backend="torch")
                assert_scores(pc.predict_proba(Xq), clf.predict_proba(Xq), what=f"{weights} {metric} proba")
                assert_same_labels(pc.predict(Xq), clf.predict(Xq), what=f"{weights} {metric} labels")
                assert_scores(pr.predict(Xq), reg.predict(Xq), what=f"{weights} {metric} regressor")


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_heap_selection_equals_full_replay(k):
    """On random small-integer distances (ties everywhere, some infinite): the same values and rows as
    replaying the heap over every training row."""
    rng = np.random.default_rng(k)
    for m in (k, k + 1, 37, 600):
        d = torch.from_numpy(rng.integers(0, 6, size=(40, m)).astype(np.float64))
        d[::7, ::3] = float("inf")
        levels = int(np.floor(np.log2(k))) if k > 1 else 0
        vals, idx = nb.heap_select(d, k, levels)
        full_vals, full_idx = nb.heap_push_all(d, k, levels)
        assert torch.equal(vals.sort(1).values, full_vals.sort(1).values)
        finite = torch.isfinite(full_vals)  # infinite slots are sentinels: their row is no neighbour
        assert [set(i[f].tolist()) for i, f in zip(idx, finite)] == \
            [set(i[f].tolist()) for i, f in zip(full_idx, finite)]


def test_no_replay_without_ambiguous_ties(monkeypatch):
    """Continuous data: top-k alone, the heap is never replayed."""
    rng = np.random.default_rng(0)
    Xt, Xq = rng.normal(size=(500, 8)), rng.normal(size=(50, 8))
    model = KNeighborsClassifier(5, algorithm="brute").fit(Xt, rng.integers(0, 3, 500))

    def no_replay(*args):
        raise AssertionError("the heap was replayed")

    monkeypatch.setattr(nb, "heap_push_all", no_replay)
    assert_scores(tuner.compile(model, backend="torch").predict_proba(Xq), model.predict_proba(Xq))


@pytest.mark.parametrize("k", [3, 8])
def test_torchscript_keeps_the_replay(k, tmp_path):
    """torch.jit.trace keeps the scripted branch: exact on ties, after a save and load too."""
    Xt, y, Xq = tie_data(120, seed=k)
    model = KNeighborsClassifier(k, weights="distance", algorithm="brute").fit(Xt, y)
    pred = tuner.compile(model, backend="torchscript")
    assert_scores(pred.predict_proba(Xq), model.predict_proba(Xq), what="torchscript")
    pred.save(tmp_path / "knn.tb")
    loaded = tuner.load_artifact(tmp_path / "knn.tb")
    assert_same_labels(loaded.predict(Xq), model.predict(Xq), what="torchscript, loaded")


# --------------------------------------------------------------------------- the backend prune


def brute_model() -> KNeighborsClassifier:
    Xt, y, _ = tie_data(30, seed=0)
    return KNeighborsClassifier(3, algorithm="brute").fit(Xt, y)


def test_space_has_no_untraceable_heap():
    """The search proposes the heap on torch and torchscript only: the backends without an exact selection
    are no part of a KNN task's space."""
    graph = strategies.convert(brute_model()).graph
    space = TaskSpace(graph, 64, SpaceOptions(threads=(1,)))
    configs = list(space.enumerate())
    assert configs
    assert {c["backend"] for c in configs} <= set(nb.HEAP_BACKENDS)
    assert all(dict(c["knobs"])["selection"] == "heap" for c in configs)
    for backend in ("tvm", "inductor", "onnxruntime"):
        assert space.make_config("kneighbors_search", backend, {"threads": 1, "batch_size": 64}) is None


@pytest.mark.parametrize("backend", ["tvm", "inductor", "onnxruntime"])
def test_explicit_heap_on_untraceable_backend_raises(backend):
    model = brute_model()
    for knobs in ({}, {"selection": "heap"}):
        with pytest.raises(InvalidConfigError, match="selection='heap'"):
            tuner.compile(model, backend=backend, **knobs)


def test_explicit_choices_that_build():
    graph = strategies.convert(brute_model()).graph
    with pytest.raises(InvalidConfigError, match="form='exact'"):  # FMA chains: minutes for inductor
        resolve_config(graph, {"backend": "inductor", "knobs": {"selection": "topk"}})
    cfg = resolve_config(graph, {"backend": "inductor", "knobs": {"selection": "topk", "form": "gemm"}})
    assert dict(cfg["knobs"])["selection"] == "topk"
    assert resolve_config(graph, {"backend": "tvm", "knobs": {"selection": "sort"}})["backend"] == "tvm"
    default = resolve_config(graph, {})
    assert (default["backend"], dict(default["knobs"])["selection"]) == ("torch", "heap")


def test_compiled_backends_take_few_tiles():
    """inductor and tvm compile each distance block as its own kernels: many small tiles are refused there,
    also in a space whose search was opened to the top-k selection."""
    Xt, y, _ = tie_data(600, seed=0)  # 800 training rows
    graph = strategies.convert(KNeighborsClassifier(3, algorithm="brute").fit(Xt, y)).graph
    with pytest.raises(InvalidConfigError, match="distance blocks"):
        resolve_config(graph, {"backend": "tvm", "knobs": {"selection": "topk", "tile": 64}})
    assert resolve_config(graph, {"backend": "tvm", "knobs": {"selection": "topk", "tile": 256}})
    assert resolve_config(graph, {"backend": "torch", "knobs": {"tile": 64}})
    opened = SpaceOptions(threads=(1,), backends=("torch", "tvm"), knob_values=(("selection", ("topk",)),))
    configs = list(TaskSpace(graph, 64, opened).enumerate())
    tiles = {(c["backend"], dict(c["knobs"])["tile"]) for c in configs}
    assert ("tvm", 256) in tiles and ("tvm", 64) not in tiles and ("torch", 64) in tiles

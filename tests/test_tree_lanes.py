"""tree_lanes on the tvm-tir backend: exact against the reference evaluator, records, knobs, tuning at batch 1.

Tolerance (the conformance suite's, never loosened): ``np.testing.assert_allclose(got, want,
rtol=1e-5, atol=1e-5 * max(1, max|want|))`` -- the lanes add their trees' leaves in
another order than the reference, within the float32 sum's rounding.  Inputs come
from ``sample_inputs``: exact thresholds, their float neighbours, NaN, +-inf.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import records
import tuner
from cost_model import HeuristicCostModel
from strategies import reference
from strategies.backends.base import BuildRequest
from strategies.backends.tvm_tir import TvmTirBackend, TvmTirProgram
from strategies.ir import PostTransform, Tree, TreeEnsemble
from strategies.sampling import sample_inputs
from strategies.testing import as_model, random_ensemble
from strategies.trees._lanes_kernel import RECORD, lanes_buffers
from strategies.trees._tir_layout import build_tables, pad_trees
from strategies.trees.tree_lanes import TreeLanes
from tuner.measure import MeasureSettings
from zoo import ZOO, data

RTOL = 1e-5


def assert_close(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def build(op: TreeEnsemble, knobs: dict, *, threads: int = 1) -> TvmTirProgram:
    config = {"strategy": "tree_lanes", "backend": "tvm-tir", "threads": threads, "knobs": knobs}
    return TvmTirBackend().build(BuildRequest((op,), config, "out"))


def inputs(op: TreeEnsemble, n: int, seed: int = 0) -> np.ndarray:
    X = sample_inputs(as_model(op), n, seed=seed, special_fraction=0.4)
    return np.ascontiguousarray(X.astype(op.compare_dtype))


def mixed_depths(seed: int, **kw) -> TreeEnsemble:
    """Trees of depths 2 to 11 (several runs of different walk lengths), plus single-leaf trees."""
    parts = [random_ensemble(seed + d, n_trees=7, depth=d, **kw) for d in (2, 5, 8, 11)]
    leaf = Tree(feature=[-1], threshold=[0.0], left=[-1], right=[-1], missing_left=[False],
                value=np.full((1, 1 if parts[0].tree_output is not None else parts[0].n_outputs), 0.75))
    trees = sum((p.trees for p in parts), ()) + (leaf, leaf)
    first = parts[0]
    tree_output = None
    if first.tree_output is not None:
        tree_output = np.arange(len(trees)) % first.n_outputs
    return TreeEnsemble(
        trees=trees, n_features=first.n_features, n_outputs=first.n_outputs, comparison=first.comparison,
        compare_dtype=first.compare_dtype, base_score=first.base_score, tree_output=tree_output,
        aggregation=first.aggregation, post_transform=first.post_transform,
        category_rounding=first.category_rounding,
    )


KNOBS = [
    {},
    {"lanes": 8, "interleave": 1, "unroll": False},
    {"interleave": 8, "x_lookup": "gather", "prefetch": 2},
    {"interleave": 4, "rows_per_block": 64, "unroll": False, "prefetch": 1},
    {"layout": "perfect"},
    {"layout": "perfect", "lanes": 8, "x_lookup": "gather", "interleave": 4, "unroll": False, "prefetch": 1},
    {"record": "pair", "lanes": 8, "interleave": 8},
    {"record": "pair", "lanes": 8, "layout": "perfect", "x_lookup": "gather", "prefetch": 1, "unroll": False},
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_runs_of_depths_specials_and_outputs(dtype: str) -> None:
    cases = {
        "binary": mixed_depths(1, compare_dtype=dtype, post=PostTransform("sigmoid")),
        "special": mixed_depths(2, compare_dtype=dtype, n_features=7, zero_missing=True,
                                categorical=frozenset({1, 4})),
        "multiclass": mixed_depths(3, compare_dtype=dtype, n_outputs=3, post=PostTransform("softmax")),
        "vector leaves": mixed_depths(4, compare_dtype=dtype, n_outputs=2, per_tree_output=False,
                                      aggregation="mean"),
    }
    for name, op in cases.items():
        X = inputs(op, 97, seed=len(name))
        want = reference.evaluate_op(op, X)
        for knobs in KNOBS:
            if dtype == "float64" and knobs.get("record") == "pair":  # a 64-bit threshold has no room beside the feature
                assert "float32" in TreeLanes.invalid_reason(op, knobs)
                continue
            prog = build(op, knobs)
            assert_close(prog(X), want, f"{dtype} {name} {knobs}")
            assert_close(prog(X[:1]), want[:1], f"{dtype} {name} {knobs}, one row")


def test_wide_rows_gather_their_values() -> None:
    """80 features: past the permute's 64, so x_lookup='permute' builds the gather's code."""
    op = random_ensemble(5, n_trees=40, depth=6, n_features=80)
    X = inputs(op, 64, seed=2)
    want = reference.evaluate_op(op, X)
    assert TreeLanes.redundant_reason(op, {"x_lookup": "permute"}, 1)
    assert_close(build(op, {})(X), want, "permute asked")
    assert_close(build(op, {"x_lookup": "gather"})(X), want, "gather")


def test_prefetching_wide_rows() -> None:
    """300 float32 features (19 cache lines a row): prefetching rows ahead, to the last row and past a block's
    end, on one thread and two; tree_lanes suggests prefetch at every batch size for such rows."""
    op = random_ensemble(7, n_trees=37, depth=7, n_features=300, post=PostTransform("sigmoid"))
    X = inputs(op, 1003, seed=4)
    want = reference.evaluate_op(op, X)
    for threads, knobs in ((1, {"prefetch": 1}), (1, {"prefetch": 4, "rows_per_block": 64}),
                           (2, {"prefetch": 2, "interleave": 4})):
        prog = build(op, {"x_lookup": "gather", **knobs}, threads=threads)
        assert_close(prog(X), want, f"{threads} thread(s) {knobs}")
        assert_close(prog(X[:3]), want[:3], f"{threads} thread(s) {knobs}, 3 rows")
    for batch in (1, 1024, 100_000):
        wanted = TreeLanes.suggestions(op, batch)
        assert wanted[0].get("prefetch") and any(k.get("layout") == "perfect" for k in wanted), batch
    narrow = random_ensemble(7, n_trees=37, depth=7, n_features=20)
    assert TreeLanes.suggestions(narrow, 1024) == []
    assert not any(k.get("prefetch") for k in TreeLanes.suggestions(narrow, 1))


def test_parallel_row_blocks() -> None:
    op = mixed_depths(6, post=PostTransform("sigmoid"))
    X = inputs(op, 3001, seed=3)
    want = reference.evaluate_op(op, X)
    for knobs in ({}, {"rows_per_block": 256, "interleave": 4}):
        prog = build(op, knobs, threads=2)
        assert_close(prog(X), want, f"2 threads {knobs}")
        assert_close(prog(X[:5]), want[:5], f"2 threads, one block {knobs}")
        assert prog(X[:0]).shape == (0, 1)


@pytest.mark.parametrize("simd", ["avx2", "generic"])
def test_narrower_cpus(simd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without AVX-512 (8 lanes, AVX2 gathers and permutes) and without x86 gathers (per-lane loads)."""
    from strategies.backends import tvm_tir

    monkeypatch.setattr(tvm_tir, "host_simd", lambda: simd)
    for dtype in ("float32", "float64"):
        op = mixed_depths(8, compare_dtype=dtype, zero_missing=True, categorical=frozenset({2}))
        X = inputs(op, 70)
        for knobs in ({}, {"lanes": 8, "x_lookup": "gather"}, {"lanes": 8, "record": "pair"}):
            if dtype == "float64" and knobs.get("record"):
                continue
            prog = build(op, knobs)  # no qword gathers here: the pair record builds the quad record's code
            assert prog.meta["simd"] == simd
            assert_close(prog(X), reference.evaluate_op(op, X), f"{simd} {dtype} {knobs}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_node_records_hold_the_sparse_tables(dtype: str) -> None:
    op = random_ensemble(3, n_trees=20, depth=6, compare_dtype=dtype, zero_missing=True,
                         categorical=frozenset({0}))
    tab = build_tables(op, "sparse", x_block=1, multiple=16)
    bufs = lanes_buffers(tab)
    assert set(bufs) == {"node", "root", "leaf", "tree_column", "cat_bits"}
    node = bufs["node"].reshape(-1, RECORD)
    assert node.dtype.itemsize == np.dtype(dtype).itemsize  # 16- or 32-byte records: one cache line each
    n = tab.child.size - 64
    np.testing.assert_array_equal(node[:n, 0].astype(np.int32), tab.feature[:n])
    np.testing.assert_array_equal(node[:n, 1].view(np.dtype(dtype)), tab.threshold[:n])
    np.testing.assert_array_equal(node[:n, 2], tab.child[:n])
    np.testing.assert_array_equal(node[:n, 3], tab.special[:n])


def test_pair_words_hold_feature_and_threshold() -> None:
    """record='pair': node i's feature word in the low 32 bits of pair[i] (sign bit: the negated column), its
    threshold's bits in the high 32; child and special words in tables of their own."""
    op = random_ensemble(4, n_trees=20, depth=6, zero_missing=True, categorical=frozenset({0}))
    tab = build_tables(op, "sparse", x_block=0, multiple=8)
    bufs = lanes_buffers(tab, "pair")
    assert set(bufs) == {"pair", "child", "special", "root", "leaf", "tree_column", "cat_bits"}
    n = tab.child.size - 64
    words = bufs["pair"][:n]
    assert (tab.feature[:n] < 0).any()  # the sign bit survives the packing
    np.testing.assert_array_equal(words.astype(np.uint64).astype(np.uint32).view(np.int32), tab.feature[:n])
    np.testing.assert_array_equal((words >> 32).astype(np.int32).view(np.float32), tab.threshold[:n])
    assert bufs["child"] is tab.child and bufs["special"] is tab.special
    with pytest.raises(ValueError, match="float64"):
        lanes_buffers(build_tables(random_ensemble(4, n_trees=4, depth=3, compare_dtype="float64"), "sparse"), "pair")
    X = inputs(op, 120, seed=6)
    for knobs in ({"record": "pair", "lanes": 8, "x_lookup": "gather"},
                  {"record": "pair", "lanes": 8, "layout": "perfect", "interleave": 4}):
        assert_close(build(op, knobs, threads=2)(X), reference.evaluate_op(op, X), str(knobs))


def test_knob_reasons() -> None:
    op = random_ensemble(0, n_trees=20, depth=4)  # two vectors of 16 trees
    assert TreeLanes.invalid_reason(op, {}) is None
    assert TreeLanes.redundant_reason(op, {"interleave": 4}, 1)  # interleave 2 already walks both vectors
    assert TreeLanes.redundant_reason(op, {"interleave": 2}, 1) is None
    assert TreeLanes.redundant_reason(op, {"parallel": "none"}, 1)
    assert "cache lines" in TreeLanes.redundant_reason(op, {"prefetch": 1}, 2)
    wide = random_ensemble(0, n_trees=20, depth=4, compare_dtype="float64")
    assert "float32" in TreeLanes.redundant_reason(wide, {"x_lookup": "permute"}, 2)
    assert TreeLanes.suggestions(op, 1) and TreeLanes.suggestions(op, 4096) == []
    assert TreeLanes.invalid_reason(op, {"layout": "perfect"}) is None
    deep = random_ensemble(0, n_trees=3, depth=13)
    assert "at most 12" in TreeLanes.invalid_reason(deep, {"layout": "perfect"})
    assert TreeLanes.invalid_reason(deep, {}) is None
    assert "lanes must be 8" in TreeLanes.invalid_reason(op, {"record": "pair"})
    assert TreeLanes.invalid_reason(op, {"record": "pair", "lanes": 8}) is None
    assert "float32" in TreeLanes.invalid_reason(wide, {"record": "pair", "lanes": 8})


def test_perfect_records_hold_the_perfect_tables() -> None:
    """Perfect records: feature and threshold of node i of tree t at record t * (2**depth - 1) + i; trees padded
    to whole vectors with zero trees; no root table."""
    op = random_ensemble(3, n_trees=20, depth=5)
    tab = build_tables(pad_trees(op, 16), "perfect", x_block=0)
    assert tab.n_trees == 32 and tab.stride == 31
    bufs = lanes_buffers(tab)
    assert set(bufs) == {"node", "leaf", "tree_column"}
    node = bufs["node"].reshape(-1, RECORD)
    n = 32 * 31
    np.testing.assert_array_equal(node[:n, 0], tab.feature[:n])
    np.testing.assert_array_equal(node[:n, 1].view(np.float32), tab.threshold[:n])
    assert not node[:, 2].any()
    X = inputs(op, 50, seed=1)
    assert_close(build(op, {"layout": "perfect"})(X), reference.evaluate_op(op, X), "20 trees in 2 vectors")


class PreferLanes(HeuristicCostModel):
    """A cost model that ranks tree_lanes configs first, so the test knows they get measured."""

    def predict(self, candidates):
        return np.array([0.0 if c.config.get("strategy") == "tree_lanes" else 1.0 for c in candidates])


def test_tune_at_batch_one_and_rows_the_tuner_never_saw(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'lanes.db'}"
    model = ZOO["lgb_multiclass_zero_missing"]()
    fast = MeasureSettings(warmup=1, min_repeats=3, min_seconds=0.02, timeout_s=120)
    report = tuner.tune(model, db=db, batch_sizes=(1,), trials=3, threads=1, progress=False,
                        backends=("tvm-tir",), cost_model=PreferLanes(), measure_settings=fast)
    with records.open_database(db) as d:
        trials = d.trials()
    measured = [t for t in trials if t.config["strategy"] == "tree_lanes"]
    assert measured and all(t.status.value == "ok" for t in measured), [(t.config, t.error) for t in trials]
    assert report.chosen[1][0]["backend"] == "tvm-tir"  # the winner (any strategy) serves rows it never saw
    lanes = tuner.compile(model, **{k: v for k, v in measured[0].config.items() if k != "knobs"},
                          **measured[0].config["knobs"])
    pred = tuner.load(model, db=db)
    X = data(n=200, nan=0.1, seed=97)  # rows the tuning sample never held
    X[::7, 0] = 0.0  # zero-as-missing
    for p in (pred, lanes):
        for i in range(0, 200, 40):
            np.testing.assert_allclose(p.predict_proba(X[i : i + 1]), model.predict_proba(X[i : i + 1]),
                                       rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(p.predict(X), model.predict(X))


def test_wide_rows_tuned_at_1024_with_prefetch_and_the_perfect_layout(tmp_path: Path) -> None:
    """An XGBoost model on 300 features (19 cache lines a row): tree_lanes' wide-row suggestions (the pair record
    with prefetch and the perfect layout first) are measured at 1,024 rows, and the tuned winner equals XGBoost
    on rows it never saw."""
    import xgboost as xgb

    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 300)).astype(np.float32)
    X[rng.random(X.shape) < 0.02] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 150]) - np.nan_to_num(X[:, 299]) > 0).astype(int)
    model = xgb.XGBClassifier(n_estimators=40, max_depth=6, tree_method="hist", random_state=0).fit(X, y)
    db = f"sqlite:///{tmp_path / 'wide.db'}"
    fast = MeasureSettings(warmup=1, min_repeats=3, min_seconds=0.02, timeout_s=120)
    tuner.tune(model, X[:2000], db=db, batch_sizes=(1024,), trials=6, threads=1, progress=False,
               backends=("tvm-tir",), cost_model=PreferLanes(), measure_settings=fast)
    with records.open_database(db) as d:
        trials = [t for t in d.trials() if t.config["strategy"] == "tree_lanes"]
    assert trials and all(t.status.value == "ok" for t in trials), [(t.config, t.error) for t in trials]
    knobs = [t.config["knobs"] for t in trials]
    # the first wide-row suggestion: the pair record, prefetching, the perfect layout (how many follow: the search)
    assert any(k["prefetch"] and k["record"] == "pair" and k["layout"] == "perfect" for k in knobs), knobs
    pred = tuner.load(model, db=db)
    unseen = X[2000:]
    for n in (1, 37, 1000):
        np.testing.assert_allclose(pred.predict_proba(unseen[:n]), model.predict_proba(unseen[:n]), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_array_equal(pred.predict(unseen[:n]), model.predict(unseen[:n]))

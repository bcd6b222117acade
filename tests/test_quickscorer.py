"""quickscorer on the tvm-tir backend: exact against the reference evaluator, tables, knobs, artifacts, tuning.

Tolerance (the issue's, never loosened): ``np.testing.assert_allclose(got, want,
rtol=1e-5, atol=1e-5 * max(1, max|want|))`` -- a float32 sum of many leaves is
accurate relative to the output's magnitude, not to each tiny value.  Inputs
come from ``sample_inputs``: exact thresholds, their float neighbours, NaN, +-inf.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import records
import tuner
from cost_model import HeuristicCostModel
from strategies import reference
from strategies.backends.base import BuildRequest
from strategies.backends.tvm_tir import TvmTirBackend, TvmTirProgram
from strategies.frontends import convert
from strategies.ground.errors import InvalidConfigError
from strategies.ir import PostTransform, Tree, TreeEnsemble
from strategies.sampling import sample_inputs
from strategies.testing import as_model, random_ensemble
from strategies.trees._qs_layout import PAD, build_qs_tables, evaluate
from strategies.trees import quickscorer
from strategies.trees.quickscorer import MAX_LEAVES, QuickScorer
from tuner.measure import MeasureSettings
from zoo import TREE_MODELS, ZOO, data

REPO = Path(__file__).resolve().parents[1]
RTOL = 1e-5


def assert_close(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def build(op: TreeEnsemble, knobs: dict, *, threads: int = 1, output: str = "out") -> TvmTirProgram:
    config = {"strategy": "quickscorer", "backend": "tvm-tir", "threads": threads, "knobs": knobs}
    return TvmTirBackend().build(BuildRequest((op,), config, output))


def inputs(op: TreeEnsemble, n: int, seed: int = 0) -> np.ndarray:
    X = sample_inputs(as_model(op), n, seed=seed, special_fraction=0.4)
    return np.ascontiguousarray(X.astype(op.compare_dtype))


def leaf_tree(value) -> Tree:
    value = np.atleast_1d(np.asarray(value, dtype=np.float64))
    return Tree(feature=[-1], threshold=[0.0], left=[-1], right=[-1], missing_left=[False], value=value[None, :])


def with_single_leaves(op: TreeEnsemble, count: int = 2) -> TreeEnsemble:
    """``op`` plus ``count`` trees that are a single leaf."""
    width = 1 if op.tree_output is not None else op.n_outputs
    extra = tuple(leaf_tree(np.full(width, 0.25 * (i + 1))) for i in range(count))
    tree_output = None
    if op.tree_output is not None:
        tree_output = np.concatenate([op.tree_output, np.arange(count) % op.n_outputs])
    return TreeEnsemble(
        trees=op.trees + extra, n_features=op.n_features, n_outputs=op.n_outputs, comparison=op.comparison,
        compare_dtype=op.compare_dtype, base_score=op.base_score, tree_output=tree_output,
        aggregation=op.aggregation, post_transform=op.post_transform, category_rounding=op.category_rounding,
    )


def perfect_tree(depth: int, n_features: int = 3) -> Tree:
    """A perfect tree of ``depth`` levels (2**depth leaves), node i's children at 2i+1 and 2i+2."""
    internal, nodes = 2**depth - 1, 2 ** (depth + 1) - 1
    i = np.arange(nodes)
    leaf = i >= internal
    return Tree(feature=np.where(leaf, -1, i % n_features), threshold=np.where(leaf, 0.0, np.sin(i)),
                left=np.where(leaf, -1, 2 * i + 1), right=np.where(leaf, -1, 2 * i + 2),
                missing_left=i % 2 == 0, value=np.cos(i)[:, None])


# (ensemble arguments, knobs, threads): together every value of every knob, both comparisons, both
# compare dtypes, categorical (trunc, floor), zero-as-missing, sum and mean, per-tree columns and vector
# leaves, single-leaf trees, multi-word masks, several tree blocks, every post-transform.
CASES = {
    "lt-f32-default-sigmoid": (dict(comparison="<", n_trees=37, depth=5, post=PostTransform("sigmoid", 0.7)), {}, 2),
    "le-f32-cat-trunc-scalar": (
        dict(comparison="<=", n_trees=20, depth=6, categorical=frozenset({1, 3}), rounding="trunc"),
        dict(vector_rows=1, rows_per_block=16, parallel="none"), 2),
    "lt-f32-catfloor-zm-v8-rows16-exp": (
        dict(comparison="<", n_trees=16, depth=6, categorical=frozenset({0}), rounding="floor", zero_missing=True,
             post=PostTransform("exp")),
        dict(vector_rows=8, rows_per_block=16), 1),
    "le-f64-zm-isolation-words64": (
        dict(comparison="<=", compare_dtype="float64", n_trees=24, depth=8, zero_missing=True,
             post=PostTransform("isolation", 3.5)),
        dict(word_bits=64, tree_block=16, vector_rows=8, rows_per_block=64), 2),
    "lt-f64-cat-zm-scalar": (
        dict(comparison="<", compare_dtype="float64", n_trees=14, depth=5, categorical=frozenset({2, 4}),
             zero_missing=True),
        dict(vector_rows=1, rows_per_block=16), 1),
    "multiclass-softmax-blocks-v128": (
        dict(n_outputs=3, n_trees=70, depth=5, post=PostTransform("softmax")),
        dict(tree_block=16, vector_rows=128), 2),
    "vector-leaves-mean-ovr-deep-v32": (
        dict(n_outputs=3, per_tree_output=False, n_trees=12, depth=9, aggregation="mean",
             post=PostTransform("ovr_normalize")),
        dict(vector_rows=32, rows_per_block=64, word_bits=64, node_words="all"), 2),
    "f64-cat-zm-v128": (
        dict(compare_dtype="float64", n_trees=20, depth=6, categorical=frozenset({1}), zero_missing=True),
        dict(vector_rows=128), 2),
    "deep-words16-blocks64": (
        dict(comparison="<=", n_trees=80, depth=9, categorical=frozenset({4})),
        dict(tree_block=64, vector_rows=8, word_bits=16), 2),
    "vector-leaves-sum-scalar-words64": (
        dict(n_outputs=2, per_tree_output=False, n_trees=10, depth=5), dict(vector_rows=1, word_bits=64), 2),
    "binary-ovr-mean-v16-rows16": (
        dict(n_trees=9, depth=4, aggregation="mean", post=PostTransform("ovr_normalize")),
        dict(vector_rows=16, rows_per_block=16, word_bits=16), 1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(name: str) -> None:
    ens, knobs, threads = CASES[name]
    op = with_single_leaves(random_ensemble(list(CASES).index(name) + 20, **ens))
    k = QuickScorer.resolve_knobs(knobs)
    assert QuickScorer.invalid_reason(op, k) is None
    block = k["rows_per_block"]
    X = inputs(op, 2 * block + 131, seed=len(name))
    for output in ("out", "raw") if not op.post_transform.is_identity else ("out",):
        prog = build(op, knobs, threads=threads, output=output)
        want = reference.evaluate_op(op, X, output=output)
        for n in sorted({1, 7, block - 1, block, block + 3, X.shape[0]}):
            got = prog(X[:n])
            assert got.shape == (n, op.n_outputs) and got.dtype == op.compare_dtype
            assert_close(got, want[:n], f"{name} {output} n={n}")


@pytest.mark.parametrize("name", TREE_MODELS)
def test_zoo_ensembles_at_every_batch_size(name: str) -> None:
    """Every tree ensemble of the zoo (NaN, +-inf, exact thresholds and neighbours, categorical and
    zero-as-missing splits), called with 1, 7, a tail and a large batch."""
    op = [o for o in convert(ZOO[name]()).graph.ops if isinstance(o, TreeEnsemble)][0]
    X = inputs(op, 5000, seed=3)
    want = reference.evaluate_op(op, X)
    prog = build(op, {"vector_rows": 128, "tree_block": 0 if op.n_trees <= 16 else 16}, threads=2)
    for n in (1, 7, 300, 5000):
        assert_close(prog(X[:n]), want[:n], f"{name} n={n}")


def test_all_trees_single_leaves_and_stumps() -> None:
    leaves = TreeEnsemble(
        trees=tuple(leaf_tree(v) for v in (0.5, -1.25, 2.0)), n_features=2, n_outputs=1, comparison="<",
        compare_dtype="float32", base_score=np.array([0.1]), post_transform=PostTransform("sigmoid"),
    )
    stumps = random_ensemble(5, n_trees=6, depth=1, comparison="<=")
    for op in (leaves, stumps):
        for knobs in ({}, {"vector_rows": 1}, {"vector_rows": 8, "rows_per_block": 16}):
            X = inputs(op, 50)
            assert_close(build(op, knobs)(X), reference.evaluate_op(op, X), f"{op.summary()} {knobs}")


def test_large_batch_in_parallel_blocks() -> None:
    op = random_ensemble(4, n_trees=30, depth=6, post=PostTransform("sigmoid"))
    X = inputs(op, 20000, seed=4)
    want = reference.evaluate_op(op, X)
    for knobs in ({}, {"vector_rows": 8, "rows_per_block": 64}, {"vector_rows": 128, "tree_block": 16}):
        assert_close(build(op, knobs, threads=2)(X), want, f"20000 rows {knobs}")


@pytest.mark.parametrize("simd", ["avx2", "generic"])
def test_narrower_cpus(simd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The code paths for CPUs without AVX-512 (16 lanes as two vectors) or without x86 gathers."""
    from strategies.backends import tvm_tir

    monkeypatch.setattr(tvm_tir, "host_simd", lambda: simd)
    op = random_ensemble(8, n_trees=11, depth=7, categorical=frozenset({2}), zero_missing=True,
                         post=PostTransform("sigmoid"))
    X = inputs(op, 150)
    for knobs in ({"vector_rows": 8, "rows_per_block": 64}, {"vector_rows": 16}, {}):
        prog = build(op, knobs, threads=2)
        assert prog.meta["simd"] == simd
        assert_close(prog(X), reference.evaluate_op(op, X), f"{simd} {knobs}")


def test_tables_rank_leaves_true_child_first() -> None:
    # x0 <= 0.5 ? (x1 <= 2 ? A : B) : C, with NaN going left at the root (flipped: true child = right)
    tree = Tree(feature=[0, 1, -1, -1, -1], threshold=[0.5, 2.0, 0, 0, 0], left=[1, 3, -1, -1, -1],
                right=[2, 4, -1, -1, -1], missing_left=[True, False, False, False, False],
                value=np.array([[0.0], [0.0], [10.0], [1.0], [2.0]]))
    op = TreeEnsemble(trees=(tree,), n_features=2, n_outputs=1, comparison="<=", compare_dtype="float32",
                      base_score=np.zeros(1))
    tab = build_qs_tables(op, 32, 0)
    # the root is flipped, so its true child (left in the ranking) is C; then A, B
    np.testing.assert_array_equal(tab.leaf[:3], [10.0, 1.0, 2.0])
    # the root compares -x0 (column F + 0 = 2): false there clears leaf 0 (C); x1's node clears leaf 1 (A)
    assert list(tab.seg_column[:2]) == [1, 2]
    np.testing.assert_array_equal(tab.bitvec[:2].view(np.uint32), [~np.uint32(2), ~np.uint32(1)])
    X = np.array([[0.0, 1.0], [0.0, 3.0], [1.0, 1.0], [np.nan, np.nan], [0.5, 2.0]], np.float32)
    np.testing.assert_array_equal(evaluate(tab, X)[:, 0], [1.0, 2.0, 10.0, 2.0, 1.0])


@pytest.mark.parametrize("word_bits", [16, 32, 64])
def test_multi_word_masks(word_bits: int) -> None:
    """Trees of 512 leaves: 32, 16 or 8 mask words per tree."""
    tree = perfect_tree(9)
    op = TreeEnsemble(trees=(tree, perfect_tree(3), leaf_tree(0.5)), n_features=3, n_outputs=1, comparison="<",
                      compare_dtype="float32", base_score=np.array([0.25]))
    tab = build_qs_tables(op, word_bits, 0)
    spans = build_qs_tables(op, word_bits, 0, spans=True)
    assert tab.words == spans.words == 512 // word_bits
    # with spans a node keeps the words over its true subtree only: one word for most nodes of a deep tree
    per_node = np.diff(spans.bv_start[: spans.threshold.size - PAD + 1])
    assert per_node.max() > 1 and np.median(per_node) == 1
    rng = np.random.default_rng(word_bits)
    X = rng.uniform(-1.2, 1.2, size=(4000, 3)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan
    X[:50] = np.sin(np.arange(150)).reshape(50, 3).astype(np.float32)  # exactly at thresholds
    want = reference.evaluate_op(op, X)
    assert_close(evaluate(tab, X[:300]) + 0.25, want[:300], "numpy QuickScorer")
    assert_close(evaluate(spans, X[:300]) + 0.25, want[:300], "numpy QuickScorer, spans")
    for knobs in ({"vector_rows": 1}, {"vector_rows": 8, "rows_per_block": 64}, {},
                  {"node_words": "all"}, {"node_words": "all", "vector_rows": 1}):
        prog = build(op, {"word_bits": word_bits, **knobs}, threads=2)
        assert_close(prog(X), want, f"{word_bits}-bit words {knobs}")
    # the exit leaves of the big tree lie in many mask words
    big = TreeEnsemble(trees=(tree,), n_features=3, n_outputs=1, comparison="<", compare_dtype="float32",
                       base_score=np.zeros(1))
    got = build(big, {"word_bits": word_bits})(X)[:, 0]
    ranks = np.abs(build_qs_tables(big, word_bits, 0).leaf[None, :512] - got[:, None]).argmin(axis=1)
    assert np.unique(ranks // 64).size >= 4


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_special_and_nan_lanes(dtype: str) -> None:
    """Zero-as-missing at its boundary, categories at fractional / out-of-range values, one NaN lane per vector."""
    from strategies.trees.common import round_down

    z = float(round_down(np.array([1e-35]), np.dtype(dtype))[0])
    up = float(np.nextafter(np.dtype(dtype).type(z), np.dtype(dtype).type(1)))
    edges = [0.0, -0.0, z, -z, up, -up, 1e-38, -1e-45, np.inf, -np.inf,
             -0.5, -1.0, 0.5, 0.99, 1.5, 31.5, 32.0, 63.9, 64.0, 1e9]
    rng = np.random.default_rng(0)
    for rounding in ("trunc", "floor"):
        op = random_ensemble(7, n_trees=12, depth=5, compare_dtype=dtype, zero_missing=True,
                             categorical=frozenset({0, 2}), rounding=rounding)
        X = rng.choice(np.array(edges), size=(400, op.n_features)).astype(dtype)
        plain = random_ensemble(9, n_trees=12, depth=6, compare_dtype=dtype)
        Y = inputs(plain, 400).astype(dtype)
        Y[np.isnan(Y)] = 0.5
        for r in range(0, 400, 16):  # one NaN in one lane of each row vector, at a different lane each time
            Y[r + (r // 16) % 16, (r // 16) % plain.n_features] = np.nan
        for knobs in ({}, {"vector_rows": 1}, {"vector_rows": 8}, {"vector_rows": 128}):
            assert_close(build(op, knobs)(X), reference.evaluate_op(op, X), f"{dtype} {rounding} {knobs}")
            assert_close(build(plain, knobs)(Y), reference.evaluate_op(plain, Y), f"{dtype} NaN lanes {knobs}")


def test_exact_category_rounding_makes_non_integral_values_unknown() -> None:
    op = random_ensemble(3, n_trees=5, depth=3, n_features=3, categorical=frozenset({0}), rounding="exact",
                         compare_dtype="float64")
    X = np.array([[2.5, 0.1, 0.2], [2.0, 0.1, 0.2], [3.7, 0.0, 0.0], [0.5, 1.0, 1.0], [-0.5, 1.0, 1.0]] * 8)
    for knobs in ({}, {"vector_rows": 1}):
        assert_close(build(op, knobs)(X), reference.evaluate_op(op, X), f"exact rounding {knobs}")


def test_invalid_configs_are_refused_with_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    op = random_ensemble(2, n_trees=12, depth=4)
    r = lambda op, **k: QuickScorer.invalid_reason(op, QuickScorer.resolve_knobs(k))  # noqa: E731
    assert r(op, rows_per_block=16, vector_rows=16) is None
    assert "rows_per_block (64) must be a multiple of vector_rows (128)" in r(op, rows_per_block=64, vector_rows=128)
    assert "tree_block 16 is not smaller than the 12 trees" in r(op, tree_block=16)
    assert "node_words only matters with multi-word masks" in r(op, node_words="all")
    many = TreeEnsemble(trees=(perfect_tree(9),) * 1030, n_features=3, n_outputs=1, comparison="<",
                        compare_dtype="float32", base_score=np.zeros(1))
    assert r(many, vector_rows=128) is None  # 8 MiB of masks
    monkeypatch.setattr(quickscorer, "MAX_MASK_BYTES", 1 << 20)
    assert "masks of 1030 trees x 16 words x 128 lanes take 8240 KiB (limit 1024 KiB); use a smaller tree_block" \
        in r(many, vector_rows=128)
    assert r(many, vector_rows=128, tree_block=16) is None
    monkeypatch.setattr(quickscorer, "MAX_TABLE_BYTES", 16 << 20)
    assert "the bitvector table would take 32 MiB (limit 16 MiB)" in r(many, tree_block=16)
    huge = TreeEnsemble(trees=(perfect_tree(11),), n_features=3, n_outputs=1, comparison="<",
                        compare_dtype="float32", base_score=np.zeros(1))
    reason = QuickScorer.unsupported_reason(huge)
    assert f"at most {MAX_LEAVES} leaves" in reason and "2048 leaves" in reason
    with pytest.raises(InvalidConfigError, match="quickscorer.*2048 leaves"):
        build(huge, {})
    with pytest.raises(InvalidConfigError, match=r"vector_rows.*\[1, 8, 16, 32, 64, 128\].*got 4"):
        build(op, {"vector_rows": 4})
    with pytest.raises(InvalidConfigError, match="no knob"):
        build(op, {"interleave": 4})
    assert QuickScorer.redundant_reason(op, {"parallel": "none"}, threads=1)
    assert QuickScorer.redundant_reason(op, {"parallel": "none"}, threads=2) is None
    for batch in (1, 1024, 65536):
        for knobs in QuickScorer.suggestions(op, batch):
            assert r(op, **knobs) is None


def test_save_load_without_tvm_in_a_fresh_process(tmp_path: Path) -> None:
    op = random_ensemble(9, n_trees=25, depth=6, categorical=frozenset({1}), zero_missing=True, n_outputs=3,
                         post=PostTransform("softmax"))
    X = inputs(op, 333, seed=5)
    progs = {"v16": build(op, {}, threads=2), "v1": build(op, {"vector_rows": 1, "word_bits": 64}, threads=1)}
    np.save(tmp_path / "x.npy", X)
    for name, prog in progs.items():
        (tmp_path / name).mkdir()
        meta = prog.save(tmp_path / name)
        (tmp_path / name / "meta.json").write_text(json.dumps(meta))
    script = (
        "import json, sys, numpy as np; from pathlib import Path\n"
        "from strategies.backends.tvm_tir import TvmTirProgram\n"
        "d = Path(sys.argv[1]); X = np.load(d / 'x.npy')\n"
        "for name in ('v16', 'v1'):\n"
        "    p = TvmTirProgram.load(d / name, json.loads((d / name / 'meta.json').read_text()))\n"
        "    np.save(d / name / 'y.npy', p(X)); np.save(d / name / 'y1.npy', p(X[:1]))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tvm', 'tvm_ffi', 'torch'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env, cwd=tmp_path,
                         timeout=120, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    for name, prog in progs.items():
        np.testing.assert_array_equal(np.load(tmp_path / name / "y.npy"), prog(X))
        np.testing.assert_array_equal(np.load(tmp_path / name / "y1.npy"), prog(X[:1]))
        assert_close(prog(X), reference.evaluate_op(op, X), name)


class PreferQuickScorer(HeuristicCostModel):
    """A cost model that ranks quickscorer configs first, so the test knows they get measured."""

    def predict(self, candidates):
        return np.array([0.0 if c.config.get("strategy") == "quickscorer" else 1.0 for c in candidates])


def test_tune_measures_quickscorer(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'qs.db'}"
    model = ZOO["xgb_multiclass"]()
    fast = MeasureSettings(warmup=1, min_repeats=3, min_seconds=0.02, timeout_s=120)
    report = tuner.tune(model, db=db, batch_sizes=(256,), trials=4, threads=2, progress=False,
                        backends=("tvm-tir",), cost_model=PreferQuickScorer(), measure_settings=fast)
    assert report.trials_measured == 4
    with records.open_database(db) as d:
        trials = d.trials()
    measured = [t for t in trials if t.config["strategy"] == "quickscorer"]
    assert measured and all(t.status.value == "ok" for t in measured), [(t.config, t.error) for t in trials]
    assert report.chosen[256][0]["backend"] == "tvm-tir"
    pred = tuner.load(model, db=db)
    X = data(n=300, nan=0.05, seed=3)
    np.testing.assert_allclose(pred.predict_proba(X), model.predict_proba(X), rtol=1e-5, atol=1e-5)

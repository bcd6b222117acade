"""tiled_traversal on the tvm-tir backend: exact against the reference evaluator, knobs, artifacts, threads.

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
import threading
from pathlib import Path

import numpy as np
import pytest

from strategies import reference
from strategies.backends.base import BuildRequest
from strategies.backends._tvm_runtime import _default_concurrency
from strategies.backends.tvm_tir import TvmTirBackend, TvmTirProgram
from strategies.ground.errors import InvalidConfigError
from strategies.ir import Linear, PostTransform, Tree, TreeEnsemble
from strategies.sampling import sample_inputs
from strategies.testing import as_model, random_ensemble
from strategies.trees.tiled_traversal import TiledTraversal

REPO = Path(__file__).resolve().parents[1]
RTOL = 1e-5


def assert_close(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def build(op: TreeEnsemble, knobs: dict, *, threads: int = 1, output: str = "out") -> TvmTirProgram:
    config = {"strategy": "tiled_traversal", "backend": "tvm-tir", "threads": threads, "knobs": knobs}
    return TvmTirBackend().build(BuildRequest((op,), config, output))


def inputs(op: TreeEnsemble, n: int, seed: int = 0) -> np.ndarray:
    X = sample_inputs(as_model(op), n, seed=seed, special_fraction=0.4)
    return np.ascontiguousarray(X.astype(op.compare_dtype))


def leaf_tree(value) -> Tree:
    value = np.atleast_1d(np.asarray(value, dtype=np.float64))
    return Tree(feature=[-1], threshold=[0.0], left=[-1], right=[-1], missing_left=[False], value=value[None, :])


def with_single_leaves(op: TreeEnsemble, count: int = 3) -> TreeEnsemble:
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


# (ensemble arguments, knobs, threads): together every value of every knob (x_block defaults to
# True), both comparisons,
# both compare dtypes, categorical (trunc and floor), zero-as-missing, sum and mean, per-tree
# columns and vector leaves, single-leaf trees, every post-transform.
CASES = {
    "lt-f32-default": (dict(comparison="<", n_trees=37, depth=7, post=PostTransform("sigmoid", 0.7)), {}, 2),
    "le-f32-cat-trunc-scalar": (
        dict(comparison="<=", n_trees=20, depth=6, categorical=frozenset({1, 3}), rounding="trunc"),
        dict(vector_rows=1, interleave=2, rows_per_block=16, parallel="none", x_block=False), 2),
    "lt-f32-catfloor-zm-sparse-loop": (
        dict(comparison="<", n_trees=16, depth=6, categorical=frozenset({0}), rounding="floor", zero_missing=True,
             post=PostTransform("exp")),
        dict(layout="sparse", unroll=False), 1),
    "le-f64-zm-v16": (
        dict(comparison="<=", compare_dtype="float64", n_trees=24, depth=6, zero_missing=True,
             post=PostTransform("isolation", 3.5)),
        dict(vector_rows=16, interleave=8, register_levels=1, x_block=False), 2),
    "lt-f64-cat-zm-sparse-scalar": (
        dict(comparison="<", compare_dtype="float64", n_trees=14, depth=5, categorical=frozenset({2, 4}),
             zero_missing=True),
        dict(layout="sparse", vector_rows=1, interleave=1, rows_per_block=16), 1),
    "multiclass-softmax-trees-parallel": (
        dict(n_outputs=3, n_trees=30, depth=5, post=PostTransform("softmax")),
        dict(loop_order="trees_outer", tree_group=8, parallel="trees", x_block=False), 2),
    "vector-leaves-mean-ovr-v16": (
        dict(n_outputs=3, per_tree_output=False, n_trees=12, depth=8, aggregation="mean",
             post=PostTransform("ovr_normalize")),
        dict(vector_rows=16, rows_per_block=256, register_levels=8), 2),
    "groups32-trees-outer-cat": (
        dict(comparison="<=", n_trees=70, depth=6, categorical=frozenset({4}), post=PostTransform("ovr_normalize")),
        dict(loop_order="trees_outer", tree_group=32, interleave=8, rows_per_block=256), 2),
    "multiclass-default": (dict(n_outputs=4, n_trees=24, depth=6, post=PostTransform("softmax")), {}, 1),
    "vector-leaves-sum-scalar": (
        dict(n_outputs=2, per_tree_output=False, n_trees=10, depth=5), dict(vector_rows=1, interleave=8), 2),
    "eager5-lt-f32-v16": (
        dict(comparison="<", n_trees=33, depth=7, post=PostTransform("sigmoid", 1.0)),
        dict(vector_rows=16, eager_levels=5, interleave=8), 2),
    "eager-all-levels-le-f64-multiclass": (
        dict(comparison="<=", compare_dtype="float64", n_outputs=3, n_trees=18, depth=4, post=PostTransform("softmax")),
        dict(eager_levels=4, register_levels=1), 1),
    "eager2-groups-trees-outer": (
        dict(n_trees=40, depth=6), dict(eager_levels=2, loop_order="trees_outer", tree_group=8), 2),
    "hybrid-top4-cat-zm-v16": (
        dict(comparison="<", n_trees=21, depth=9, categorical=frozenset({2}), rounding="floor", zero_missing=True,
             post=PostTransform("sigmoid", 1.0)),
        dict(layout="hybrid", top_levels=4, vector_rows=16, register_levels=1), 2),
    "hybrid-top6-eager-f64-multiclass": (
        dict(comparison="<=", compare_dtype="float64", n_outputs=3, n_trees=15, depth=10, post=PostTransform("softmax")),
        dict(layout="hybrid", top_levels=6, eager_levels=3), 1),
    "hybrid-top8-scalar-trees-parallel": (
        dict(n_trees=24, depth=11), dict(layout="hybrid", top_levels=8, vector_rows=1, interleave=2,
                                         loop_order="trees_outer", tree_group=8, parallel="trees", x_block=False), 2),
    "parallel-both-hybrid-multiclass": (
        dict(n_outputs=3, n_trees=27, depth=9, post=PostTransform("softmax")),
        dict(layout="hybrid", top_levels=4, loop_order="trees_outer", tree_group=4, parallel="both",
             rows_per_block=16), 2),
    "binary-ovr-mean-sparse-v16": (
        dict(n_trees=9, depth=4, aggregation="mean", post=PostTransform("ovr_normalize")),
        dict(layout="sparse", vector_rows=16, interleave=2), 1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(name: str) -> None:
    ens, knobs, threads = CASES[name]
    op = with_single_leaves(random_ensemble(list(CASES).index(name) + 10, **ens))
    assert TiledTraversal.invalid_reason(op, TiledTraversal.resolve_knobs(knobs)) is None
    block = TiledTraversal.resolve_knobs(knobs)["rows_per_block"]
    X = inputs(op, 2 * block + 131, seed=len(name))
    for output in ("out", "raw") if not op.post_transform.is_identity else ("out",):
        prog = build(op, knobs, threads=threads, output=output)
        want = reference.evaluate_op(op, X, output=output)
        for n in sorted({1, 7, block - 1, block, block + 3, X.shape[0]}):
            got = prog(X[:n])
            assert got.shape == (n, op.n_outputs) and got.dtype == op.compare_dtype
            assert_close(got, want[:n], f"{name} {output} n={n}")


@pytest.mark.parametrize("simd", ["avx2", "generic"])
def test_narrower_cpus(simd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The code paths for CPUs without AVX-512 (permute chunks of 8) or without x86 intrinsics."""
    from strategies.backends import tvm_tir

    monkeypatch.setattr(tvm_tir, "host_simd", lambda: simd)
    op = random_ensemble(8, n_trees=11, depth=7, categorical=frozenset({2}), zero_missing=True,
                         post=PostTransform("sigmoid"))
    X = inputs(op, 150)
    for knobs in ({"register_levels": 6}, {"vector_rows": 16, "x_block": False}):
        prog = build(op, knobs, threads=2)
        assert prog.meta["simd"] == simd
        assert_close(prog(X), reference.evaluate_op(op, X), f"{simd} {knobs}")


def test_all_trees_single_leaves_and_stumps() -> None:
    leaves = TreeEnsemble(
        trees=tuple(leaf_tree(v) for v in (0.5, -1.25, 2.0)), n_features=2, n_outputs=1, comparison="<",
        compare_dtype="float32", base_score=np.array([0.1]), post_transform=PostTransform("sigmoid"),
    )
    stumps = random_ensemble(5, n_trees=6, depth=1, comparison="<=")
    for op in (leaves, stumps):
        for knobs in ({}, {"layout": "sparse", "vector_rows": 1}):
            X = inputs(op, 50)
            assert_close(build(op, knobs)(X), reference.evaluate_op(op, X), f"{op.summary()} {knobs}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_special_node_edge_values(dtype: str) -> None:
    """Zero-as-missing at its 1e-35 boundary and categories at fractional / out-of-range values."""
    from strategies.trees.common import round_down

    z = float(round_down(np.array([1e-35]), np.dtype(dtype))[0])
    up = float(np.nextafter(np.dtype(dtype).type(z), np.dtype(dtype).type(1)))
    edges = [0.0, -0.0, z, -z, up, -up, 1e-38, -1e-45, np.nan, np.inf, -np.inf,
             -0.5, -1.0, 0.5, 0.99, 1.5, 31.5, 32.0, 63.9, 64.0, 1e9]
    for rounding in ("trunc", "floor"):
        op = random_ensemble(7, n_trees=12, depth=5, compare_dtype=dtype, zero_missing=True,
                             categorical=frozenset({0, 2}), rounding=rounding)
        rng = np.random.default_rng(0)
        X = rng.choice(np.array(edges), size=(400, op.n_features)).astype(dtype)
        for knobs in ({}, {"x_block": False}, {"layout": "sparse", "vector_rows": 1}):
            assert_close(build(op, knobs)(X), reference.evaluate_op(op, X), f"{dtype} {rounding} {knobs}")


def test_unaligned_and_edge_inputs() -> None:
    op = random_ensemble(3, n_trees=10, depth=5)
    prog = build(op, {})
    X = inputs(op, 70)
    raw = np.empty(X.size + 1, np.float32)
    view = raw[1:].reshape(X.shape)  # 4-byte aligned only
    view[...] = X
    assert view.ctypes.data % 16 != 0
    assert_close(prog(view), reference.evaluate_op(op, X))
    assert prog(X[:0]).shape == (0, 1)
    with pytest.raises(ValueError, match="dtype float32"):
        prog(X.astype(np.float64))
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        prog(X[:, :3].copy())
    with pytest.raises(ValueError, match="C-contiguous"):
        prog(np.asfortranarray(X))


def test_outputs_are_not_reused() -> None:
    op = random_ensemble(4, n_trees=8, depth=4)
    prog = build(op, {})
    a, b = inputs(op, 40, seed=1), inputs(op, 40, seed=2)
    ya = prog(a)
    keep = ya.copy()
    prog(b)
    np.testing.assert_array_equal(ya, keep)


def test_save_load_in_fresh_process_is_bit_identical(tmp_path: Path) -> None:
    op = random_ensemble(9, n_trees=25, depth=6, categorical=frozenset({1}), zero_missing=True,
                         post=PostTransform("sigmoid", 1.3))
    prog = build(op, {"interleave": 8}, threads=2)
    X = inputs(op, 333, seed=5)
    np.save(tmp_path / "x.npy", X)
    meta = prog.save(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    script = (
        "import json, sys, numpy as np; from pathlib import Path\n"
        "from strategies.backends.tvm_tir import TvmTirProgram\n"
        "d = Path(sys.argv[1]); meta = json.loads((d / 'meta.json').read_text())\n"
        "p = TvmTirProgram.load(d, meta)\n"
        "np.save(d / 'y.npy', p(np.load(d / 'x.npy')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env, cwd=tmp_path, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), prog(X))


def test_threads_take_effect_without_side_effects() -> None:
    import tvm

    op = random_ensemble(6, n_trees=20, depth=6)
    prog = build(op, {"rows_per_block": 16}, threads=2)
    serial = build(op, {"rows_per_block": 16}, threads=1)
    assert prog.meta["parallel"] == "rows" and serial.meta["parallel"] == "none"
    X = inputs(op, 1000)
    want = serial(X)
    env, affinity = dict(os.environ), os.sched_getaffinity(0)

    def in_fresh_thread(fn):
        box = {}
        worker = threading.Thread(target=lambda: box.setdefault("v", fn()))
        worker.start()
        worker.join()
        return box["v"]

    def call_and_pool_size():
        y = prog(X)  # sizes this thread's pool for the call, then restores TVM's default
        return y, tvm.runtime.num_threads()

    y, size_after = in_fresh_thread(call_and_pool_size)
    np.testing.assert_array_equal(y, want)
    assert size_after == min(_default_concurrency(), len(affinity))  # back to TVM's default worker count
    np.testing.assert_array_equal(prog(X), want)
    assert dict(os.environ) == env and os.sched_getaffinity(0) == affinity

    def cpu_ticks() -> dict[str, int]:
        ticks = {}
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks[tid] = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks

    big = np.ascontiguousarray(np.tile(X, (200, 1)))
    before = cpu_ticks()
    for _ in range(40):  # ~0.2 s of work: every worker thread gets clock ticks (10 ms each) to show
        prog(big)
    after = cpu_ticks()
    busy = [t for t in after if after[t] - before.get(t, 0) > 0]
    assert len(busy) >= min(2, len(affinity)), "a threads=2 program ran on a single thread"

    def undersized_pool_first():
        tvm.runtime.num_threads()  # creates this thread's pool at TVM's default size (1 worker here)
        return prog(X)  # -> runs on the helper thread

    np.testing.assert_array_equal(in_fresh_thread(undersized_pool_first), want)
    assert os.sched_getaffinity(0) == affinity


def test_unknown_knob_value_names_allowed_values() -> None:
    op = random_ensemble(1)
    with pytest.raises(InvalidConfigError, match=r"interleave.*\[1, 2, 4, 8\].*got 3"):
        build(op, {"interleave": 3})
    with pytest.raises(InvalidConfigError, match="no knob"):
        build(op, {"tile": 4})


def test_invalid_combinations_are_pruned() -> None:
    deep = random_ensemble(2, n_trees=2, depth=14)
    shallow = random_ensemble(2, n_trees=12, depth=4)
    r = lambda op, **k: TiledTraversal.invalid_reason(op, TiledTraversal.resolve_knobs(k))  # noqa: E731
    assert "depth" in r(deep) and r(deep, layout="sparse") is None
    assert "trees_outer" in r(shallow, tree_group=8)
    assert "tree_group" in r(shallow, loop_order="trees_outer")
    assert "tree_group" in r(shallow, parallel="trees")
    assert "parallel='both' needs tree_group" in r(shallow, parallel="both")
    assert "register_levels" in r(shallow, layout="sparse", register_levels=8)
    assert "exceeds" in r(shallow, register_levels=8)
    assert "eager_levels needs" in r(shallow, layout="sparse", eager_levels=2)
    assert "top_levels only applies" in r(shallow, top_levels=4)
    assert "below the depth" in r(shallow, layout="hybrid", top_levels=4)
    assert r(deep, layout="hybrid") is None and r(deep, layout="hybrid", top_levels=4) is None
    assert "needs unroll" in r(deep, layout="hybrid", unroll=False)
    assert "perfect top of 4" in r(deep, layout="hybrid", top_levels=4, eager_levels=5)
    assert "eager_levels needs" in r(shallow, eager_levels=2, x_block=False)
    assert "exceeds the ensemble's depth 4" in r(shallow, eager_levels=5)
    special = random_ensemble(3, n_trees=4, depth=4, zero_missing=True)
    assert "numeric splits only" in r(special, eager_levels=2)
    with pytest.raises(InvalidConfigError, match="depth"):
        build(deep, {})


def test_backend_serves_single_tree_ensembles_only() -> None:
    op = random_ensemble(1)
    lin = Linear(coef=np.ones((1, 5)), intercept=np.zeros(1))
    with pytest.raises(InvalidConfigError, match=r"cannot serve operator\(s\) \['linear'\]; it serves \['tree_ensemble'\]"):
        TvmTirBackend().build(BuildRequest((lin,), {"threads": 1}, "out"))
    with pytest.raises(InvalidConfigError, match="exactly one tree_ensemble"):
        TvmTirBackend().build(BuildRequest((op, random_ensemble(2, n_features=1)), {"threads": 1}, "out"))
    with pytest.raises(InvalidConfigError, match="builds TensorIR \\('tir' family\\) strategies; 'gemm' is 'torch'"):
        TvmTirBackend().build(BuildRequest((op,), {"strategy": "gemm", "threads": 1}, "out"))


def test_exact_category_rounding_makes_non_integral_values_unknown() -> None:
    # HistGradientBoosting's categories: a value that is no integer (2.5) is an unknown category, not category 2
    op = random_ensemble(3, n_trees=5, depth=3, n_features=3, categorical=frozenset({0}), rounding="exact",
                         compare_dtype="float64")
    X = np.array([[2.5, 0.1, 0.2], [2.0, 0.1, 0.2], [3.7, 0.0, 0.0], [0.5, 1.0, 1.0], [-0.5, 1.0, 1.0]] * 8)
    for knobs in ({}, {"layout": "sparse", "vector_rows": 1}):
        assert_close(build(op, knobs)(X), reference.evaluate_op(op, X), f"exact rounding {knobs}")


@pytest.mark.parametrize("multiple", [1, 4])
def test_trees_by_depth_keep_the_sums_and_cover_every_walk(multiple: int) -> None:
    from strategies.trees._tir_layout import MAX_SEGMENTS, by_depth

    op = with_single_leaves(random_ensemble(7, n_outputs=3, n_trees=29, depth=9), count=5)
    ordered, segments = by_depth(op, min_steps=2, multiple=multiple)
    assert 1 < len(segments) <= MAX_SEGMENTS
    assert segments[0][0] == 0 and segments[-1][1] == ordered.n_trees
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))
    for b, e, steps in segments:
        assert (e - b) % multiple == 0 and steps >= 2
        assert all(t.depth <= steps for t in ordered.trees[b:e])
    assert ordered.n_trees - op.n_trees < multiple * len(segments)
    X = inputs(op, 200)
    np.testing.assert_allclose(reference.evaluate_op(ordered, X, output="raw"),
                               reference.evaluate_op(op, X, output="raw"), rtol=1e-12, atol=1e-12)
    # fewer steps than every tree walking the deepest tree's depth
    assert sum((e - b) * s for b, e, s in segments) < ordered.n_trees * op.max_depth

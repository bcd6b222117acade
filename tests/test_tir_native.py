"""Saved tvm-tir programs run through ``_tir_native`` (ctypes) without importing tvm or torch.

One fresh subprocess loads every saved program, calls it at several batch sizes,
re-saves a loaded program and loads that again, probes broken libraries, and
reports which modules it imported (then imports tvm and runs the same kernels
through tvm's loader); its outputs must be identical (bit for bit) to the
programs built here, which call the kernels through tvm.
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

from strategies.backends import _tir_native, tvm_tir
from strategies.backends.base import BuildRequest
from strategies.backends.tvm_tir import TvmTirBackend, TvmTirProgram
from strategies.frontends import convert
from strategies.ir import PostTransform, TreeEnsemble
from strategies.sampling import sample_inputs
from strategies.testing import as_model, random_ensemble
from strategies.trees.tiled_traversal import TiledTraversal
from zoo import ZOO

REPO = Path(__file__).resolve().parents[1]
BATCHES = (1, 7, 1024, 5000)


def tree_op(model_name: str) -> TreeEnsemble:
    nodes = convert(ZOO[model_name]()).graph.nodes
    assert len(nodes) == 1 and isinstance(nodes[0].op, TreeEnsemble)
    return nodes[0].op


# name -> (ensemble, knobs, threads)
CASES = {
    # XGBoost with NaN (float32), serial
    "xgb-nan": (lambda: tree_op("xgb_binary_nan"), {}, 1),
    # LightGBM with categorical splits, float64 thresholds, rows in parallel on 2 threads
    "lgb-cat-f64-rows": (lambda: tree_op("lgb_categorical"), {"parallel": "rows", "rows_per_block": 16}, 2),
    # XGBoost multiclass, groups of trees in parallel on 2 threads
    "xgb-multi-trees": (
        lambda: tree_op("xgb_multiclass"),
        {"loop_order": "trees_outer", "tree_group": 8, "parallel": "trees", "x_block": False}, 2),
    # float64 thresholds, sparse layout, zero-as-missing, categorical, softmax of 3 outputs
    "f64-sparse-softmax": (
        lambda: random_ensemble(3, n_trees=15, depth=5, n_outputs=3, compare_dtype="float64", zero_missing=True,
                                categorical=frozenset({1}), post=PostTransform("softmax")),
        {"layout": "sparse", "vector_rows": 1}, 2),
}

LOADER = r"""
import json, os, sys, threading, time
from pathlib import Path
import numpy as np
from strategies.backends.tvm_tir import TvmTirProgram
from strategies.backends import _tir_native
from strategies.backends._tvm_runtime import _default_concurrency

d = Path(sys.argv[1])
cases = json.loads((d / "cases.json").read_text())
report = {"programs": {}, "errors": {}}
for name, batches in cases.items():
    meta = json.loads((d / name / "meta.json").read_text())
    p = TvmTirProgram.load(d / name, meta)
    X = np.load(d / name / "x.npy")
    for n in batches:
        np.save(d / name / f"y{n}.npy", p(X[:n]))
    p.save(d / name / "again")  # a loaded program re-saves its library bytes
    q = TvmTirProgram.load(d / name / "again", meta)
    np.save(d / name / "again.npy", q(X))
    report["programs"][name] = {"threads": p.threads, "parallel": meta["parallel"]}

programs = {name: TvmTirProgram.load(d / name, json.loads((d / name / "meta.json").read_text())) for name in cases}

def pool_size_after_call(p, X):
    # a fresh thread: the threads=2 call sizes its pool, then TVM's default is restored
    box = {}
    def run():
        p(X)
        box["size"] = _tir_native.thread_pool().num_threads()
    t = threading.Thread(target=run); t.start(); t.join()
    return box["size"]

def cpu_ticks():
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[tid] = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks

def busy_threads(p, X):
    # threads that ran while the program worked on a big batch for ~0.3 s
    big = np.ascontiguousarray(np.tile(X, (20, 1)))
    before, start = cpu_ticks(), time.perf_counter()
    while time.perf_counter() - start < 0.3:
        p(big)
    after = cpu_ticks()
    return sum(1 for t in after if after[t] - before.get(t, 0) > 0)

report["pool_default"] = min(_default_concurrency(), len(os.sched_getaffinity(0)))
report["pool_size_after"], report["busy_threads"] = {}, {}
for name, p in programs.items():
    if p.threads > 1:
        X = np.load(d / name / "x.npy")
        report["pool_size_after"][name] = pool_size_after_call(p, X)
        report["busy_threads"][name] = busy_threads(p, X)

def probe(label, path):
    try:
        _tir_native.NativeKernel(path, [], x_columns=1, x_dtype="float32", out_columns=1, out_dtype="float32")
        report["errors"][label] = None
    except Exception as e:
        report["errors"][label] = [type(e).__name__, str(e)]

probe("missing", d / "nowhere" / "kernel.so")
probe("garbage", d / "garbage.so")
probe("truncated", d / "truncated.so")
probe("segments_cut", d / "segments_cut.so")
probe("no_entry", _tir_native.runtime().paths[0])  # a shared library, but no kernel
report["modules"] = sorted(m for m in ("tvm", "torch", "tvm_ffi", "scipy", "pandas", "sklearn") if m in sys.modules)

# tvm imported after the native loads: one copy of each library, and both loaders agree
import tvm
report["after_tvm_import"] = {}
for name, p in programs.items():
    meta = json.loads((d / name / "meta.json").read_text())
    X = np.load(d / name / "x.npy")
    fn = tvm.runtime.load_module(str(d / name / "kernel.so"))["main"]
    with np.load(d / name / "tables.npz") as z:
        tables = [tvm.runtime.tensor(z[t], tvm.cpu()) for t in meta["table_names"]]
    out = np.empty((len(X), p.n_outputs), p.output_dtype)
    fn(X, out, *tables)  # serial: this thread's TVM default
    report["after_tvm_import"][name] = bool(np.array_equal(out, p(X)) and np.array_equal(out, np.load(d / name / f"y{len(X)}.npy")))
with open("/proc/self/maps") as f:
    report["mapped"] = sorted({line.split()[-1] for line in f if "libtvm_ffi.so" in line or "libtvm_runtime.so" in line})
(d / "report.json").write_text(json.dumps(report))
"""


def build(op: TreeEnsemble, knobs: dict, threads: int, output: str = "out") -> TvmTirProgram:
    assert TiledTraversal.invalid_reason(op, TiledTraversal.resolve_knobs(dict(knobs))) is None
    config = {"strategy": "tiled_traversal", "backend": "tvm-tir", "threads": threads, "knobs": knobs}
    return TvmTirBackend().build(BuildRequest((op,), config, output))


def inputs(op: TreeEnsemble, n: int, seed: int = 0) -> np.ndarray:
    X = sample_inputs(as_model(op), n, seed=seed, special_fraction=0.4)
    return np.ascontiguousarray(X.astype(op.compare_dtype))


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory):
    """Builds and saves every case, runs LOADER once in a fresh interpreter; (dir, built programs, report)."""
    d = tmp_path_factory.mktemp("tir_native")
    built, cases = {}, {}
    for i, (name, (make, knobs, threads)) in enumerate(CASES.items()):
        op = make()
        prog = build(op, knobs, threads)
        assert prog.meta["parallel"] == (knobs.get("parallel", "rows") if threads > 1 else "none")
        (d / name).mkdir()
        (d / name / "again").mkdir()
        meta = prog.save(d / name)
        assert meta["cpu_features"], "the build records the CPU's features for the check at load"
        (d / name / "meta.json").write_text(json.dumps(meta))
        np.save(d / name / "x.npy", inputs(op, max(BATCHES), seed=i))
        built[name] = prog
        cases[name] = list(BATCHES)
    (d / "cases.json").write_text(json.dumps(cases))
    library = (d / next(iter(CASES)) / "kernel.so").read_bytes()
    (d / "garbage.so").write_bytes(b"this is not a shared library" * 10)
    (d / "truncated.so").write_bytes(library[: len(library) // 3])
    no_sections = bytearray(library[: len(library) // 3])
    no_sections[40:48] = bytes(8)  # e_shoff: no section header table, so only the segments tell
    no_sections[60:62] = bytes(2)  # e_shnum
    (d / "segments_cut.so").write_bytes(bytes(no_sections))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", LOADER, str(d)], env=env, cwd=d, timeout=120,
                         capture_output=True, text=True)
    assert run.returncode == 0, f"loader failed ({run.returncode}):\n{run.stderr[-3000:]}"
    return d, built, json.loads((d / "report.json").read_text())


def test_loaded_programs_import_neither_tvm_nor_torch(fresh_process) -> None:
    _, _, report = fresh_process
    assert report["modules"] == [], f"loading + calling imported {report['modules']}"


@pytest.mark.parametrize("name", list(CASES))
def test_outputs_identical_to_the_tvm_path(fresh_process, name: str) -> None:
    d, built, _ = fresh_process
    prog = built[name]
    X = np.load(d / name / "x.npy")
    for n in BATCHES:
        got = np.load(d / name / f"y{n}.npy")
        want = prog(X[:n])
        assert got.dtype == want.dtype and got.shape == want.shape == (n, prog.n_outputs)
        np.testing.assert_array_equal(got, want, err_msg=f"{name} n={n}")
    np.testing.assert_array_equal(np.load(d / name / "again.npy"), prog(X), err_msg=f"{name} re-saved")


def test_threads_without_tvm(fresh_process) -> None:
    _, _, report = fresh_process
    assert {p["parallel"] for p in report["programs"].values() if p["threads"] == 2} == {"rows", "trees"}
    for name, size in report["pool_size_after"].items():  # the calling thread's default is back
        assert size == report["pool_default"], name
    if len(os.sched_getaffinity(0)) >= 2:
        for name, busy in report["busy_threads"].items():
            assert busy >= 2, f"threads=2 program {name} ran on a single thread"


def test_broken_libraries_give_clear_errors(fresh_process) -> None:
    _, _, report = fresh_process
    errors = report["errors"]
    assert errors["missing"][0] == "FileNotFoundError" and "does not exist" in errors["missing"][1]
    assert errors["garbage"][0] == "NativeRuntimeError" and "no ELF header" in errors["garbage"][1]
    assert errors["truncated"][0] == "NativeRuntimeError" and "outside the file" in errors["truncated"][1]
    assert errors["segments_cut"][0] == "NativeRuntimeError" and "segment" in errors["segments_cut"][1]
    assert errors["no_entry"][0] == "NativeRuntimeError" and "__tvm_ffi_main" in errors["no_entry"][1]


def test_tvm_imported_after_native_loads(fresh_process) -> None:
    _, _, report = fresh_process
    assert all(report["after_tvm_import"].values()), report["after_tvm_import"]
    assert len(report["mapped"]) == 2, report["mapped"]  # one libtvm_ffi.so, one libtvm_runtime.so


def test_native_and_tvm_loaders_agree_in_one_process(fresh_process) -> None:
    """With tvm imported, the library loaded by tvm and by ctypes (the same mapping) give the same outputs."""
    import tvm

    d, built, _ = fresh_process
    for name in ("xgb-nan", "lgb-cat-f64-rows"):
        meta = json.loads((d / name / "meta.json").read_text())
        loaded = TvmTirProgram.load(d / name, meta)
        assert loaded.module is None and loaded.library == (d / name / "kernel.so").read_bytes()
        X = np.load(d / name / "x.npy")[:1024]
        fn = tvm.runtime.load_module(str(d / name / "kernel.so"))["main"]
        with np.load(d / name / "tables.npz") as z:
            tables = [tvm.runtime.tensor(z[t], tvm.cpu()) for t in meta["table_names"]]
        via_tvm = np.empty((len(X), loaded.n_outputs), loaded.output_dtype)
        fn(X, via_tvm, *tables)
        np.testing.assert_array_equal(loaded(X), via_tvm)
        np.testing.assert_array_equal(loaded(X), built[name](X))


def test_kernel_errors_carry_tvm_messages(fresh_process) -> None:
    d, built, _ = fresh_process
    meta = json.loads((d / "xgb-nan" / "meta.json").read_text())
    with np.load(d / "xgb-nan" / "tables.npz") as z:
        tables = [z[t] for t in meta["table_names"]]
    f = meta["n_features"]
    # prebuilt arguments that disagree with what the kernel was built for: TVM's own check fires
    wrong = _tir_native.NativeKernel(d / "xgb-nan" / "kernel.so", tables, x_columns=f + 1, x_dtype="float32",
                                     out_columns=1, out_dtype="float32")
    with pytest.raises(ValueError, match=r"shape\[1\].*argument #0"):
        wrong(np.zeros((3, f + 1), np.float32), np.empty((3, 1), np.float32))
    wrong_dtype = _tir_native.NativeKernel(d / "xgb-nan" / "kernel.so", tables, x_columns=f, x_dtype="float64",
                                           out_columns=1, out_dtype="float32")
    with pytest.raises(TypeError, match="dtype"):
        wrong_dtype(np.zeros((3, f)), np.empty((3, 1), np.float32))


def test_concurrent_calls_do_not_share_arguments(fresh_process) -> None:
    d, built, _ = fresh_process
    meta = json.loads((d / "xgb-nan" / "meta.json").read_text())
    loaded = TvmTirProgram.load(d / "xgb-nan", meta)
    X = np.load(d / "xgb-nan" / "x.npy")
    chunks = [np.ascontiguousarray(X[i::4]) for i in range(4)]
    want = [built["xgb-nan"](c) for c in chunks]
    bad = []

    def worker(i: int) -> None:
        for _ in range(200):
            if not np.array_equal(loaded(chunks[i][: 1 + i * 3]), want[i][: 1 + i * 3]):
                bad.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_cpu_check_uses_recorded_features(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tvm_tir, "_host_cpu", lambda: ("Some CPU", frozenset({"sse", "sse2", "avx"})))
    tvm_tir._check_cpu("somecpu", ["avx", "sse2", "64bit", "prefer-256-bit"])  # tuning / unknown names ignored
    with pytest.raises(RuntimeError, match=r"compiled for CPU 'somecpu'.*'Some CPU'.*\['avx2', 'fma'\]"):
        tvm_tir._check_cpu("somecpu", ["avx", "avx2", "fma", "sse2"])
    tvm_tir._check_cpu(None, ["avx512f"])  # nothing recorded: nothing to check

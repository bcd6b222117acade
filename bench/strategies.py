"""Rows/s of every strategy x backend on the higgs model, beside XGBoost's own inplace_predict.

    python bench/strategies.py [--batch-sizes 1 1024 100000] [--threads 2] [--backends ...]

Untuned: each pair with its default knobs; tiled_traversal also in its scalar
setting (one row at a time, the best at batch 1 in hand sweeps).  Outputs are
checked against XGBoost before anything is timed.  Not a test: speed claims live here.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HIGGS = REPO.parent / "shared" / "data" / "treebeard" / "higgs_xgb_model_save.json"
HIGGS_ROWS = HIGGS.with_name(HIGGS.name + ".test.sampled.csv")
SLOW_CALL_S = 2.0  # a cell whose first call takes longer is reported from that call alone, marked *
SKIP_CALL_S = 30.0  # a larger batch whose call would take longer (from the smaller batch's rate) is skipped

PAIRS = [
    ("gemm", "torch"), ("gemm", "torchscript"), ("gemm", "tvm"), ("gemm", "inductor"),
    ("tree_traversal", "torch"), ("tree_traversal", "torchscript"), ("tree_traversal", "tvm"), ("tree_traversal", "inductor"),
    ("perfect_tree_traversal", "torch"), ("perfect_tree_traversal", "torchscript"), ("perfect_tree_traversal", "tvm"),
    ("perfect_tree_traversal", "inductor"),
    ("tiled_traversal", "tvm-tir"),
    ("tiled_traversal", "tvm-tir", {"vector_rows": 1, "rows_per_block": 16}),
]


def main() -> int:
    sys.path.insert(0, str(REPO))
    import xgboost as xgb

    import tuner
    from strategies.backends._tvm_runtime import usable_cores
    from tuner.measure import check_outputs
    from tuner.timing import METHODOLOGY, rotating_batches, time_calls

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 1024, 100_000])
    ap.add_argument("--threads", type=int, default=usable_cores())
    ap.add_argument("--backends", nargs="*", default=None, help="only these backends")
    args = ap.parse_args()
    if not HIGGS.exists():
        print(f"the higgs model is not at {HIGGS}", file=sys.stderr)
        return 2
    booster = xgb.Booster(model_file=str(HIGGS))
    booster.set_param({"nthread": args.threads})
    raw = np.loadtxt(HIGGS_ROWS, delimiter=",")
    X = np.ascontiguousarray(raw[:, : booster.num_features()], dtype=np.float32)
    pairs = [p for p in PAIRS if args.backends is None or p[1] in args.backends]
    print(f"higgs: {booster.num_boosted_rounds()} trees, {X.shape[1]} features; {len(X)} sampled rows; "
          f"{args.threads} threads")
    print(METHODOLOGY.format(warmup=3, n_batches=4, min_repeats=10, min_seconds=0.5)
          + f"; * = one call only (it took over {SLOW_CALL_S:.0f} s)\n")
    header = f"{'strategy':24s} {'backend':12s} {'build':>7s} " + " ".join(f"{'batch ' + str(b):>18s}" for b in args.batch_sizes)
    print(header)
    print("-" * len(header))
    inputs = {b: rotating_batches(X, b, seed=b) for b in args.batch_sizes}
    native = {b: time_calls(lambda x: booster.inplace_predict(x), inputs[b]).median_s for b in args.batch_sizes}
    print(f"{'XGBoost inplace_predict':37s} {'':>7s} " + " ".join(_cell(b, native[b]) for b in args.batch_sizes))
    for strategy, backend, *extra in pairs:
        knobs = extra[0] if extra else {}
        label = strategy + (" (scalar)" if knobs else "")
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # tensor strategies hold (rows x nodes) intermediates: gemm at 100k rows would need ~20 GB
                chunk = max(args.batch_sizes) if backend == "tvm-tir" else min(max(args.batch_sizes), 4096)
                pred = tuner.compile(str(HIGGS), strategy=strategy, backend=backend, threads=args.threads,
                                     batch_size=chunk, **knobs)
                pred.warm_up()
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"{label:24s} {backend:12s} failed to build: {type(e).__name__}: {str(e)[:80]}")
            continue
        build = time.perf_counter() - t0
        cells = []
        per_row = 0.0  # seconds per row at the previous batch size
        for b in sorted(args.batch_sizes):
            if per_row * b > SKIP_CALL_S:
                cells.append(f"skip: est. {per_row * b:.0f} s".rjust(18))
                continue
            want = booster.inplace_predict(inputs[b][0])
            t_first = time.perf_counter()
            got = pred.predict(inputs[b][0])
            t_first = time.perf_counter() - t_first
            problem = check_outputs(got.reshape(b, -1), np.asarray(want, np.float64).reshape(b, -1))
            if problem:
                cells.append(f"{'MISMATCH':>18s}")
                continue
            if t_first > SLOW_CALL_S:  # one call says enough (and repeats would take minutes)
                cells.append(_cell(b, t_first, native[b]) + "*")
                per_row = t_first / b
                continue
            t = time_calls(pred.predict, inputs[b]).median_s
            per_row = t / b
            cells.append(_cell(b, t, native[b]))
        print(f"{label:24s} {backend:12s} {build:6.1f}s " + " ".join(cells), flush=True)
    return 0


def _cell(batch: int, seconds: float, native: float | None = None) -> str:
    ratio = f" {native / seconds:4.2f}x" if native else "      "
    value = f"{seconds * 1e6:8.1f} us" if batch == 1 else f"{batch / seconds / 1e6:7.3f} Mr/s"
    return f"{value}{ratio}".rjust(18)


if __name__ == "__main__":
    raise SystemExit(main())

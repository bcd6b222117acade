"""``make demo``: train a model on data made in code, tune it, load the tuned artifact in a fresh
process, and print native vs untuned vs tuned per batch size."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DB = "tunebird.db"
BUDGET_S = 120


def _data(n: int = 20_000, f: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    X[rng.random(X.shape) < 0.02] = np.nan  # missing values, routed the way XGBoost learned
    z = np.nan_to_num(X)
    logit = z[:, 0] * z[:, 1] + np.sin(3 * z[:, 2]) + 0.5 * z[:, 3] - 0.3 * z[:, 4] ** 2 + 0.2 * z[:, 5:10].sum(1)
    y = (logit + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return X, y


def train_and_tune(workdir: Path) -> Path:
    import xgboost as xgb

    import tuner

    X, y = _data()
    print(f"1. training an XGBoost classifier (200 trees, depth 6) on {len(X):,} rows x {X.shape[1]} features made in code")
    model = xgb.XGBClassifier(n_estimators=200, max_depth=6, learning_rate=0.1, n_jobs=os.cpu_count()).fit(X, y)
    path = workdir / "demo_model.json"
    model.save_model(path)
    print(f"2. tuning it for this machine into ./{DB} (budget {BUDGET_S} s, batch sizes 1 and 1024)")
    t = time.monotonic()
    report = tuner.tune(path, X[:4096], db=DB, batch_sizes=(1, 1024), time_budget=BUDGET_S, progress=True)
    print(f"   {report.trials_measured} candidates measured in {time.monotonic() - t:.0f} s; "
          f"tuned vs untuned: " + ", ".join(f"batch {b}: {s:.2f}x" for b, s in sorted(report.speedup.items())))
    np.save(workdir / "X.npy", X)
    return path


def compare(model_path: Path, X_path: Path) -> None:
    """Runs in a fresh process: load the tuned artifact and print the comparison table."""
    import strategies
    import tuner
    from records.report import Table
    from records.report import format_table
    from tuner.cli_tune import bench_rows
    from tuner.timing import METHODOLOGY

    X = np.load(X_path)
    t = time.perf_counter()
    pred = tuner.load(model_path, db=DB)
    print(f"3. fresh process: tuner.load found {pred!r} in {time.perf_counter() - t:.2f} s")
    native = strategies.load_model(model_path)
    diff = np.abs(pred.predict(X) - native.inplace_predict(X)).max()
    print(f"   tuned outputs vs XGBoost on {len(X):,} rows: max |difference| = {diff:.2e}")
    rows = bench_rows(native, X, [1, 1024, 100_000], DB, None)
    header = ("batch", "native (XGBoost)", "untuned", "tuned", "tuned vs native", "tuned vs untuned")
    print("\n" + format_table(Table("4. latency (batch 1) and throughput, same thread count", header, tuple(rows))))
    print("\n" + METHODOLOGY.format(warmup=3, n_batches=4, min_repeats=10, min_seconds=0.3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuner.demo")
    parser.add_argument("--compare", nargs=2, metavar=("MODEL", "X"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compare:
        compare(Path(args.compare[0]), Path(args.compare[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="tunebird-demo-") as tmp:
        path = train_and_tune(Path(tmp))
        return subprocess.call([sys.executable, "-m", "tuner.demo", "--compare", str(path), str(Path(tmp) / "X.npy")])


if __name__ == "__main__":
    raise SystemExit(main())

"""Batch scoring on a cluster engine: tunebird vs the native library inside Dask and inside Spark, rows/s.

    python -m bench.scale_out [--model higgs] [--rows 10000000] [--repeats 1] [--budget 60]

1. Tunes the model (a shared Treebeard XGBoost model) for 65,536-row batches on one thread into its own
   database when that has no plan yet (``bench/results/scale_out/``), and saves the tuned predictor as an
   artifact.  One thread per plan: each engine runs two 1-thread workers on the 2 cores.
2. Writes ``--rows`` rows (resampled from the model's test rows) as Parquet, 250,000 rows a file.
3. Dask: a ``LocalCluster`` of 2 worker processes x 1 thread holds the rows in memory; times
   ``tuner.dask.predict(...)`` (a Booster's ``predict``: P(class 1)) against ``Booster.inplace_predict`` in
   ``map_partitions`` (booster loaded once per worker, ``nthread=1``), each summed on the workers.
4. Spark ``local[2]``: the rows cached in memory; times ``tuner.spark.predict_udf`` against a pandas UDF
   calling ``inplace_predict``, each summed.  Arrow batches of 65,536 rows for both.
   Runs alternate (native, tunebird, native, ...); the median of ``--repeats`` runs is reported, and the
   ratio in the same run.  Both engines' set-up (cluster start, data loading, the first call that loads
   the model on the workers) is excluded: one untimed warm-up run each over a few partitions.

Writes ``bench/results/scale_out.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TREEBEARD = REPO.parent / "shared" / "data" / "treebeard"
OUT = REPO / "bench" / "results"
FILE_ROWS = 250_000
BATCH = 65_536


# --------------------------------------------------------------------------- set-up


def ensure_tuned(model: Path, db: Path, budget: float) -> None:
    """A one-thread tvm-tir plan for large batches of ``model`` in ``db`` (tuned now when there is none)."""
    import tuner

    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        tuner.load(str(model), db=str(db), strict=True)
        return
    except tuner.NotTunedError:
        pass
    tuner.tune(str(model), db=str(db), batch_sizes=(BATCH,), time_budget=budget, threads=1,
               backends=("tvm-tir",), progress=False)


def write_rows(pool: np.ndarray, rows: int, directory: Path) -> list[str]:
    """``rows`` rows drawn from ``pool`` as Parquet files of ``FILE_ROWS`` rows; the column names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"f{j}" for j in range(pool.shape[1])]
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, start in enumerate(range(0, rows, FILE_ROWS)):
        X = pool[rng.integers(0, len(pool), min(FILE_ROWS, rows - start))]
        pq.write_table(pa.table({n: X[:, j] for j, n in enumerate(names)}), directory / f"part-{i:04d}.parquet")
    return names


def timed(runs: dict[str, Callable[[bool], float]], repeats: int) -> dict[str, dict[str, Any]]:
    """Per name: the median seconds of ``repeats`` alternating runs over all rows, after an untimed warm-up
    run over a few partitions (``run(True)``) that loads the model on every worker."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    sums: dict[str, float] = {}
    for run in runs.values():
        run(True)
    for _ in range(repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            sums[name] = run(False)
            times[name].append(time.perf_counter() - t)
    return {name: {"median_s": statistics.median(ts), "runs_s": ts, "sum_of_p1": sums[name]}
            for name, ts in times.items()}


# --------------------------------------------------------------------------- native scorers on the workers


@functools.cache
def _booster(path: str) -> Any:
    import xgboost as xgb

    booster = xgb.Booster(model_file=path)
    booster.set_param({"nthread": 1})
    return booster


def _native_partition(part: Any, path: str) -> Any:
    import pandas as pd

    return pd.Series(_booster(path).inplace_predict(part.to_numpy()), index=part.index, name="p1")


# --------------------------------------------------------------------------- engines


def run_dask(model: Path, artifact: Path, data: Path, names: list[str], repeats: int) -> dict[str, Any]:
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster, wait

    import tuner
    import tuner.dask

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as cluster, Client(cluster) as client:
        ddf = dd.read_parquet(str(data), columns=names)
        model_names = tuner.load_artifact(artifact).model.input.feature_names
        if model_names is not None:  # the frame's columns under the names the model was fitted with
            ddf = ddf.rename(columns=dict(zip(names, model_names)))
        ddf = ddf.persist()
        wait(ddf)
        n = int(ddf.map_partitions(len).sum().compute())

        def native(warm: bool) -> float:
            rows = ddf.partitions[:4] if warm else ddf
            return float(rows.map_partitions(_native_partition, str(model), meta=("p1", "f4")).sum().compute())

        def tunebird(warm: bool) -> float:
            rows = ddf.partitions[:4] if warm else ddf
            return float(tuner.dask.predict(rows, artifact=artifact, method="predict")["predict"].sum().compute())

        out = timed({"native": native, "tunebird": tunebird}, repeats)
        client.cancel(ddf)
    return {"rows": n, **out}


def run_spark(model: Path, artifact: Path, data: Path, names: list[str], repeats: int) -> dict[str, Any]:
    # this process's environment, inherited by Spark's Python workers: this venv, and bench importable
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    import pandas as pd
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf
    from pyspark.util import PythonEvalType

    import tuner.spark

    spark = (SparkSession.builder.master("local[2]").appName("tunebird-bench")
             .config("spark.ui.enabled", "false").config("spark.driver.memory", "6g")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH)).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        df = spark.read.parquet(str(data)).select(*names).cache()
        n = df.count()
        path = str(model)

        def native_scores(*cols: pd.Series) -> pd.Series:
            return pd.Series(_booster(path).inplace_predict(np.column_stack([c.to_numpy() for c in cols])))

        native_udf = pandas_udf(native_scores, returnType="float", functionType=PythonEvalType.SQL_SCALAR_PANDAS_UDF)

        score = tuner.spark.predict_udf(artifact=artifact, method="predict", spark=spark)

        def native(warm: bool) -> float:
            rows = df.limit(4 * BATCH) if warm else df
            return float(rows.select(F.sum(native_udf(*names))).collect()[0][0])

        def tunebird(warm: bool) -> float:
            rows = df.limit(4 * BATCH) if warm else df
            return float(rows.select(F.sum(score(*names))).collect()[0][0])

        out = timed({"native": native, "tunebird": tunebird}, repeats)
        df.unpersist()
    finally:
        spark.stop()
    return {"rows": n, **out}


# --------------------------------------------------------------------------- report


def report(results: dict[str, Any]) -> str:
    lines = [
        f"# Batch scoring on a cluster engine: {results['model']}, {results['rows']:,} rows",
        "",
        f"{results['machine']}; {results['date']}; HEAD {results['head']}.  tunebird plan: {results['plan']}.",
        "Two 1-thread workers on 2 cores per engine (Dask LocalCluster of 2 processes; Spark local[2]);",
        "the rows in the engine's memory; each run sums P(class 1) on the workers.  Median of "
        f"{results['repeats']} alternating runs after a warm-up run each (a few partitions); ratio = tunebird rows/s / native rows/s.",
        "",
        "| engine | native (XGBoost inplace_predict) rows/s | tunebird rows/s | tunebird / native |",
        "|---|---:|---:|---:|",
    ]
    for engine in ("dask", "spark"):
        r = results.get(engine)
        if not r or "error" in r:
            lines.append(f"| {engine} | - | - | {r.get('error', 'not run') if r else 'not run'} |")
            continue
        nat = r["rows"] / r["native"]["median_s"]
        tb = r["rows"] / r["tunebird"]["median_s"]
        lines.append(f"| {engine} | {nat / 1e6:.2f} M | {tb / 1e6:.2f} M | {tb / nat:.2f}x |")
    lines += ["", f"Sums of P(class 1) (native vs tunebird, a check the runs scored the same rows): "
              + "; ".join(f"{e}: {results[e]['native']['sum_of_p1']:.1f} vs {results[e]['tunebird']['sum_of_p1']:.1f}"
                          for e in ("dask", "spark") if e in results and "error" not in results[e]),
              f"Largest |P(class 1)| difference on the model's test rows, one process: {results['max_abs_diff']:.2e}.",
              ""]
    return "\n".join(lines)


def _head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="higgs")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--budget", type=float, default=60.0, help="tuning budget when the database has no plan yet")
    ap.add_argument("--engines", default="dask,spark")
    args = ap.parse_args(argv)
    model = TREEBEARD / f"{args.model}_xgb_model_save.json"
    csv = Path(f"{model}.test.sampled.csv")
    if not model.is_file():
        print(f"bench.scale_out: {model} is missing (the shared Treebeard models)", file=sys.stderr)
        return 1
    db = OUT / "scale_out" / f"{args.model}.db"
    ensure_tuned(model, db, args.budget)
    import tuner

    predictor = tuner.load(str(model), db=str(db), strict=True)
    artifact = db.parent / f"{args.model}.tb"
    predictor.save(str(artifact))
    pool = np.loadtxt(csv, delimiter=",", ndmin=2)[:, :-1].astype(np.float32)
    native = _booster(str(model)).inplace_predict(pool)
    diff = float(np.abs(predictor.predict(pool).astype(np.float64) - native).max())
    results: dict[str, Any] = {
        "model": args.model, "rows": args.rows, "repeats": args.repeats, "plan": repr(predictor),
        "max_abs_diff": diff, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "head": _head(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    tmp = Path(tempfile.mkdtemp(prefix="tunebird-scale-out-"))
    try:
        names = write_rows(pool, args.rows, tmp / "rows")
        for engine in args.engines.split(","):
            run = {"dask": run_dask, "spark": run_spark}[engine]
            try:
                results[engine] = run(model, artifact, tmp / "rows", names, args.repeats)
            except Exception as e:  # one engine failing (no Java, say) still reports the other
                results[engine] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (OUT / "scale_out.json").write_text(json.dumps(results, indent=1, default=str))
    (OUT / "scale_out.md").write_text(report(results))
    print(report(results))
    return 0


if __name__ == "__main__":  # run as bench.scale_out, so the workers import its functions by name
    from bench.scale_out import main as _main

    sys.exit(_main())

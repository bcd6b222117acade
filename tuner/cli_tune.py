"""``tunebird tune`` and ``tunebird bench``: the tuner's command-line faces."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

DB_HELP = "tuning log: a SQLite path or SQLAlchemy URL (default: $TUNEBIRD_DB or ./tunebird.db)"


def read_data(path: str, spec: Any) -> Any:
    """Rows from .npy, .csv or .parquet for a model whose input is ``spec`` (an ``InputSpec``).

    CSV and parquet files keep their column types: string columns reach the model
    as strings (a DataFrame), so pipelines with string categoricals read them as
    they were trained.  Columns the model does not use are dropped with a note:
    by name when the model knows its feature names, else one extra last column
    (a label).
    """
    import pandas as pd

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return np.load(p, allow_pickle=False)
    if suffix == ".csv":
        df = pd.read_csv(p, header=None)
        if spec.feature_names is not None or df.iloc[0].map(lambda v: isinstance(v, str)).all():  # a header row
            df = pd.read_csv(p)
    elif suffix in (".parquet", ".pq"):
        df = pd.read_parquet(p)
    else:
        raise ValueError(f"--data: expected a .npy, .csv or .parquet file, got {p.name!r}")
    names = spec.feature_names
    if names is not None and set(names) <= set(map(str, df.columns)):
        extra = [str(c) for c in df.columns if str(c) not in set(names)]
        if extra:
            print(f"note: {p.name}: columns {extra[:8]} are not model features; leaving them out", file=sys.stderr)
        df = df[[c for c in df.columns if str(c) in set(names)]]
    elif df.shape[1] == spec.n_features + 1:
        print(f"note: {p.name} has {df.shape[1]} columns and the model {spec.n_features} features; "
              f"using the first {spec.n_features} (the last is taken as a label)", file=sys.stderr)
        df = df.iloc[:, : spec.n_features]
    if all(dt.kind in "biuf" for dt in df.dtypes) and not spec.has_strings:
        return df.to_numpy(dtype=np.float64)
    return df


def _tune(args: argparse.Namespace) -> int:
    import strategies
    import tuner
    from records.report import Table, describe_config, format_table

    conv = strategies.convert(args.model)
    X = read_data(args.data, conv.input) if args.data else None
    client = _dask_client(args.scheduler) if args.scheduler else None
    try:
        report = tuner.tune(
            args.model, X, db=args.db, batch_sizes=tuple(args.batch_size), trials=args.trials,
            time_budget=args.time_budget, threads=args.threads, progress=not args.quiet,
            backends=tuple(args.backends.split(",")) if args.backends else None, client=client,
        )
    finally:
        if client is not None:
            client.close()
    print(f"\nTuned {report.model} on {report.device}")
    print(f"{report.trials_measured} trials measured in {report.seconds:.0f} s; {report.artifacts} artifacts stored in {report.db}")
    print(report.time_line() + "\n")
    rows = tuple(tuple(r) for r in report.rows())
    print(format_table(Table("Per batch size", ("batch", "untuned", "tuned", "speedup", "rows/s", "tuned plan"), rows)))
    detail = tuple(
        (str(b), " + ".join(describe_config(c) for c in cfgs)) for b, cfgs in sorted(report.chosen.items())
    )
    print("\n" + format_table(Table("Chosen configs", ("batch", "config"), detail)))
    return 0


def _dask_client(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise SystemExit("tunebird tune --scheduler needs the dask extra: pip install 'tunebird[dask]'") from None
    try:
        return Client(address, timeout=10)
    except (OSError, TimeoutError) as e:
        raise SystemExit(f"tunebird tune: cannot reach the Dask scheduler at {address}: {e}") from None


def _add_tune(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("tune", help="tune a model for this machine and store the winners in the tuning log",
                              description="Tune MODEL (XGBoost .json/.ubj, LightGBM .txt, scikit-learn .joblib/.pkl).")
    p.add_argument("model", metavar="MODEL", help="model file")
    p.add_argument("--data", help="sample inputs: .npy, .csv or .parquet (default: synthetic rows from the model's thresholds)")
    p.add_argument("--db", default=None, help=DB_HELP)
    p.add_argument("--trials", type=int, default=None, help="measure at most N candidates")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop measuring after this long (default 300 when --trials is not given)")
    p.add_argument("--batch-size", type=int, nargs="+", default=[1, 1024, 65536], metavar="N",
                   help="batch sizes to tune for (default: 1 1024 65536; the 65,536-row plan serves large batches)")
    p.add_argument("--threads", type=int, default=None, help="tune for exactly this many threads")
    p.add_argument("--backends", default=None, help="comma-separated backends to consider (default: all available)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="measure on the workers of this Dask scheduler (tcp://host:8786) that run on this "
                        "machine's device; this process records the results (needs the dask extra)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_tune)


def bench_rows(model: Any, X: Any, batch_sizes: list[int], db: Any, threads: int | None) -> list[tuple[str, ...]]:
    """native vs untuned vs tuned at each batch size: one row per batch, correctness checked first."""
    import warnings

    import strategies
    import tuner
    from strategies.backends._tvm_runtime import usable_cores

    from .measure import check_outputs
    from .native import native_function, primary_method
    from .timing import rotating_batches, time_calls

    threads = threads or usable_cores()
    native = strategies.load_model(model) if isinstance(model, (str, Path)) else model
    conv = strategies.convert(native)
    method = primary_method(conv.methods)
    untuned = tuner.compile(conv, threads=threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tuned = tuner.load(conv, db=db)
    systems = {"native": native_function(native, method, threads),
               "untuned": getattr(untuned, method), "tuned": getattr(tuned, method) if tuned.tuned else None}
    rows = []
    for b in batch_sizes:
        batches = rotating_batches(X, b)
        want = _numeric(systems["native"](batches[0]), b)
        cells = []
        results = {}
        for name, fn in systems.items():
            if fn is None:
                cells.append("not tuned")
                continue
            got = _numeric(fn(batches[0]), b)
            problem = check_outputs(got, want) if want.dtype.kind == "f" else (
                None if np.array_equal(got, want) else "labels differ")
            t = time_calls(fn, batches, min_seconds=0.3)
            results[name] = t.median_s
            cell = f"{t.median_s * 1e6:.1f} us" if b == 1 else f"{b / t.median_s:,.0f} rows/s"
            cells.append(cell + (" (MISMATCH)" if problem else ""))
        ratio = lambda a, c: f"{results[c] / results[a]:.2f}x" if a in results and c in results else "-"  # noqa: E731
        rows.append((str(b), *cells, ratio("tuned", "native"), ratio("tuned", "untuned")))
    return rows


def _numeric(y: Any, b: int) -> np.ndarray:
    """Outputs as a 2-D array (float, or the labels as they are when they are strings)."""
    y = np.asarray(y)
    return (y if y.dtype.kind in "OUS" else y.astype(np.float64)).reshape(b, -1)


def _bench(args: argparse.Namespace) -> int:
    import strategies
    from records.report import Table

    from records.report import format_table
    from .timing import METHODOLOGY

    native = strategies.load_model(args.model)
    conv = strategies.convert(native)
    if args.data:
        X = read_data(args.data, conv.input)
    else:
        from strategies.sampling import sample_inputs

        if conv.input.has_strings:
            raise SystemExit("tunebird bench: this model reads string columns; give rows with --data FILE.csv|.parquet")
        X = sample_inputs(conv, 8192, seed=1, nan=conv.input.allow_nan, inf=conv.input.allow_inf)
    rows = bench_rows(native, X, args.batch_size, args.db, args.threads)
    header = ("batch", "native", "untuned", "tuned", "tuned vs native", "tuned vs untuned")
    print(format_table(Table(f"{conv.source}: latency (batch 1) and throughput", header, tuple(rows))))
    print("\n" + METHODOLOGY.format(warmup=3, n_batches=4, min_repeats=10, min_seconds=0.3))
    return 0


def _add_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="native vs untuned vs tuned, per batch size",
                              description="Time MODEL's native predict, tunebird untuned and tunebird tuned.")
    p.add_argument("model", metavar="MODEL", help="model file")
    p.add_argument("--db", default=None, help=DB_HELP)
    p.add_argument("--data", help="inputs: .npy, .csv or .parquet (default: synthetic rows)")
    p.add_argument("--batch-size", type=int, nargs="+", default=[1, 1024, 100_000], metavar="N")
    p.add_argument("--threads", type=int, default=None, help="threads for every system (default: all cores)")
    p.set_defaults(handler=_bench)

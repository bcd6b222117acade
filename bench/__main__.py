"""``python -m bench``: tuned vs untuned tunebird vs every peer, per model and batch size.

    python -m bench --tune --time-budget 200      # once per machine: tune every suite model (resumable)
    python -m bench                               # the suite: results/bench.md, bench.json, *.png
    python -m bench --models higgs rf --batch-sizes 1 1024 --skip-peers hummingbird
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from . import models
from .peers import PEER_NAMES
from .tune import ALL_BATCH_SIZES, tune_models

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(models.SPECS), metavar="NAME",
                   help=f"suite models (default: all): {', '.join(models.SPECS)}")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=list(ALL_BATCH_SIZES), metavar="N",
                   help="batch sizes (default: 1 64 1024 10000 100000; capped at 10000 for svc_rbf and knn)")
    p.add_argument("--db", default=None, help="tuning database (default: OUT/bench.db)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="where tables, JSON and plots go (default: bench/results)")
    p.add_argument("--models-cache", default=None, help="trained synthetic models (default: OUT/models)")
    p.add_argument("--threads", type=int, default=None, help="threads for every system (default: all cores)")
    p.add_argument("--skip-peers", nargs="+", default=[], metavar="PEER", choices=PEER_NAMES,
                   help=f"peers not to run (reported as skipped): {', '.join(PEER_NAMES)}")
    p.add_argument("--tune", action="store_true", help="tune the models into --db (resumable) instead of benchmarking")
    p.add_argument("--prebuild", action="store_true",
                   help="only compile and cache the peers' libraries (--tune does this too)")
    p.add_argument("--time-budget", type=float, default=200.0, metavar="S", help="with --tune: seconds per model")
    p.add_argument("--trials", type=int, default=None, help="with --tune: at most N new trials per model")
    p.add_argument("--min-seconds", type=float, default=None, metavar="S",
                   help="time each cell for at least S seconds (default: 0.5; smoke tests use less)")
    p.add_argument("--max-call-seconds", type=float, default=4.0, metavar="S",
                   help="skip a batch size whose one call is estimated to take longer than this (default 4)")
    p.add_argument("--no-hummingbird-setup", action="store_true",
                   help="do not create Hummingbird's virtual environment (it is reported missing when absent)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress of the libraries")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="bench: %(levelname)s: %(message)s")
    out = Path(args.out)
    db = args.db or str(out / "bench.db")
    cache = Path(args.models_cache) if args.models_cache else out / "models"
    unknown = [m for m in args.models if m not in models.SPECS]
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(models.SPECS)}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if args.tune or args.prebuild:
        from .runner import usable_cores
        from .tune import prebuild_peers

        if args.tune:
            tune_models(args.models, db=db, cache_dir=cache, batch_sizes=args.batch_sizes,
                        time_budget=None if args.trials else args.time_budget, trials=args.trials,
                        threads=args.threads)
        prebuild_peers(args.models, cache_dir=cache, threads=args.threads or usable_cores(),
                       skip=(*args.skip_peers, *(["hummingbird"] if args.no_hummingbird_setup else [])))
        print(f"{'tuned' if args.tune else 'prepared'} {len(args.models)} models in {time.monotonic() - t0:.0f} s"
              + (f" (db {db})" if args.tune else ""))
        return 0
    from .report import write_all
    from .runner import RunSettings, run_suite

    settings = RunSettings(threads=args.threads, batch_sizes=tuple(args.batch_sizes), db=db,
                           cache_dir=cache, skip=tuple(args.skip_peers), max_call_s=args.max_call_seconds,
                           hummingbird_setup=not args.no_hummingbird_setup, min_seconds=args.min_seconds)
    result = run_suite(args.models, settings, say=print)
    paths = write_all(result, out)
    print(f"\nsuite finished in {time.monotonic() - t0:.0f} s; wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

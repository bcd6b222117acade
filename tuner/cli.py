"""The ``tunebird`` command line.

Each subcommand is one ``_add_<name>(subparsers)`` function that registers its
parser and sets ``handler``; add yours to :data:`SUBCOMMANDS`.  Handlers
return the exit status.  The CLI prints; the libraries it calls only log.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import warnings
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Iterator

from strategies.ground.errors import TunebirdError

if TYPE_CHECKING:
    from records import Database

DB_HELP = "tuning log: a SQLite path or SQLAlchemy URL (default: $TUNEBIRD_DB or ./tunebird.db)"


def _open(db: str | None, **options: Any) -> Database:
    import records

    return records.open_database(db, **options)


# ---------------------------------------------------------------- tunebird records


def _records_list(args: argparse.Namespace) -> int:
    from records.report import format_table, summary_tables

    with _open(args.db, create=False) as db:
        print(f"Tuning log: {db.url}\n")
        print("\n\n".join(format_table(t) for t in summary_tables(db)))
    return 0


def _records_export(args: argparse.Namespace) -> int:
    with _open(args.db, create=False) as db:
        counts = db.export_jsonl(args.file)
        print(
            f"exported {counts['device']} devices, {counts['workload']} workloads, {counts['trial']} trials, "
            f"{counts['artifact']} artifacts and {counts['cost_model']} cost models from {db.url} to {args.file}"
        )
        if counts["artifacts_skipped"]:
            print(f"left out {counts['artifacts_skipped']} artifacts whose payload is missing or modified")
    return 0


def _records_import(args: argparse.Namespace) -> int:
    with _open(args.db) as db:
        added = db.import_jsonl(args.file)
        print(
            f"imported {args.file} into {db.url}: {added['device']} new devices, {added['workload']} new "
            f"workloads, {added['trial']} new trials, {added['artifact']} new artifacts, "
            f"{added['cost_model']} new cost models"
        )
    return 0


def _records_upgrade(args: argparse.Namespace) -> int:
    from records import migrate

    with _open(args.db, create=False, upgrade=True) as db:
        print(f"{db.url} is at records schema version {migrate.SCHEMA_VERSION}")
    return 0


def _add_records(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "records", help="show, export, import or upgrade the tuning log",
        description="Without an action: list devices, workloads and the best config per batch size.",
    )
    p.add_argument("--db", default=None, help=DB_HELP)
    p.set_defaults(handler=_records_list)
    actions = p.add_subparsers(dest="records_action", metavar="ACTION")
    for name, handler, help_text, takes_file in (
        ("export", _records_export, "write every record (artifacts included) to a JSON Lines file", True),
        ("import", _records_import, "merge a JSON Lines export into the tuning log (no duplicates)", True),
        ("upgrade", _records_upgrade, "upgrade the tuning log's schema to this tunebird's version", False),
    ):
        a = actions.add_parser(name, help=help_text, description=help_text)
        if takes_file:
            a.add_argument("file", metavar="FILE", help="the JSON Lines file")
        a.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
        a.set_defaults(handler=handler)


# ---------------------------------------------------------------- tunebird costmodel


def _costmodel_device(db: Database, given: str | None) -> str | None:
    """The fingerprint a ``--device`` prefix names (None: every device)."""
    if given is None:
        return None
    found = [d.fingerprint for d in db.devices() if d.fingerprint.startswith(given)]
    if len(found) != 1:
        known = ", ".join(d.fingerprint[:12] for d in db.devices()) or "none"
        raise ValueError(f"--device {given!r} matches {len(found)} devices in {db.url}; registered: {known}")
    return found[0]


def _costmodel_eval(args: argparse.Namespace) -> int:
    from cost_model import HeuristicCostModel, XGBCostModel, load_dataset
    from cost_model.evaluate import evaluate, format_results

    with _open(args.db, create=False) as db:
        data = load_dataset(db, _costmodel_device(db, args.device))
        url = db.url
    workloads = len(set(data.workloads.tolist()))
    if workloads < 2:
        print(f"{url}: {len(data)} ok trials in {workloads} workload(s) with stored operators; "
              "leave-one-workload-out needs at least 2 (run bench/seed_costmodel.py or tunebird tune first)")
        return 1
    objectives = COSTMODEL_OBJECTIVES if args.objective == "all" else (args.objective,)
    models: dict[str, Any] = {
        f"xgboost-{o}": (lambda o=o: XGBCostModel(objective=o, n_jobs=args.jobs)) for o in objectives
    }
    models["baseline"] = HeuristicCostModel
    results = evaluate(data, models, k=args.k, min_group=args.min_group)
    print(f"Leave-one-workload-out on {url}: {len(data)} ok trials, {workloads} workloads, "
          f"{len(set(data.groups.tolist()))} (workload, batch, device) groups; scored groups have >= {args.min_group} trials")
    if data.skipped_workloads:
        print(f"({len(data.skipped_workloads)} workloads left out: their operators are not stored)")
    print("baseline: the untuned default first, the rest by an analytic estimate\n")
    print(format_results(results))
    return 0


def _costmodel_train(args: argparse.Namespace) -> int:
    from cost_model import XGBCostModel, train_for_device

    with _open(args.db, create=False) as db:
        fp = _costmodel_device(db, args.device)
        for device in [d.fingerprint for d in db.devices()] if fp is None else [fp]:
            model = train_for_device(db, device, XGBCostModel(objective=args.objective, n_jobs=args.jobs))
            if model is None:
                print(f"device {device[:12]}: no trials with stored operators; nothing to train")
            else:
                print(f"device {device[:12]}: trained on {model.n_trials} trials and saved to {db.url}")
    return 0


COSTMODEL_OBJECTIVES = ("regression", "pairwise", "ndcg")  # cost_model.model.OBJECTIVES, without importing it


def _add_costmodel(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("costmodel", help="evaluate or retrain the learned cost model",
                              description="Evaluate or retrain the learned cost model from the tuning log.")
    actions = p.add_subparsers(dest="costmodel_action", metavar="ACTION", required=True)
    e = actions.add_parser(
        "eval", help="leave-one-workload-out Spearman and top-k recall, against the untuned baseline",
        description="Fit the model without each workload in turn; score how it ranks that workload's trials.",
    )
    e.add_argument("--objective", choices=(*COSTMODEL_OBJECTIVES, "all"), default="regression",
                   help="XGBoost objective(s)")
    e.add_argument("--k", type=int, default=5, help="top-k recall: is the measured best among the k best predicted")
    e.add_argument("--min-group", type=int, default=10, help="score only groups with at least this many trials")
    t = actions.add_parser("train", help="fit the cost model on the tuning log and save it per device")
    t.add_argument("--objective", choices=COSTMODEL_OBJECTIVES, default="regression", help="XGBoost objective")
    for a, handler in ((e, _costmodel_eval), (t, _costmodel_train)):
        a.add_argument("--db", default=None, help=DB_HELP)
        a.add_argument("--device", default=None, help="only this device (a fingerprint prefix); default: all")
        a.add_argument("--jobs", type=int, default=1, help="XGBoost threads")
        a.set_defaults(handler=handler)


def _tune_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    from .cli_tune import _add_bench, _add_tune

    return [_add_tune, _add_bench]


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    from .cli_export import add_export

    add_export(subparsers)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_records, *_tune_commands(), _add_costmodel, _add_export]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand in :data:`SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(prog="tunebird", description="Compile and auto-tune classical ML models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress, and show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


@contextlib.contextmanager
def _terminal(verbose: bool) -> Iterator[None]:
    """What reaches the terminal: tunebird's own warnings and log lines; third-party warnings and the
    compilers' log lines (logged at DEBUG by ``strategies.ground.quiet`` and the measurement worker) only
    with ``-v``.  Restored on return (``main`` may be called in-process, as the tests do)."""
    noisy = [logging.getLogger(n) for n in ("tunebird.thirdparty", "tuner.measure.worker")]
    levels = [lg.level for lg in noisy]
    with warnings.catch_warnings():
        if verbose:
            for lg in noisy:
                lg.setLevel(logging.DEBUG)
        else:
            warnings.filterwarnings("ignore")
            warnings.filterwarnings("default", module=r"(tuner|strategies|records|cost_model|bench)(\.|$)")
        try:
            yield
        finally:
            for lg, level in zip(noisy, levels):
                lg.setLevel(level)


def _user_error(exc: Exception) -> bool:
    return isinstance(exc, (TunebirdError, OSError, ValueError)) or type(exc).__module__.startswith("sqlalchemy")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tunebird`` with ``argv`` (default: the command line); return the exit status."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING, format="tunebird: %(levelname)s: %(message)s"
        )
    with _terminal(args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args))
    except Exception as exc:
        if args.verbose or not _user_error(exc):
            raise
        print(f"tunebird: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

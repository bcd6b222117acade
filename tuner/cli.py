"""The ``tunebird`` command line.

Each subcommand is one ``_add_<name>(subparsers)`` function that registers its
parser and sets ``handler``; add yours to :data:`SUBCOMMANDS`.  Handlers
return the exit status.  The CLI prints; the libraries it calls only log.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from strategies.errors import TunebirdError

if TYPE_CHECKING:
    from records import Database
    from records.report import Table

DB_HELP = "tuning log: a SQLite path or SQLAlchemy URL (default: $TUNEBIRD_DB or ./tunebird.db)"


def format_table(table: Table) -> str:
    """``table`` as aligned text under its title (``(none)`` when it has no rows)."""
    lines = [f"{table.title}:"]
    if not table.rows:
        return "\n".join([*lines, "  (none)"])
    widths = [max(len(r[i]) for r in (table.header, *table.rows)) for i in range(len(table.header))]
    for i, row in enumerate((table.header, *table.rows)):
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _open(db: str | None, **options: Any) -> Database:
    import records

    return records.open_database(db, **options)


# ---------------------------------------------------------------- tunebird records


def _records_list(args: argparse.Namespace) -> int:
    from records.report import summary_tables

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


def _tune_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    from .cli_tune import _add_bench, _add_tune

    return [_add_tune, _add_bench]


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_records, *_tune_commands()]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand in :data:`SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(prog="tunebird", description="Compile and auto-tune classical ML models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress, and show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def _user_error(exc: Exception) -> bool:
    return isinstance(exc, (TunebirdError, OSError, ValueError)) or type(exc).__module__.startswith("sqlalchemy")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tunebird`` with ``argv`` (default: the command line); return the exit status."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING, format="tunebird: %(levelname)s: %(message)s"
        )
    try:
        return int(args.handler(args))
    except Exception as exc:
        if args.verbose or not _user_error(exc):
            raise
        print(f"tunebird: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

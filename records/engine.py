"""Engines: which database a path or URL names, and SQLite set up for concurrent writers.

SQLite files run in WAL mode with a busy timeout, and every write transaction
(an engine with the execution option ``tunebird_write=True``) starts with
``BEGIN IMMEDIATE``, so two writers queue for the lock instead of failing
half-way through.  ``synchronous=NORMAL`` keeps every commit across a killed
process; a power cut may roll back the last commits but never corrupts the file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from .schema import DEFAULT_PATH, ENV_VAR  # noqa: F401  - re-exported

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 60.0
_TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock (PostgreSQL)


def resolve_url(db: str | os.PathLike[str] | None = None) -> str:
    """The SQLAlchemy URL for ``db``: a URL as it is, a path as SQLite, None as ``$TUNEBIRD_DB`` or ``./tunebird.db``."""
    if db is None:
        db = os.environ.get(ENV_VAR) or DEFAULT_PATH
    text = os.fspath(db)
    if "://" in text:
        return text
    if not text:
        raise ValueError("expected a database path or SQLAlchemy URL, got an empty string")
    return URL.create("sqlite", database=str(Path(text).expanduser().absolute())).render_as_string()


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL, or None (in-memory, URI filenames, other databases)."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook emit BEGIN: the sqlite3 module's own would skip reads and DDL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            logger.debug("SQLite journal mode is %s (WAL unavailable here)", mode)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Any) -> None:
    write = connection.get_execution_options().get("tunebird_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: URL, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE for writes."""
    if url.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}}
    if sqlite_file(url) is None:
        kwargs["poolclass"] = StaticPool  # one in-memory database shared by every thread
    engine = create_engine(url, echo=echo, **kwargs)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def is_transient(exc: DBAPIError) -> bool:
    """Whether running the transaction again may succeed (locked, deadlock, serialization failure)."""
    if getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message

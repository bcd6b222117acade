"""A read-only view of a SQLite tuning log for deploy-time loads: artifacts only, on stdlib ``sqlite3``.

``tuner.load`` needs two or three artifact lookups; the full :class:`~records.sql.SQLDatabase`
costs half a second of SQLAlchemy imports first.  :func:`open_reader` gives this
reader for a SQLite file whose schema is the current one, and the full database
otherwise (another engine, an older schema, a URL it does not parse).  Payloads
are checked against their SHA-256 exactly as the full database checks them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .database import ArtifactRecord
from .schema import DEFAULT_PATH, ENV_VAR, IN_DATABASE, SCHEMA_VERSION
from .store import FileStore, verify_payload


def sqlite_path(db: str | os.PathLike[str] | None) -> Path | None:
    """The file of a plain SQLite path or ``sqlite:///`` URL (None for anything else)."""
    if db is None:
        db = os.environ.get(ENV_VAR) or DEFAULT_PATH
    text = os.fspath(db)
    if "://" not in text:
        return Path(text).expanduser().absolute() if text else None
    prefix = "sqlite:///"
    if not text.startswith(prefix) or "?" in text:
        return None
    rest = unquote(text[len(prefix):])
    if not rest or rest == ":memory:" or rest.startswith("file:"):
        return None
    return Path(rest)  # "sqlite:////abs" leaves "/abs", "sqlite:///rel" leaves "rel"


class SQLiteArtifactReader:
    """Artifact lookups on a SQLite tuning log, read-only."""

    def __init__(self, path: Path, artifact_dir: Path | None = None) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._files = FileStore(artifact_dir or Path(f"{path}.artifacts"))
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def schema_version(self) -> int | None:
        try:
            row = self._conn.execute("SELECT schema_version FROM tunebird_schema_version").fetchone()
        except sqlite3.DatabaseError:
            return None
        return None if row is None else int(row[0])

    def get_artifact(self, workload_hash: str, device_fingerprint: str, batch_size: int, config_hash: str,
                     format: str | None = None) -> ArtifactRecord | None:
        """The artifact of this config (of this format, if given), or None."""
        q = ("SELECT id, workload_hash, device_fingerprint, batch_size, config, format, size, sha256, location, "
             "created_at FROM tunebird_artifacts WHERE workload_hash = ? AND device_fingerprint = ? "
             "AND batch_size = ? AND config_hash = ?")
        args: list[Any] = [workload_hash, device_fingerprint, int(batch_size), config_hash]
        if format is not None:
            q += " AND format = ?"
            args.append(format)
        row = self._conn.execute(q + " ORDER BY id LIMIT 1", args).fetchone()
        if row is None:
            return None
        aid, wh, fp, b, config, fmt, size, sha, location, created = row
        extra = {"created_at": _datetime(created)} if _datetime(created) is not None else {}
        return ArtifactRecord(workload_hash=wh, device_fingerprint=fp, batch_size=b, config=json.loads(config),
                              format=fmt, size=size, sha256=sha, location=location, artifact_id=aid, **extra)

    def fetch_artifact(self, artifact: ArtifactRecord) -> bytes:
        """The artifact's payload, checked against its SHA-256."""
        what = f"artifact {artifact.artifact_id} ({artifact.format}, batch {artifact.batch_size}) in {self.url}"
        if artifact.location == IN_DATABASE:
            row = self._conn.execute("SELECT data FROM tunebird_payloads WHERE sha256 = ?",
                                     (artifact.sha256,)).fetchone()
            return verify_payload(None if row is None else bytes(row[0]), artifact.sha256, what)
        return self._files.get(artifact.location, artifact.sha256)

    def close(self) -> None:
        self._conn.close()


def _datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def open_reader(db: Any = None) -> Any:
    """A read-only artifact reader for ``db`` when it is a SQLite file of the current schema, else the
    full database (``records.open_database``); either has ``get_artifact``, ``fetch_artifact``, ``close``."""
    path = None if not isinstance(db, (str, os.PathLike)) and db is not None else sqlite_path(db)
    if path is not None and path.is_file():
        try:
            reader = SQLiteArtifactReader(path)
            if reader.schema_version() == SCHEMA_VERSION:
                return reader
            reader.close()
        except sqlite3.DatabaseError:
            pass
    from . import open_database

    return open_database(db)

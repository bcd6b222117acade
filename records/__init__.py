"""The tuning log: devices, workloads, measured trials, compiled artifacts and cost models.

Usage::

    import records
    from strategies.ir import content_hash
    from tuner.device import current_device

    device = current_device()
    with records.open_database("tunebird.db") as db:
        db.register_device(device)
        h = content_hash(graph)
        db.register_workload(records.WorkloadRecord(h, graph.summary(), ("tree_ensemble",)))
        db.add_trial(records.TrialRecord(h, device.fingerprint, 1, config, latency_median_s=1e-4))
        best = db.best_trial(h, device.fingerprint, 1)

Databases and their artifacts must come from a trusted source: an artifact is
code, and only its SHA-256 is checked.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from .database import (
    ArtifactRecord,
    CostModelRecord,
    Database,
    DeviceLike,
    DeviceRecord,
    RecordNotFoundError,
    SchemaVersionError,
    TrialRecord,
    TrialStatus,
    WorkloadRecord,
    config_hash,
)
from .schema import DEFAULT_PATH, ENV_VAR, SCHEMA_VERSION

if TYPE_CHECKING:
    from .engine import resolve_url
    from .reader import open_reader
    from .sql import SQLDatabase

# SQLAlchemy (half a second to import) only when a SQL database is opened: deploy-time reads of a
# SQLite log go through ``records.reader`` without it
_LAZY = {"SQLDatabase": "sql", "resolve_url": "engine", "open_reader": "reader"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'records' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def open_database(db: str | os.PathLike[str] | Database | None = None, **options: Any) -> Database:
    """Open the tuning log at ``db`` (a path or SQLAlchemy URL; None: ``$TUNEBIRD_DB`` or ``./tunebird.db``).

    An open :class:`Database` is returned as it is.  ``options`` go to :class:`SQLDatabase`.
    """
    if isinstance(db, Database):
        if options:
            raise TypeError(f"options {sorted(options)} cannot apply to an already open database {db!r}")
        return db
    from .sql import SQLDatabase

    return SQLDatabase(db, **options)


__all__ = [
    "DEFAULT_PATH",
    "ENV_VAR",
    "SCHEMA_VERSION",
    "ArtifactRecord",
    "CostModelRecord",
    "Database",
    "DeviceLike",
    "DeviceRecord",
    "RecordNotFoundError",
    "SQLDatabase",
    "SchemaVersionError",
    "TrialRecord",
    "TrialStatus",
    "WorkloadRecord",
    "config_hash",
    "open_database",
    "open_reader",
    "resolve_url",
]

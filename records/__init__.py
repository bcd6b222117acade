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

import os
from typing import Any

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
from .engine import DEFAULT_PATH, ENV_VAR, resolve_url
from .migrate import SCHEMA_VERSION
from .sql import SQLDatabase


def open_database(db: str | os.PathLike[str] | Database | None = None, **options: Any) -> Database:
    """Open the tuning log at ``db`` (a path or SQLAlchemy URL; None: ``$TUNEBIRD_DB`` or ``./tunebird.db``).

    An open :class:`Database` is returned as it is.  ``options`` go to :class:`SQLDatabase`.
    """
    if isinstance(db, Database):
        if options:
            raise TypeError(f"options {sorted(options)} cannot apply to an already open database {db!r}")
        return db
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
    "resolve_url",
]

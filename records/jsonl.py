"""Export and import of tuning logs as JSON Lines: moving records between machines and schema versions.

The file is UTF-8, one JSON object per line, each with a ``kind``:

``header``
    ``format: "tunebird-records"``, ``format_version``, the writer's
    ``schema_version`` and ``tunebird_version``, ``exported_at``.
``device``, ``workload``, ``trial``
    the fields of :class:`DeviceRecord`, :class:`WorkloadRecord`,
    :class:`TrialRecord` (without database ids; times in ISO 8601 UTC).
``artifact``, ``cost_model``
    the fields of :class:`ArtifactRecord` / :class:`CostModelRecord` (without
    ids or locations) plus ``payload_base64``: payloads travel inside the file.
``end``
    ``counts`` per kind; a file without it was cut short.

Devices and workloads come before the trials and artifacts that name them.
Importing merges: records already present (same keys) are skipped, so
importing a file twice changes nothing.  Readers skip unknown fields (with a
warning) and refuse a newer ``format_version``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from strategies.ground.errors import ArtifactIntegrityError

from .database import (
    ArtifactRecord,
    CostModelRecord,
    DeviceRecord,
    SchemaVersionError,
    TrialRecord,
    WorkloadRecord,
    tunebird_version,
    utcnow,
)
from .migrate import SCHEMA_VERSION
from .store import atomic_file, sha256_hex

if TYPE_CHECKING:
    from .database import Database

logger = logging.getLogger(__name__)

FORMAT = "tunebird-records"
FORMAT_VERSION = 1
_TRIAL_CHUNK = 1000
_KINDS = ("device", "workload", "trial", "artifact", "cost_model")
_IDS = {TrialRecord: "trial_id", ArtifactRecord: "artifact_id", CostModelRecord: "cost_model_id"}

R = TypeVar("R")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def record_to_json(kind: str, record: Any, payload: bytes | None = None) -> dict[str, Any]:
    """The JSON object of one record line (ids and payload locations are left out)."""
    skip = {_IDS.get(type(record)), "location"}
    obj = {f.name: _plain(getattr(record, f.name)) for f in dataclasses.fields(record) if f.name not in skip}
    if payload is not None:
        obj["payload_base64"] = base64.b64encode(payload).decode("ascii")
    return {"kind": kind, **obj}


def record_from_json(cls: type[R], obj: dict[str, Any], where: str) -> R:
    """The record of class ``cls`` in a line's JSON object (unknown fields are skipped)."""
    names = {f.name for f in dataclasses.fields(cls)} - {_IDS.get(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(obj) - names - {"kind", "payload_base64", "location"})
    if unknown:
        logger.warning("%s: skipping fields this tunebird does not know: %s", where, unknown)
    values = {k: v for k, v in obj.items() if k in names}
    for k, v in values.items():
        if k.endswith("_at") and isinstance(v, str):
            values[k] = datetime.fromisoformat(v)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not a valid {cls.__name__}: {exc}") from exc


def _write_line(f: IO[str], obj: dict[str, Any]) -> None:
    f.write(json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False))
    f.write("\n")


def export_jsonl(db: Database, path: str | os.PathLike[str]) -> dict[str, int]:
    """Write every record of ``db`` to ``path`` (replaced atomically); return counts per kind.

    An artifact whose payload is missing or modified is left out with a
    warning (and counted as ``artifacts_skipped``), so a damaged payload never
    travels.
    """
    target = Path(path)
    counts = dict.fromkeys(_KINDS, 0)
    counts["artifacts_skipped"] = 0
    with atomic_file(target, "w", encoding="utf-8") as f:
        _write_line(f, {
            "kind": "header", "format": FORMAT, "format_version": FORMAT_VERSION,
            "schema_version": SCHEMA_VERSION, "tunebird_version": tunebird_version(),
            "exported_at": utcnow().isoformat(),
        })
        for kind, records in (("device", db.devices()), ("workload", db.workloads()), ("trial", db.trials())):
            for r in records:
                _write_line(f, record_to_json(kind, r))
                counts[kind] += 1
        for a in db.artifacts():
            try:
                payload = db.fetch_artifact(a)
            except ArtifactIntegrityError as exc:
                logger.warning("not exporting artifact %s: %s", a.artifact_id, exc)
                counts["artifacts_skipped"] += 1
                continue
            _write_line(f, record_to_json("artifact", a, payload))
            counts["artifact"] += 1
        for c in db.cost_models():
            _write_line(f, record_to_json("cost_model", c, db.fetch_cost_model(c)))
            counts["cost_model"] += 1
        _write_line(f, {"kind": "end", "counts": {k: counts[k] for k in _KINDS}})
    logger.info("exported %s to %s", counts, target)
    return counts


def _lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: expected one JSON object per line: {exc}") from exc
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: expected a JSON object, got {line[:80]!r}")
            yield where, obj


def _check_header(where: str, obj: dict[str, Any]) -> None:
    if obj.get("kind") != "header" or obj.get("format") != FORMAT:
        raise ValueError(
            f"{where}: not a tunebird records export (expected a header line with format {FORMAT!r}, "
            f"got {json.dumps(obj)[:120]})"
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SchemaVersionError(
            f"{where}: export format version {version!r} (written by tunebird {obj.get('tunebird_version')}) "
            f"is newer than this tunebird {tunebird_version()} reads ({FORMAT_VERSION}); import it with "
            f"tunebird {obj.get('tunebird_version')} or newer"
        )


def _payload(where: str, obj: dict[str, Any]) -> bytes:
    try:
        data = base64.b64decode(obj["payload_base64"], validate=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{where}: expected the payload as base64 in 'payload_base64': {exc}") from exc
    if sha256_hex(data) != obj.get("sha256"):
        raise ArtifactIntegrityError(
            f"{where}: payload does not match its record; expected SHA-256 {obj.get('sha256')}, "
            f"actual {sha256_hex(data)}"
        )
    return data


def import_jsonl(db: Database, path: str | os.PathLike[str]) -> dict[str, int]:
    """Merge the export at ``path`` into ``db``; return how many records of each kind were new.

    Trials are added in atomic chunks; an interrupted import can simply be run again.

    Raises:
        ValueError: the file is not a complete tunebird records export.
        SchemaVersionError: the file's format is newer than this code reads.
        strategies.ground.errors.ArtifactIntegrityError: a payload does not match its SHA-256.
        RecordNotFoundError: a trial names a device or workload the file did not contain.
    """
    source = Path(path)
    added = dict.fromkeys(_KINDS, 0)
    pending: list[TrialRecord] = []

    def flush() -> None:
        added["trial"] += db.add_trials(pending)
        pending.clear()

    lines = _lines(source)
    first = next(lines, None)
    if first is None:
        raise ValueError(f"{source}: empty file, expected a tunebird records export")
    _check_header(*first)
    ended = False
    for where, obj in lines:
        kind = obj.get("kind")
        if ended:
            raise ValueError(f"{where}: a {kind!r} line after the 'end' line")
        if kind == "trial":
            pending.append(record_from_json(TrialRecord, obj, where))
            if len(pending) >= _TRIAL_CHUNK:
                flush()
            continue
        if kind == "device":
            d = record_from_json(DeviceRecord, obj, where)
            added[kind] += db.get_device(d.fingerprint) is None
            db.register_device(d)
        elif kind == "workload":
            w = record_from_json(WorkloadRecord, obj, where)
            added[kind] += db.get_workload(w.workload_hash) is None
            db.register_workload(w)
        elif kind == "artifact":
            a = record_from_json(ArtifactRecord, {**obj, "location": "db"}, where)
            payload = _payload(where, obj)
            had = db.get_artifact(a.workload_hash, a.device_fingerprint, a.batch_size, a.config_hash, a.format)
            db.store_artifact(
                workload_hash=a.workload_hash, device_fingerprint=a.device_fingerprint, batch_size=a.batch_size,
                config=a.config, format=a.format, payload=payload, created_at=a.created_at, replace=False,
            )
            added[kind] += had is None
        elif kind == "cost_model":
            c = record_from_json(CostModelRecord, obj, where)
            payload = _payload(where, obj)
            known = {r.sha256 for r in db.cost_models(c.device_fingerprint, c.name)}
            db.save_cost_model(
                device_fingerprint=c.device_fingerprint, name=c.name, payload=payload,
                n_trials=c.n_trials, created_at=c.created_at,
            )
            added[kind] += c.sha256 not in known
        elif kind == "end":
            ended = True
        else:
            raise ValueError(f"{where}: unknown record kind {kind!r} (expected one of {list(_KINDS)})")
    flush()
    if not ended:
        raise ValueError(
            f"{source} ends without its 'end' line: the file was cut short. What it held was merged "
            f"({added}); export it again and re-import (importing is idempotent)."
        )
    logger.info("imported %s from %s", added, source)
    return added

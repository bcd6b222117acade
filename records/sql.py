"""The SQL implementation of :class:`records.Database` (SQLite, PostgreSQL, any SQLAlchemy URL).

Every call runs in its own transaction, retried while the database is
locked or a transaction was chosen as a deadlock victim (see
:mod:`records.engine`).  Inserts skip rows whose key is taken
(``ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL, a savepoint per row
elsewhere), which is what makes every write idempotent.

Artifact payloads go to a content-addressed directory beside a SQLite file
(``tunebird.db.artifacts/ab/abcdef…``) and into the database otherwise, so a
shared server serves machines that share no disk.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import func, insert, make_url, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from strategies.ground.errors import ArtifactIntegrityError

from .database import (
    ArtifactRecord,
    CostModelRecord,
    DamagedDatabaseError,
    Database,
    DeviceLike,
    DeviceRecord,
    RecordNotFoundError,
    TrialRecord,
    TrialStatus,
    WorkloadRecord,
    check_hash,
    utcnow,
)
from .engine import is_transient, make_engine, resolve_url, sqlite_file
from . import jsonl
from .migrate import prepare_schema
from .models import ArtifactModel, Base, CostModelModel, DeviceModel, PayloadModel, TrialModel, WorkloadModel
from .store import IN_DATABASE, FileStore, sha256_hex, verify_payload

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ATTEMPTS = 10
_TRIAL_KEY = ("workload_hash", "device_fingerprint", "batch_size", "config_hash")
_ARTIFACT_KEY = (*_TRIAL_KEY, "format")
_COST_MODEL_KEY = ("device_fingerprint", "name", "sha256")


def _to_record(cls: type[T], row: Any, id_field: str | None = None) -> T:
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return cls(**{n: getattr(row, "id" if n == id_field else n) for n in names})


def _to_row(record: Any, id_field: str | None = None) -> dict[str, Any]:
    row = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    row.pop(id_field, None)
    return row


class SQLDatabase(Database):
    """:class:`records.Database` on SQLAlchemy.

    Args:
        url: a SQLAlchemy URL or a SQLite file path; None means ``$TUNEBIRD_DB``
            or ``./tunebird.db``.
        artifact_store: where new payloads go: ``"files"`` (a directory),
            ``"database"`` (a table), or ``"auto"``: files when there is a
            directory (``artifact_dir``, or ``<sqlite file>.artifacts``), else
            the database.
        artifact_dir: the payload directory (default: beside a SQLite file).
        create: create the schema when the database has none; if False, a
            missing database raises RecordNotFoundError.
        upgrade: upgrade an older schema in place instead of refusing it.

    Raises:
        SchemaVersionError: the schema is newer, older (without ``upgrade``) or damaged; its subclass
            DamagedDatabaseError: the SQLite file is no database or is corrupt (also from any later call).
        RecordNotFoundError: nothing there and ``create`` is False, or the SQLite file's folder is missing.
        ValueError: an unknown ``artifact_store``, or ``"files"`` with no directory.
    """

    _native_upsert = True  # tests switch it off to exercise the portable path

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        artifact_store: Literal["auto", "files", "database"] = "auto",
        artifact_dir: str | os.PathLike[str] | None = None,
        create: bool = True,
        upgrade: bool = False,
        echo: bool = False,
    ) -> None:
        self._url = make_url(resolve_url(url))
        path = sqlite_file(self._url)
        self.url = str(path) if path else self._url.render_as_string(hide_password=True)
        if artifact_store not in ("auto", "files", "database"):
            raise ValueError(f"artifact_store must be 'auto', 'files' or 'database', got {artifact_store!r}")
        if artifact_dir is None and path is not None:
            artifact_dir = Path(f"{path}.artifacts")
        self._files = FileStore(artifact_dir) if artifact_dir is not None else None
        if artifact_store == "files" and self._files is None:
            raise ValueError(f"artifact_store='files' needs artifact_dir for {self.url} (it is not a SQLite file)")
        self._payloads_in_files = artifact_store != "database" and self._files is not None
        if path is not None:
            if not path.parent.is_dir():
                raise RecordNotFoundError(f"cannot open {path}: the folder {path.parent} does not exist")
            if not create and not path.exists():
                raise RecordNotFoundError(f"no tunebird tuning log at {path} (the file does not exist)")
        self._engine = make_engine(self._url, echo)
        self._writer = self._engine.execution_options(tunebird_write=True)
        self._closed = False
        self._known_workloads: set[str] = set()
        self._known_devices: set[str] = set()
        try:
            self._write(lambda s: prepare_schema(s.connection(), self.url, create=create, upgrade=upgrade))
        except BaseException:
            self._engine.dispose()
            raise
        logger.debug("opened %r", self)

    def __repr__(self) -> str:
        return f"SQLDatabase({self.url!r}, payloads in {self._files if self._payloads_in_files else 'database'})"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    # ---- sessions
    def _run(self, fn: Callable[[Session], T], write: bool) -> T:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        delay = 0.05
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with Session(self._writer if write else self._engine, expire_on_commit=False) as session:
                    with session.begin():
                        return fn(session)
            except DBAPIError as exc:
                if _is_damaged(exc):
                    raise DamagedDatabaseError(_damaged_message(self.url, exc)) from exc
                if attempt == _ATTEMPTS or not is_transient(exc):
                    raise
                logger.warning(
                    "%s is busy (%s); retrying (%d of %d)", self.url, str(exc.orig).strip(), attempt, _ATTEMPTS
                )
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def _write(self, fn: Callable[[Session], T]) -> T:
        return self._run(fn, write=True)

    def _read(self, fn: Callable[[Session], T]) -> T:
        return self._run(fn, write=False)

    def _insert_ignore(
        self, session: Session, model: type[Base], rows: list[dict[str, Any]], key: Sequence[str]
    ) -> list[Any]:
        """Insert the rows whose ``key`` is not taken yet; return the primary keys of those inserted."""
        if not rows:
            return []
        dialect = session.get_bind().dialect.name
        if self._native_upsert and dialect in ("sqlite", "postgresql"):
            ins = sqlite_insert if dialect == "sqlite" else pg_insert
            pk = model.__mapper__.primary_key[0]
            stmt = ins(model).on_conflict_do_nothing(index_elements=list(key)).returning(pk)
            return list(session.scalars(stmt, rows).all())
        inserted = []
        for row in rows:
            try:
                with session.begin_nested():
                    inserted.append(session.execute(insert(model).values(**row)).inserted_primary_key[0])
            except IntegrityError:
                pass
        return inserted

    def _require(self, session: Session, workloads: Iterable[str] = (), devices: Iterable[str] = ()) -> None:
        """Raise RecordNotFoundError unless every workload and device is registered.

        Registered ones are remembered: this API never deletes them.
        """
        for column, known, wanted, what, how in (
            (WorkloadModel.workload_hash, self._known_workloads, set(workloads), "workload", "register_workload"),
            (DeviceModel.fingerprint, self._known_devices, set(devices), "device", "register_device"),
        ):
            wanted -= known
            if not wanted:
                continue
            found = set(session.scalars(select(column).where(column.in_(wanted))))
            known |= found
            missing = sorted(wanted - found)
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise RecordNotFoundError(
                    f"{what} {missing[0]} is not registered{more}; call Database.{how}() first"
                )

    # ---- devices and workloads
    def register_device(self, device: DeviceLike) -> DeviceRecord:
        record = DeviceRecord.from_device(device)

        def run(s: Session) -> DeviceRecord:
            self._insert_ignore(s, DeviceModel, [_to_row(record)], ["fingerprint"])
            return _to_record(DeviceRecord, s.get_one(DeviceModel, record.fingerprint))

        stored = self._write(run)
        self._known_devices.add(stored.fingerprint)
        return stored

    def get_device(self, fingerprint: str) -> DeviceRecord | None:
        row = self._read(lambda s: s.get(DeviceModel, fingerprint))
        return None if row is None else _to_record(DeviceRecord, row)

    def devices(self) -> list[DeviceRecord]:
        q = select(DeviceModel).order_by(DeviceModel.created_at, DeviceModel.fingerprint)
        return [_to_record(DeviceRecord, r) for r in self._read(lambda s: s.scalars(q).all())]

    def register_workload(self, workload: WorkloadRecord) -> WorkloadRecord:
        if not isinstance(workload, WorkloadRecord):
            raise TypeError(f"expected a WorkloadRecord, got {type(workload).__name__}")

        def run(s: Session) -> WorkloadRecord:
            self._insert_ignore(s, WorkloadModel, [_to_row(workload)], ["workload_hash"])
            return _to_record(WorkloadRecord, s.get_one(WorkloadModel, workload.workload_hash))

        stored = self._write(run)
        self._known_workloads.add(stored.workload_hash)
        return stored

    def get_workload(self, workload_hash: str) -> WorkloadRecord | None:
        row = self._read(lambda s: s.get(WorkloadModel, workload_hash))
        return None if row is None else _to_record(WorkloadRecord, row)

    def workloads(self) -> list[WorkloadRecord]:
        q = select(WorkloadModel).order_by(WorkloadModel.created_at, WorkloadModel.workload_hash)
        return [_to_record(WorkloadRecord, r) for r in self._read(lambda s: s.scalars(q).all())]

    # ---- trials
    def add_trial(self, trial: TrialRecord) -> TrialRecord:
        if not isinstance(trial, TrialRecord):
            raise TypeError(f"expected a TrialRecord, got {type(trial).__name__}")

        def run(s: Session) -> TrialRecord:
            self._require(s, [trial.workload_hash], [trial.device_fingerprint])
            inserted = self._insert_ignore(s, TrialModel, [_to_row(trial, "trial_id")], _TRIAL_KEY)
            if inserted:
                return dataclasses.replace(trial, trial_id=inserted[0])
            logger.debug("trial %s was already recorded; keeping the earlier one", trial.key)
            return _to_record(TrialRecord, s.scalars(_trial_query(*trial.key)).one(), "trial_id")

        return self._write(run)

    def add_trials(self, trials: Iterable[TrialRecord]) -> int:
        batch = list(trials)
        for t in batch:
            if not isinstance(t, TrialRecord):
                raise TypeError(f"expected TrialRecords, got {type(t).__name__}")

        def run(s: Session) -> int:
            self._require(s, {t.workload_hash for t in batch}, {t.device_fingerprint for t in batch})
            return len(self._insert_ignore(s, TrialModel, [_to_row(t, "trial_id") for t in batch], _TRIAL_KEY))

        return self._write(run) if batch else 0

    def get_trial(
        self, workload_hash: str, device_fingerprint: str, batch_size: int, config_hash: str
    ) -> TrialRecord | None:
        q = _trial_query(workload_hash, device_fingerprint, batch_size, config_hash)
        row = self._read(lambda s: s.scalars(q).one_or_none())
        return None if row is None else _to_record(TrialRecord, row, "trial_id")

    def measured_configs(self, workload_hash: str, device_fingerprint: str, batch_size: int) -> set[str]:
        q = select(TrialModel.config_hash).where(
            TrialModel.workload_hash == workload_hash,
            TrialModel.device_fingerprint == device_fingerprint,
            TrialModel.batch_size == batch_size,
        )
        return set(self._read(lambda s: s.scalars(q).all()))

    def trials(
        self,
        workload_hash: str | None = None,
        device_fingerprint: str | None = None,
        batch_size: int | None = None,
        status: TrialStatus | None = None,
    ) -> list[TrialRecord]:
        q = select(TrialModel).order_by(TrialModel.id)
        if workload_hash is not None:
            q = q.where(TrialModel.workload_hash == workload_hash)
        if device_fingerprint is not None:
            q = q.where(TrialModel.device_fingerprint == device_fingerprint)
        if batch_size is not None:
            q = q.where(TrialModel.batch_size == batch_size)
        if status is not None:
            q = q.where(TrialModel.status == TrialStatus(status))
        return [_to_record(TrialRecord, r, "trial_id") for r in self._read(lambda s: s.scalars(q).all())]

    def best_trial(self, workload_hash: str, device_fingerprint: str, batch_size: int) -> TrialRecord | None:
        return self._best(workload_hash, device_fingerprint, batch_size).get(batch_size)

    def best_trials(self, workload_hash: str, device_fingerprint: str) -> dict[int, TrialRecord]:
        return self._best(workload_hash, device_fingerprint, None)

    def _best(self, workload_hash: str, device_fingerprint: str, batch_size: int | None) -> dict[int, TrialRecord]:
        rank = func.row_number().over(
            partition_by=TrialModel.batch_size, order_by=(TrialModel.latency_median_s.asc(), TrialModel.id.asc())
        )
        ranked = select(TrialModel.id.label("id"), rank.label("rank")).where(
            TrialModel.workload_hash == workload_hash,
            TrialModel.device_fingerprint == device_fingerprint,
            TrialModel.status == TrialStatus.OK,
        )
        if batch_size is not None:
            ranked = ranked.where(TrialModel.batch_size == batch_size)
        sub = ranked.subquery()
        q = select(TrialModel).join(sub, TrialModel.id == sub.c.id).where(sub.c.rank == 1)
        rows = self._read(lambda s: s.scalars(q).all())
        return {r.batch_size: _to_record(TrialRecord, r, "trial_id") for r in sorted(rows, key=lambda r: r.batch_size)}

    # ---- artifacts
    def store_artifact(
        self,
        *,
        workload_hash: str,
        device_fingerprint: str,
        batch_size: int,
        config: Mapping[str, Any],
        format: str,
        payload: bytes,
        created_at: datetime | None = None,
        replace: bool = True,
    ) -> ArtifactRecord:
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        if not isinstance(format, str) or not 0 < len(format) <= 32:
            raise ValueError(f"format must be a name of 1 to 32 characters (such as 'tvm-so'), got {format!r}")
        data = bytes(payload)
        sha = sha256_hex(data)
        record = ArtifactRecord(
            workload_hash=workload_hash,
            device_fingerprint=device_fingerprint,
            batch_size=batch_size,
            config=dict(config),
            format=format,
            size=len(data),
            sha256=sha,
            location=IN_DATABASE,
            created_at=created_at or utcnow(),
        )
        key = {k: getattr(record, k) for k in _ARTIFACT_KEY}

        def run(s: Session) -> ArtifactRecord:
            self._require(s, [workload_hash], [device_fingerprint])
            q = select(ArtifactModel).filter_by(**key)
            existing = s.scalars(q).one_or_none()
            if existing is not None and not replace and existing.sha256 != sha:
                return _to_record(ArtifactRecord, existing, "artifact_id")
            location = self._put_payload(s, data, sha)  # also heals a lost payload of the same content
            row = _to_row(dataclasses.replace(record, location=location), "artifact_id")
            if existing is None and self._insert_ignore(s, ArtifactModel, [row], _ARTIFACT_KEY):
                return _to_record(ArtifactRecord, s.scalars(q).one(), "artifact_id")
            existing = s.scalars(q).one()
            if existing.sha256 != sha and replace:
                logger.info("replacing artifact %s (%s) of %s", existing.id, format, workload_hash[:12])
                for name in ("config", "size", "sha256", "location", "created_at"):
                    setattr(existing, name, row[name])
                s.flush()
            return _to_record(ArtifactRecord, existing, "artifact_id")

        return self._write(run)

    def _put_payload(self, session: Session, data: bytes, sha: str) -> str:
        if self._payloads_in_files:
            assert self._files is not None
            return self._files.put(data, sha)
        self._insert_ignore(session, PayloadModel, [{"sha256": sha, "data": data}], ["sha256"])
        return IN_DATABASE

    def artifacts(
        self,
        workload_hash: str | None = None,
        device_fingerprint: str | None = None,
        batch_size: int | None = None,
    ) -> list[ArtifactRecord]:
        q = select(ArtifactModel).order_by(ArtifactModel.id)
        if workload_hash is not None:
            q = q.where(ArtifactModel.workload_hash == workload_hash)
        if device_fingerprint is not None:
            q = q.where(ArtifactModel.device_fingerprint == device_fingerprint)
        if batch_size is not None:
            q = q.where(ArtifactModel.batch_size == batch_size)
        return [_to_record(ArtifactRecord, r, "artifact_id") for r in self._read(lambda s: s.scalars(q).all())]

    def fetch_artifact(self, artifact: ArtifactRecord) -> bytes:
        check_hash(artifact.sha256, "artifact sha256")
        what = f"artifact {artifact.artifact_id} ({artifact.format}, batch {artifact.batch_size}) in {self.url}"
        if artifact.location == IN_DATABASE:
            q = select(PayloadModel.data).where(PayloadModel.sha256 == artifact.sha256)
            data = self._read(lambda s: s.scalars(q).one_or_none())
            return verify_payload(None if data is None else bytes(data), artifact.sha256, what)
        if self._files is None:
            raise ArtifactIntegrityError(
                f"{what}: the payload is the file {artifact.location!r}, but no artifact directory is known; "
                f"open the database with artifact_dir=... (expected SHA-256 {artifact.sha256}, actual: none)"
            )
        return self._files.get(artifact.location, artifact.sha256)

    # ---- cost models
    def save_cost_model(
        self,
        *,
        device_fingerprint: str,
        name: str,
        payload: bytes,
        n_trials: int,
        created_at: datetime | None = None,
    ) -> CostModelRecord:
        if not isinstance(name, str) or not 0 < len(name) <= 128:
            raise ValueError(f"name must be a string of 1 to 128 characters, got {name!r}")
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 0:
            raise ValueError(f"n_trials must be an int >= 0, got {n_trials!r}")
        data = bytes(payload)
        record = CostModelRecord(
            device_fingerprint=device_fingerprint,
            name=name,
            n_trials=n_trials,
            size=len(data),
            sha256=sha256_hex(data),
            created_at=created_at or utcnow(),
        )
        row = {**_to_row(record, "cost_model_id"), "payload": data}
        q = select(CostModelModel).filter_by(**{k: row[k] for k in _COST_MODEL_KEY})

        def run(s: Session) -> CostModelRecord:
            self._require(s, devices=[device_fingerprint])
            self._insert_ignore(s, CostModelModel, [row], _COST_MODEL_KEY)
            return _to_record(CostModelRecord, s.scalars(q).one(), "cost_model_id")

        return self._write(run)

    def cost_models(self, device_fingerprint: str | None = None, name: str | None = None) -> list[CostModelRecord]:
        q = select(CostModelModel).order_by(CostModelModel.id)
        if device_fingerprint is not None:
            q = q.where(CostModelModel.device_fingerprint == device_fingerprint)
        if name is not None:
            q = q.where(CostModelModel.name == name)
        return [_to_record(CostModelRecord, r, "cost_model_id") for r in self._read(lambda s: s.scalars(q).all())]

    def fetch_cost_model(self, record: CostModelRecord) -> bytes:
        q = select(CostModelModel.payload).filter_by(
            device_fingerprint=record.device_fingerprint, name=record.name, sha256=record.sha256
        )
        data = self._read(lambda s: s.scalars(q).one_or_none())
        what = f"cost model {record.name!r} ({record.cost_model_id}) in {self.url}"
        return verify_payload(None if data is None else bytes(data), record.sha256, what)

    # ---- moving records between databases
    def export_jsonl(self, path: str | os.PathLike[str]) -> dict[str, int]:
        """Write every record to a JSON Lines file (see :mod:`records.jsonl`); return counts per kind."""
        return jsonl.export_jsonl(self, path)

    def import_jsonl(self, path: str | os.PathLike[str]) -> dict[str, int]:
        """Merge a JSON Lines export into this database; return how many records of each kind were new.

        Raises:
            SchemaVersionError: the file was written in a newer export format.
            ValueError: the file is not a tunebird records export.
            strategies.ground.errors.ArtifactIntegrityError: a payload does not match its SHA-256.
        """
        return jsonl.import_jsonl(self, path)

def _is_damaged(exc: DBAPIError) -> bool:
    """Whether SQLite says the file is no database or is corrupt (``SQLITE_NOTADB``, ``SQLITE_CORRUPT*``)."""
    name = getattr(exc.orig, "sqlite_errorname", None)  # Python >= 3.11
    if name is not None:
        return name == "SQLITE_NOTADB" or name.startswith("SQLITE_CORRUPT")
    message = str(exc.orig).lower()
    return "file is not a database" in message or "database disk image is malformed" in message


def _damaged_message(url: str, exc: DBAPIError) -> str:
    reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
    return (
        f"{url} is damaged and cannot be read as a tunebird tuning log (SQLite: {reason}); restore it from "
        f"a backup, or move it aside and rebuild it from an export: tunebird records import EXPORT.jsonl --db {url}"
    )


def _trial_query(workload_hash: str, device_fingerprint: str, batch_size: int, config_hash_: str) -> Any:
    return select(TrialModel).where(
        TrialModel.workload_hash == workload_hash,
        TrialModel.device_fingerprint == device_fingerprint,
        TrialModel.batch_size == batch_size,
        TrialModel.config_hash == config_hash_,
    )


__all__ = ["SQLDatabase"]

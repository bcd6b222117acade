"""The tuning-log interface: frozen record types and the abstract :class:`Database`.

Records are plain frozen dataclasses; they are what every method takes and
returns, so nothing outside ``records/`` ever sees an ORM row or a session.
"""

from __future__ import annotations

import abc
import enum
import functools
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from strategies.ground.config import canonical_json, json_key  # noqa: F401  - canonical_json re-exported
from strategies.ground.errors import TunebirdError

_HEX64 = re.compile(r"[0-9a-f]{64}")


class SchemaVersionError(TunebirdError):
    """The database's schema is newer than, older than or otherwise incompatible with this code."""


class DamagedDatabaseError(SchemaVersionError):
    """The database file is not a database, or is corrupt (truncated, overwritten): nothing can be read from it."""


class RecordNotFoundError(TunebirdError, LookupError):
    """A referenced device or workload is not registered, or there is no database at the address."""


class TrialStatus(str, enum.Enum):
    """How a measured candidate ended.  Failures are data, not exceptions."""

    OK = "ok"  # built, agreed with the reference, timed
    INVALID = "invalid"  # built but disagreed with the reference, or the config does not apply
    ERROR = "error"  # failed to build or crashed while running
    TIMEOUT = "timeout"  # exceeded its build or run time limit


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (naive datetimes are taken to be UTC already)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of a candidate config's canonical JSON (``1`` and ``1.0`` differ): a
    :class:`~strategies.ground.config.Config`'s ``key``, the one identity of a config."""
    return json_key(config)


@functools.cache
def tunebird_version() -> str:
    """The installed tunebird's version, without importing ``tuner``."""
    try:
        return metadata.version("tunebird")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def check_hash(value: Any, what: str) -> str:
    """Return ``value`` if it is a 64-digit lowercase hex SHA-256, else raise ValueError."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ValueError(f"{what} must be a 64-digit lowercase hex SHA-256, got {value!r}")
    return value


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


@runtime_checkable
class DeviceLike(Protocol):
    """What :meth:`Database.register_device` needs: ``tuner.device.Device`` is one.

    ``to_dict()`` must be JSON-able; its keys ``cpu_model``, ``n_cores``,
    ``isa_flags``, ``gpu``, ``os``, ``arch`` and ``versions`` fill the
    searchable columns, and the whole dict is kept as ``info``.
    """

    @property
    def fingerprint(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DeviceRecord:
    """A registered device, keyed by its fingerprint."""

    fingerprint: str
    cpu_model: str = ""
    n_cores: int = 0
    isa_flags: tuple[str, ...] = ()
    gpu: str | None = None
    os: str = ""
    arch: str = ""
    versions: dict[str, str | None] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        check_hash(self.fingerprint, "device fingerprint")
        _set(self, "isa_flags", tuple(self.isa_flags))
        _set(self, "n_cores", int(self.n_cores))
        _set(self, "versions", dict(self.versions))
        _set(self, "info", json.loads(canonical_json(dict(self.info))))
        _set(self, "created_at", as_utc(self.created_at))

    @classmethod
    def from_device(cls, device: DeviceLike) -> DeviceRecord:
        """The record for a device object (a :class:`DeviceRecord` is returned as it is)."""
        if isinstance(device, DeviceRecord):
            return device
        if not isinstance(device, DeviceLike):
            raise TypeError(
                f"expected a device with .fingerprint and .to_dict() (tuner.device.Device), "
                f"got {type(device).__name__}"
            )
        d = device.to_dict()
        return cls(
            fingerprint=device.fingerprint,
            cpu_model=str(d.get("cpu_model", "")),
            n_cores=int(d.get("n_cores", 0)),
            isa_flags=tuple(d.get("isa_flags", ())),
            gpu=d.get("gpu"),
            os=str(d.get("os", "")),
            arch=str(d.get("arch", "")),
            versions=dict(d.get("versions", {})),
            info=d,
        )

    def to_dict(self) -> dict[str, Any]:
        """The device description this record was made from."""
        return dict(self.info)


@dataclass(frozen=True)
class WorkloadRecord:
    """A converted subgraph, keyed by ``strategies.ir.content_hash`` of it."""

    workload_hash: str
    summary: str = ""
    op_kinds: tuple[str, ...] = ()
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        check_hash(self.workload_hash, "workload_hash")
        if isinstance(self.op_kinds, str):
            raise TypeError(f"op_kinds must be a sequence of operator kinds, got the string {self.op_kinds!r}")
        _set(self, "op_kinds", tuple(str(k) for k in self.op_kinds))
        _set(self, "created_at", as_utc(self.created_at))


@dataclass(frozen=True)
class TrialRecord:
    """One measured candidate: a config on a workload, device and batch size, and how it went.

    ``config`` is normalised through JSON, ``config_hash`` is computed from it
    (a given hash must agree), latencies are in seconds.  An ``ok`` trial
    needs ``latency_median_s``.  ``trial_id`` is set by the database.
    """

    workload_hash: str
    device_fingerprint: str
    batch_size: int
    config: dict[str, Any]
    status: TrialStatus = TrialStatus.OK
    latency_median_s: float | None = None
    latency_spread_s: float | None = None
    error: str | None = None
    cost_prediction: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = field(default_factory=utcnow)
    tunebird_version: str = field(default_factory=tunebird_version)
    config_hash: str = ""
    trial_id: int | None = None

    def __post_init__(self) -> None:
        check_hash(self.workload_hash, "workload_hash")
        check_hash(self.device_fingerprint, "device_fingerprint")
        _set(self, "batch_size", _check_batch_size(self.batch_size))
        if not isinstance(self.config, Mapping):
            raise TypeError(f"config must be a dict of JSON data, got {type(self.config).__name__}")
        text = canonical_json(dict(self.config))
        _set(self, "config", json.loads(text))
        digest = hashlib.sha256(text.encode()).hexdigest()
        if self.config_hash and self.config_hash != digest:
            raise ValueError(f"config_hash {self.config_hash!r} does not match the config (expected {digest!r})")
        _set(self, "config_hash", digest)
        try:
            _set(self, "status", TrialStatus(self.status))
        except ValueError:
            raise ValueError(
                f"status must be one of {[s.value for s in TrialStatus]}, got {self.status!r}"
            ) from None
        for name in ("latency_median_s", "latency_spread_s", "cost_prediction"):
            value = getattr(self, name)
            if value is not None:
                value = float(value)
                if not math.isfinite(value) or (name != "cost_prediction" and value < 0):
                    raise ValueError(f"{name} must be a finite number >= 0 (seconds), got {value!r}")
                _set(self, name, value)
        if self.status is TrialStatus.OK and self.latency_median_s is None:
            raise ValueError("an ok trial needs latency_median_s (seconds), got None")
        _set(self, "started_at", as_utc(self.started_at))
        _set(self, "finished_at", as_utc(self.finished_at))

    @property
    def key(self) -> tuple[str, str, int, str]:
        """``(workload_hash, device_fingerprint, batch_size, config_hash)``: unique per database."""
        return (self.workload_hash, self.device_fingerprint, self.batch_size, self.config_hash)


@dataclass(frozen=True)
class ArtifactRecord:
    """A compiled artifact's metadata; the payload is read with :meth:`Database.fetch_artifact`.

    ``location`` is ``"db"`` (payload inside the database) or the path of the
    payload file relative to the artifact directory (``ab/abcdef…``).
    """

    workload_hash: str
    device_fingerprint: str
    batch_size: int
    config: dict[str, Any]
    format: str
    size: int
    sha256: str
    location: str
    config_hash: str = ""
    created_at: datetime = field(default_factory=utcnow)
    artifact_id: int | None = None

    def __post_init__(self) -> None:
        check_hash(self.workload_hash, "workload_hash")
        check_hash(self.device_fingerprint, "device_fingerprint")
        check_hash(self.sha256, "artifact sha256")
        _set(self, "batch_size", _check_batch_size(self.batch_size))
        _set(self, "config", json.loads(canonical_json(dict(self.config))))
        digest = config_hash(self.config)
        if self.config_hash and self.config_hash != digest:
            raise ValueError(f"config_hash {self.config_hash!r} does not match the config (expected {digest!r})")
        _set(self, "config_hash", digest)
        _set(self, "created_at", as_utc(self.created_at))


@dataclass(frozen=True)
class CostModelRecord:
    """A saved cost model's metadata; the payload is read with :meth:`Database.fetch_cost_model`."""

    device_fingerprint: str
    name: str
    n_trials: int
    size: int
    sha256: str
    created_at: datetime = field(default_factory=utcnow)
    cost_model_id: int | None = None

    def __post_init__(self) -> None:
        check_hash(self.device_fingerprint, "device_fingerprint")
        check_hash(self.sha256, "cost model sha256")
        _set(self, "created_at", as_utc(self.created_at))


def _check_batch_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {value!r}")
    return int(value)


class Database(abc.ABC):
    """The tuning log: devices, workloads, trials, artifacts and cost models.

    Lifecycle: construct (usually with :func:`records.open_database`), use,
    :meth:`close` (or use it as a context manager).  Every write commits before
    the method returns (a batch commits atomically), so a crash loses nothing
    that a method returned for.  Writes are idempotent: a device, workload,
    trial (by workload, device, batch size and config hash), artifact or cost
    model already present is kept and not duplicated.

    Thread-safety: one instance may be used from several threads (each call
    runs in its own transaction).  Each process opens its own instance; several
    processes may write to one database at the same time.

    Every method raises RuntimeError once the database is closed, and lets a
    failure to reach the database through (``sqlalchemy.exc.OperationalError``).
    Arguments that are not what a method expects raise TypeError or ValueError
    naming what was given.
    """

    url: str  # where the database is, for messages (never with a password)

    # ---- lifecycle
    @abc.abstractmethod
    def close(self) -> None:
        """Release connections.  Using the database afterwards raises RuntimeError."""

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- devices and workloads
    @abc.abstractmethod
    def register_device(self, device: DeviceLike) -> DeviceRecord:
        """Store a device unless its fingerprint is known; return the stored record.

        Raises:
            TypeError: ``device`` has no ``fingerprint`` / ``to_dict()``.
        """

    @abc.abstractmethod
    def get_device(self, fingerprint: str) -> DeviceRecord | None:
        """The device with this fingerprint, or None (never raises for an unknown one)."""

    @abc.abstractmethod
    def devices(self) -> list[DeviceRecord]:
        """Every registered device, oldest first."""

    @abc.abstractmethod
    def register_workload(self, workload: WorkloadRecord) -> WorkloadRecord:
        """Store a workload unless its hash is known; return the stored record.

        Raises:
            TypeError: ``workload`` is not a WorkloadRecord.
        """

    @abc.abstractmethod
    def get_workload(self, workload_hash: str) -> WorkloadRecord | None:
        """The workload with this hash, or None (never raises for an unknown one)."""

    @abc.abstractmethod
    def workloads(self) -> list[WorkloadRecord]:
        """Every registered workload, oldest first."""

    # ---- trials
    @abc.abstractmethod
    def add_trial(self, trial: TrialRecord) -> TrialRecord:
        """Commit one trial; return the stored record (the earlier one if its key was taken).

        Raises:
            RecordNotFoundError: its workload or device is not registered.
            TypeError: ``trial`` is not a TrialRecord.
        """

    @abc.abstractmethod
    def add_trials(self, trials: Iterable[TrialRecord]) -> int:
        """Commit trials atomically, skipping those whose key is taken; return how many were new.

        Raises:
            RecordNotFoundError: a workload or device is not registered (nothing is added).
            TypeError: an item is not a TrialRecord (nothing is added).
        """

    @abc.abstractmethod
    def get_trial(
        self, workload_hash: str, device_fingerprint: str, batch_size: int, config_hash: str
    ) -> TrialRecord | None:
        """The trial of this config, or None when it was never measured."""

    @abc.abstractmethod
    def measured_configs(self, workload_hash: str, device_fingerprint: str, batch_size: int) -> set[str]:
        """Config hashes already measured (in any status): what a resumed run skips."""

    @abc.abstractmethod
    def trials(
        self,
        workload_hash: str | None = None,
        device_fingerprint: str | None = None,
        batch_size: int | None = None,
        status: TrialStatus | None = None,
    ) -> list[TrialRecord]:
        """The history: trials matching every given filter, in the order they were recorded."""

    @abc.abstractmethod
    def best_trial(self, workload_hash: str, device_fingerprint: str, batch_size: int) -> TrialRecord | None:
        """The ok trial with the smallest median latency (earliest on ties), or None."""

    @abc.abstractmethod
    def best_trials(self, workload_hash: str, device_fingerprint: str) -> dict[int, TrialRecord]:
        """The best ok trial per batch size, by batch size."""

    def batch_sizes(self, workload_hash: str, device_fingerprint: str) -> list[int]:
        """Batch sizes with at least one ok trial for this workload and device, ascending."""
        return sorted(self.best_trials(workload_hash, device_fingerprint))

    # ---- artifacts
    @abc.abstractmethod
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
        """Store a compiled artifact for (workload, device, batch size, config, format).

        An artifact already stored under that key is replaced when ``replace``
        (a rebuild), else kept.  Returns the stored record.

        Raises:
            RecordNotFoundError: the workload or device is not registered.
            TypeError, ValueError: ``payload`` is not bytes, ``format`` is not a short name,
                or a hash, batch size or config is malformed.
        """

    @abc.abstractmethod
    def artifacts(
        self,
        workload_hash: str | None = None,
        device_fingerprint: str | None = None,
        batch_size: int | None = None,
    ) -> list[ArtifactRecord]:
        """Artifact records matching every given filter, oldest first."""

    def get_artifact(
        self, workload_hash: str, device_fingerprint: str, batch_size: int, config_hash: str, format: str | None = None
    ) -> ArtifactRecord | None:
        """The artifact of this config (of this format, if given), or None."""
        for a in self.artifacts(workload_hash, device_fingerprint, batch_size):
            if a.config_hash == config_hash and (format is None or a.format == format):
                return a
        return None

    @abc.abstractmethod
    def fetch_artifact(self, artifact: ArtifactRecord) -> bytes:
        """The artifact's payload, checked against its SHA-256.

        Raises:
            strategies.ground.errors.ArtifactIntegrityError: the payload is missing or
                its SHA-256 differs from the record's (both hashes are named).
        """

    # ---- cost models
    @abc.abstractmethod
    def save_cost_model(
        self,
        *,
        device_fingerprint: str,
        name: str,
        payload: bytes,
        n_trials: int,
        created_at: datetime | None = None,
    ) -> CostModelRecord:
        """Store a cost model (the same payload twice under one name is stored once).

        Raises:
            RecordNotFoundError: the device is not registered.
            ValueError: ``name`` is empty or too long, or ``n_trials`` is negative.
        """

    @abc.abstractmethod
    def cost_models(self, device_fingerprint: str | None = None, name: str | None = None) -> list[CostModelRecord]:
        """Cost-model records matching the filters, oldest first."""

    @abc.abstractmethod
    def fetch_cost_model(self, record: CostModelRecord) -> bytes:
        """The cost model's payload, checked against its SHA-256.

        Raises:
            strategies.ground.errors.ArtifactIntegrityError: the payload's SHA-256 differs from the record's.
        """

    def load_cost_model(self, device_fingerprint: str, name: str) -> tuple[CostModelRecord, bytes] | None:
        """The newest cost model of this name for the device and its payload, or None.

        Raises:
            strategies.ground.errors.ArtifactIntegrityError: the payload's SHA-256 differs from the record's.
        """
        found = self.cost_models(device_fingerprint, name)
        if not found:
            return None
        newest = max(found, key=lambda r: (r.created_at, r.cost_model_id or 0))
        return newest, self.fetch_cost_model(newest)

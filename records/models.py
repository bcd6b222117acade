"""SQLAlchemy ORM models: one class per table.  Private to ``records/``.

Tables are prefixed ``tunebird_`` so a tuning log can share a database (for
example with optuna's RDB storage, which has its own ``trials`` table).
Changing anything here changes the schema: bump ``records.migrate.SCHEMA_VERSION``
and add a migration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Double,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .database import TrialStatus

HASH = String(64)


class Base(DeclarativeBase):
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class SchemaVersionModel(Base):
    """One row: the schema version of this database and the tunebird that last wrote it."""

    __tablename__ = "tunebird_schema_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schema_version: Mapped[int] = mapped_column(Integer)
    tunebird_version: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class DeviceModel(Base):
    __tablename__ = "tunebird_devices"

    fingerprint: Mapped[str] = mapped_column(HASH, primary_key=True)
    cpu_model: Mapped[str] = mapped_column(String(256))
    n_cores: Mapped[int] = mapped_column(Integer)
    isa_flags: Mapped[list[str]]
    gpu: Mapped[str | None] = mapped_column(String(256))
    os: Mapped[str] = mapped_column(String(64))
    arch: Mapped[str] = mapped_column(String(64))
    versions: Mapped[dict[str, Any]]
    info: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class WorkloadModel(Base):
    __tablename__ = "tunebird_workloads"

    workload_hash: Mapped[str] = mapped_column(HASH, primary_key=True)
    summary: Mapped[str] = mapped_column(Text)
    op_kinds: Mapped[list[str]]
    created_at: Mapped[datetime]


class TrialModel(Base):
    __tablename__ = "tunebird_trials"
    __table_args__ = (
        UniqueConstraint("workload_hash", "device_fingerprint", "batch_size", "config_hash", name="uq_tunebird_trial"),
        Index("ix_tunebird_trials_best", "workload_hash", "device_fingerprint", "status", "batch_size"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_hash: Mapped[str] = mapped_column(HASH, ForeignKey("tunebird_workloads.workload_hash"))
    device_fingerprint: Mapped[str] = mapped_column(HASH, ForeignKey("tunebird_devices.fingerprint"))
    batch_size: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]]
    config_hash: Mapped[str] = mapped_column(HASH)
    status: Mapped[TrialStatus] = mapped_column(
        Enum(
            TrialStatus,
            name="tunebird_trial_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    latency_median_s: Mapped[float | None] = mapped_column(Double)
    latency_spread_s: Mapped[float | None] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(Text)
    cost_prediction: Mapped[float | None] = mapped_column(Double)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    tunebird_version: Mapped[str] = mapped_column(String(64))


class PayloadModel(Base):
    """Artifact payloads kept inside the database, content-addressed."""

    __tablename__ = "tunebird_payloads"

    sha256: Mapped[str] = mapped_column(HASH, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ArtifactModel(Base):
    __tablename__ = "tunebird_artifacts"
    __table_args__ = (
        UniqueConstraint(
            "workload_hash", "device_fingerprint", "batch_size", "config_hash", "format", name="uq_tunebird_artifact"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_hash: Mapped[str] = mapped_column(HASH, ForeignKey("tunebird_workloads.workload_hash"))
    device_fingerprint: Mapped[str] = mapped_column(HASH, ForeignKey("tunebird_devices.fingerprint"))
    batch_size: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]]
    config_hash: Mapped[str] = mapped_column(HASH)
    format: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(HASH)
    location: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class CostModelModel(Base):
    __tablename__ = "tunebird_cost_models"
    __table_args__ = (UniqueConstraint("device_fingerprint", "name", "sha256", name="uq_tunebird_cost_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_fingerprint: Mapped[str] = mapped_column(HASH, ForeignKey("tunebird_devices.fingerprint"))
    name: Mapped[str] = mapped_column(String(128))
    payload: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(HASH)
    n_trials: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]

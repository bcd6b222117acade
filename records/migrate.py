"""Schema versions: create a fresh schema, refuse a newer one, upgrade an older one.

A database states its schema version in one row of ``tunebird_schema_version``.
To change the schema: edit ``records/models.py``, bump :data:`SCHEMA_VERSION`,
add ``MIGRATIONS[old] = fn`` where ``fn(connection)`` brings a version-``old``
database to ``old + 1`` (plain DDL through the connection, inside the caller's
transaction), and update ``SCHEMA_DIGEST`` in ``tests/test_records.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text

from .database import RecordNotFoundError, SchemaVersionError, tunebird_version, utcnow
from .models import Base, SchemaVersionModel

logger = logging.getLogger(__name__)

from .schema import SCHEMA_VERSION  # noqa: E402
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}

# Serialises schema creation and upgrades between processes on PostgreSQL.
_PG_LOCK_KEY = 0x7475_6E65_6269_7264 & 0x7FFF_FFFF_FFFF_FFFF


def prepare_schema(conn: Connection, where: str, *, create: bool, upgrade: bool) -> None:
    """Make the schema usable by this code, inside a write transaction on ``conn``.

    ``where`` names the database in messages.

    Raises:
        RecordNotFoundError: no tunebird schema there and ``create`` is False.
        SchemaVersionError: the schema is newer, older (without ``upgrade``) or damaged.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    tables = set(inspect(conn).get_table_names())
    ours = sorted(tables & set(Base.metadata.tables))
    version_table = SchemaVersionModel.__tablename__
    if version_table not in tables:
        if ours:
            raise SchemaVersionError(
                f"{where} has tunebird tables {ours} but no {version_table} table: it was not written by "
                f"tunebird or is damaged. Use a new database, or import an export of it "
                f"(`tunebird records import FILE --db NEW_DB`)."
            )
        if not create:
            raise RecordNotFoundError(f"no tunebird tuning log at {where} (expected the tables of schema version {SCHEMA_VERSION})")
        logger.info("creating tunebird records schema version %d at %s", SCHEMA_VERSION, where)
        Base.metadata.create_all(conn)
        conn.execute(
            SchemaVersionModel.__table__.insert().values(
                id=1, schema_version=SCHEMA_VERSION, tunebird_version=tunebird_version(), updated_at=utcnow()
            )
        )
        return
    row = conn.execute(select(SchemaVersionModel.schema_version, SchemaVersionModel.tunebird_version)).first()
    if row is None:
        raise SchemaVersionError(f"{where} has an empty {version_table} table: the database is damaged")
    found, written_by = int(row[0]), row[1]
    ours_version = tunebird_version()
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{where} has tunebird records schema version {found} (last written by tunebird {written_by}), "
            f"but this tunebird {ours_version} reads schema version {SCHEMA_VERSION}. Open it with tunebird "
            f"{written_by} or newer; or move its records here: with that tunebird run "
            f"`tunebird records export FILE --db {where}`, then with this one "
            f"`tunebird records import FILE --db OTHER_DB`."
        )
    if found < SCHEMA_VERSION:
        missing = [v for v in range(found, SCHEMA_VERSION) if v not in MIGRATIONS]
        if missing:
            raise SchemaVersionError(
                f"{where} has tunebird records schema version {found}, this tunebird {ours_version} needs "
                f"{SCHEMA_VERSION} and has no upgrade from version {missing[0]}. Export it with tunebird "
                f"{written_by} (`tunebird records export FILE --db {where}`) and import the file with this one."
            )
        if not upgrade:
            raise SchemaVersionError(
                f"{where} has tunebird records schema version {found} (last written by tunebird {written_by}), "
                f"but this tunebird {ours_version} needs schema version {SCHEMA_VERSION}. Upgrade it in place "
                f"with `tunebird records upgrade --db {where}` (or records.open_database(..., upgrade=True)); "
                f"tunebird {written_by} cannot open it afterwards, so export it first if that matters."
            )
        for version in range(found, SCHEMA_VERSION):
            logger.info("upgrading tunebird records schema at %s from version %d to %d", where, version, version + 1)
            MIGRATIONS[version](conn)
        conn.execute(
            SchemaVersionModel.__table__.update().values(
                schema_version=SCHEMA_VERSION, tunebird_version=ours_version, updated_at=utcnow()
            )
        )
    missing_tables = [t for t in Base.metadata.tables if t not in tables]
    if missing_tables and found == SCHEMA_VERSION:
        raise SchemaVersionError(f"{where} is missing the tunebird tables {missing_tables}: the database is damaged")


def schema_version(conn: Connection) -> int | None:
    """The schema version stored in the database, or None when it has no tunebird schema."""
    if SchemaVersionModel.__tablename__ not in inspect(conn).get_table_names():
        return None
    return conn.execute(select(SchemaVersionModel.schema_version)).scalar()

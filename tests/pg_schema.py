"""A PostgreSQL database for one test: a fresh schema on ``$TUNEBIRD_TEST_POSTGRES``, dropped after.

``make test`` with ``CI=true`` starts PostgreSQL (``.ci/postgres.sh``) and sets the
variable; elsewhere the PostgreSQL cases skip unless it is set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url, text

PG_ENV = "TUNEBIRD_TEST_POSTGRES"
IN_CI = os.environ.get("CI", "").lower() == "true"


def postgres_url() -> Iterator[str]:
    """Yield a SQLAlchemy URL whose search path is a new schema (skip, or fail under CI, without PostgreSQL)."""
    base = os.environ.get(PG_ENV)
    if not base:
        msg = f"{PG_ENV} is not set; run `export {PG_ENV}=$(sh .ci/postgres.sh)` to run the PostgreSQL cases"
        if IN_CI:
            pytest.fail(msg + " (CI=true: PostgreSQL must be tested; `make test` sets it)")
        pytest.skip(msg)
    schema = f"tb_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    finally:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

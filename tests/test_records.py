"""The tuning-log database: one suite run against every database URL (SQLite always, PostgreSQL when set).

PostgreSQL cases need ``TUNEBIRD_TEST_POSTGRES`` (a SQLAlchemy URL, printed by
``sh .ci/postgres.sh``); each test gets its own schema, dropped afterwards.
Without it they skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import records
from records import (
    Database,
    DeviceRecord,
    RecordNotFoundError,
    SchemaVersionError,
    SQLDatabase,
    TrialRecord,
    TrialStatus,
    WorkloadRecord,
    config_hash,
    migrate,
)
from records.models import Base
from records.report import best_table, format_seconds, isa_summary
from strategies.ground.errors import ArtifactIntegrityError
from strategies.ir import Graph, Tree, TreeEnsemble, content_hash, from_bytes, to_bytes
from tuner import cli
from tuner.device import Device

from pg_schema import postgres_url

REPO = Path(__file__).resolve().parents[1]

# The schema each SCHEMA_VERSION stands for; see test_schema_matches_its_version.
SCHEMA_DIGESTS = {1: "bc779d3e6e04b1314ce61b06f08a316698fbd8aaea1734dc2053deba205c2ade"}

DEVICE = Device(
    cpu_model="Test CPU 9000", n_cores=4, isa_flags=("avx2", "fma"), cache_sizes=(("L2", 1 << 20),),
    os="Linux", arch="x86_64", versions=(("tvm", "0.27.0"), ("torch", "2.13.0"), ("tunebird", "0.1.0")),
)
OTHER_DEVICE = dataclasses.replace(DEVICE, n_cores=8)
FP = DEVICE.fingerprint


def wh(name: str) -> str:
    """A workload hash for a name."""
    return hashlib.sha256(name.encode()).hexdigest()


W1, W2 = wh("w1"), wh("w2")
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def trial(workload: str = W1, batch: int = 1, latency: float | None = 1e-3, status: str = "ok", device: str = FP,
          **config: object) -> TrialRecord:
    return TrialRecord(workload, device, batch, config or {"latency": latency}, status=status, latency_median_s=latency)


# --------------------------------------------------------------------------- the database URLs


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "tunebird.db")
    else:
        yield from postgres_url()


@pytest.fixture
def db(url: str) -> Iterator[Database]:
    with records.open_database(url) as database:
        database.register_device(DEVICE)
        database.register_workload(WorkloadRecord(W1, "workload one", ("tree_ensemble",)))
        database.register_workload(WorkloadRecord(W2, "workload two", ("scaler", "linear")))
        yield database


def execute(url: str, sql: str, **params: object) -> None:
    """Run raw SQL against the database behind ``url`` (to tamper with it)."""
    engine = create_engine(records.resolve_url(url))
    with engine.begin() as c:
        c.execute(text(sql), params)
    engine.dispose()


def contents(database: Database) -> dict[str, list]:
    """Every record, without database ids, for comparing databases."""
    def strip(r: object) -> object:
        names = {"trial_id", "artifact_id", "cost_model_id", "location"}
        return {k: v for k, v in dataclasses.asdict(r).items() if k not in names}  # type: ignore[call-overload]

    return {
        "devices": [strip(r) for r in database.devices()],
        "workloads": [strip(r) for r in database.workloads()],
        "trials": [strip(r) for r in database.trials()],
        "artifacts": [strip(r) for r in database.artifacts()],
        "cost_models": [strip(r) for r in database.cost_models()],
    }


# --------------------------------------------------------------------------- round trips


def test_every_table_round_trips(db: Database, url: str) -> None:
    t = TrialRecord(
        W1, FP, 64, {"strategy": "gemm", "tile": [4, 8], "threads": 2, "alpha": 0.1},
        status=TrialStatus.ERROR, error="build failed: x", cost_prediction=-0.25,
        started_at=T0, finished_at=T0 + timedelta(seconds=3),
    )
    ok = TrialRecord(W1, FP, 64, {"strategy": "tree"}, latency_median_s=1.5e-4, latency_spread_s=2e-6, started_at=T0)
    stored = db.add_trial(t)
    assert stored.trial_id is not None and dataclasses.replace(stored, trial_id=None) == t
    db.add_trial(ok)
    art = db.store_artifact(workload_hash=W1, device_fingerprint=FP, batch_size=64, config=ok.config,
                            format="tvm-so", payload=b"\x7fELF" + bytes(range(256)), created_at=T0)
    assert (art.size, art.sha256) == (260, hashlib.sha256(b"\x7fELF" + bytes(range(256))).hexdigest())
    cm_old = db.save_cost_model(device_fingerprint=FP, name="xgb", payload=b"old", n_trials=10, created_at=T0)
    cm = db.save_cost_model(device_fingerprint=FP, name="xgb", payload=b"new", n_trials=20)
    before = contents(db)
    with records.open_database(url) as again:  # everything is committed and reads back equal
        assert contents(again) == before
        assert again.get_device(FP) == db.register_device(DEVICE)
        assert again.get_device(FP).to_dict() == DEVICE.to_dict()
        assert Device.from_dict(again.get_device(FP).info) == DEVICE
        assert again.get_workload(W2) == WorkloadRecord(W2, "workload two", ("scaler", "linear"),
                                                        created_at=again.get_workload(W2).created_at)
        assert again.get_trial(W1, FP, 64, t.config_hash) == stored
        assert again.get_trial(W1, FP, 64, "0" * 64) is None
        assert again.trials(W1, FP, 64, TrialStatus.OK)[0].latency_spread_s == 2e-6
        assert again.get_artifact(W1, FP, 64, ok.config_hash) == art
        assert again.fetch_artifact(art) == b"\x7fELF" + bytes(range(256))
        assert again.load_cost_model(FP, "xgb") == (cm, b"new")
        assert again.fetch_cost_model(cm_old) == b"old"
        assert again.load_cost_model(FP, "other") is None
        assert [c.n_trials for c in again.cost_models(FP)] == [10, 20]


def test_same_workload_and_device_registered_twice_is_one_row(db: Database) -> None:
    first = db.get_workload(W1)
    assert db.register_workload(WorkloadRecord(W1, "a different summary")) == first
    assert db.register_device(DEVICE) == db.register_device(DEVICE)
    db.register_device(OTHER_DEVICE)
    assert [w.workload_hash for w in db.workloads()].count(W1) == 1
    assert sorted(d.fingerprint for d in db.devices()) == sorted([FP, OTHER_DEVICE.fingerprint])


def test_same_model_from_two_sources_has_one_workload_hash(db: Database, tmp_path: Path) -> None:
    def graph(threshold: float) -> Graph:
        tree = Tree(feature=[0, -1, -1], threshold=[threshold, 0, 0], left=[1, -1, -1], right=[2, -1, -1],
                    missing_left=[True, False, False], value=[0.0, 1.0, 2.0])
        return Graph(2, (TreeEnsemble(trees=(tree,), n_features=2, n_outputs=1, comparison="<=",
                                      compare_dtype="float32", base_score=0.5),))

    built = graph(0.5)
    (tmp_path / "model.ir").write_bytes(to_bytes(built))
    loaded = from_bytes((tmp_path / "model.ir").read_bytes())
    assert content_hash(loaded) == content_hash(built)
    assert content_hash(graph(0.5000001)) != content_hash(built)
    for g in (built, loaded):
        db.register_workload(WorkloadRecord(content_hash(g), g.summary(), tuple(op.kind for op in g.ops)))
    assert [w.op_kinds for w in db.workloads() if w.workload_hash == content_hash(built)] == [("tree_ensemble",)]


# --------------------------------------------------------------------------- trials


def test_best_trial_ignores_failures_and_takes_the_minimum_per_batch_size(db: Database) -> None:
    db.register_device(OTHER_DEVICE)
    db.add_trials([
        trial(batch=1, latency=3e-3), trial(batch=1, latency=2e-3, k="tie-first"),
        trial(batch=1, latency=2e-3, k="tie-second"),
        trial(batch=1, latency=None, status="error", k="e"), trial(batch=1, latency=None, status="timeout", k="t"),
        trial(batch=1, latency=1e-4, status="invalid", k="wrong answer, fast"),
        trial(batch=1, latency=1e-5, device=OTHER_DEVICE.fingerprint),
        trial(W2, batch=1, latency=1e-6),
        trial(batch=64, latency=10e-3), trial(batch=64, latency=8e-3),
        trial(batch=256, latency=None, status="error"),
    ])
    best = db.best_trials(W1, FP)
    assert sorted(best) == [1, 64] == db.batch_sizes(W1, FP)
    assert best[1].config == {"k": "tie-first"} and best[1].latency_median_s == 2e-3
    assert best[64].latency_median_s == 8e-3
    assert db.best_trial(W1, FP, 64) == best[64]
    assert db.best_trial(W1, FP, 256) is None and db.best_trial(W1, FP, 2) is None
    assert len(db.trials(W1, FP, 1)) == 6 and len(db.trials(W1, status=TrialStatus.ERROR)) == 2


def test_rerun_resumes_instead_of_duplicating(db: Database) -> None:
    first = db.add_trial(trial(latency=5e-3, a=1, b=2))
    again = db.add_trial(TrialRecord(W1, FP, 1, {"b": 2, "a": 1}, latency_median_s=1e-3))
    assert again == first and again.latency_median_s == 5e-3
    assert config_hash({"a": 1, "b": 2}) == first.config_hash != config_hash({"a": 1.0, "b": 2})
    assert db.add_trials([trial(a=1, b=2), trial(a=2), trial(a=2), trial(status="timeout", latency=None, a=3)]) == 2
    assert db.measured_configs(W1, FP, 1) == {config_hash({"a": a, "b": 2} if a == 1 else {"a": a}) for a in (1, 2, 3)}
    assert db.measured_configs(W1, FP, 2) == set()
    assert len(db.trials()) == 3
    assert db.add_trials([]) == 0


def test_a_batch_is_atomic_and_references_must_exist(db: Database) -> None:
    with pytest.raises(RecordNotFoundError, match=f"workload {wh('unregistered')} is not registered"):
        db.add_trials([trial(a=1), trial(wh("unregistered"), a=2)])
    with pytest.raises(RecordNotFoundError, match="register_device"):
        db.add_trial(trial(device=OTHER_DEVICE.fingerprint))
    with pytest.raises(RecordNotFoundError):
        db.store_artifact(workload_hash=wh("nope"), device_fingerprint=FP, batch_size=1, config={}, format="so",
                          payload=b"x")
    assert db.trials() == []


def test_portable_insert_path_skips_duplicates(tmp_path: Path) -> None:
    with SQLDatabase(tmp_path / "t.db") as database:
        database._native_upsert = False  # the path taken by databases without ON CONFLICT
        database.register_device(DEVICE)
        database.register_workload(WorkloadRecord(W1))
        database.register_workload(WorkloadRecord(W1))
        assert database.add_trials([trial(a=1), trial(a=1), trial(a=2)]) == 2
        assert database.add_trials([trial(a=2), trial(a=3)]) == 1
        assert len(database.trials()) == 3 and len(database.workloads()) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latency_median_s": None}, "an ok trial needs latency_median_s"),
        ({"status": "crashed"}, r"status must be one of \['ok', 'invalid', 'error', 'timeout'\], got 'crashed'"),
        ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
        ({"workload_hash": "abc"}, "workload_hash must be a 64-digit lowercase hex SHA-256, got 'abc'"),
        ({"latency_median_s": float("nan")}, "latency_median_s must be a finite number"),
        ({"config": {"x": float("inf")}}, "expected plain JSON data"),
        ({"config_hash": "0" * 64}, "does not match the config"),
    ],
)
def test_invalid_trials_say_what_was_given(kwargs: dict, message: str) -> None:
    base = {"workload_hash": W1, "device_fingerprint": FP, "batch_size": 1, "config": {}, "latency_median_s": 1.0}
    with pytest.raises(ValueError, match=message):
        TrialRecord(**{**base, **kwargs})


# --------------------------------------------------------------------------- artifacts


def test_tampered_or_missing_artifact_file_is_refused(tmp_path: Path) -> None:
    with records.open_database(tmp_path / "t.db") as database:
        database.register_device(DEVICE)
        database.register_workload(WorkloadRecord(W1))
        art = database.store_artifact(workload_hash=W1, device_fingerprint=FP, batch_size=1, config={"s": 1},
                                      format="tvm-so", payload=b"genuine code")
        path = tmp_path / "t.db.artifacts" / art.location
        assert path.read_bytes() == b"genuine code" and art.location == f"{art.sha256[:2]}/{art.sha256}"
        path.write_bytes(b"evil code")
        with pytest.raises(ArtifactIntegrityError) as err:
            database.fetch_artifact(art)
        assert art.sha256 in str(err.value) and hashlib.sha256(b"evil code").hexdigest() in str(err.value)
        assert database.export_jsonl(tmp_path / "out.jsonl")["artifacts_skipped"] == 1
        path.unlink()
        with pytest.raises(ArtifactIntegrityError, match=f"missing; expected SHA-256 {art.sha256}"):
            database.fetch_artifact(art)
        with pytest.raises(ArtifactIntegrityError, match="does not match its SHA-256"):
            database.fetch_artifact(dataclasses.replace(art, location="../../etc/passwd"))
        assert database.store_artifact(workload_hash=W1, device_fingerprint=FP, batch_size=1, config={"s": 1},
                                       format="tvm-so", payload=b"genuine code") == art  # healed
        assert database.fetch_artifact(art) == b"genuine code"


def test_tampered_artifact_in_the_database_is_refused(url: str) -> None:
    with records.open_database(url, artifact_store="database") as database:
        database.register_device(DEVICE)
        database.register_workload(WorkloadRecord(W1))
        art = database.store_artifact(workload_hash=W1, device_fingerprint=FP, batch_size=1, config={"s": 1},
                                      format="tvm-so", payload=b"genuine code")
        cm = database.save_cost_model(device_fingerprint=FP, name="xgb", payload=b"model", n_trials=3)
        assert art.location == "db" and database.fetch_artifact(art) == b"genuine code"
        execute(url, "UPDATE tunebird_payloads SET data = :d", d=b"evil code")
        execute(url, "UPDATE tunebird_cost_models SET payload = :d", d=b"evil model")
        with pytest.raises(ArtifactIntegrityError) as err:
            database.fetch_artifact(art)
        assert art.sha256 in str(err.value) and hashlib.sha256(b"evil code").hexdigest() in str(err.value)
        with pytest.raises(ArtifactIntegrityError, match=cm.sha256):
            database.load_cost_model(FP, "xgb")
        execute(url, "DELETE FROM tunebird_payloads")
        with pytest.raises(ArtifactIntegrityError, match="missing"):
            database.fetch_artifact(art)


def test_artifacts_are_replaced_by_a_rebuild_and_kept_on_import(db: Database) -> None:
    key = {"workload_hash": W1, "device_fingerprint": FP, "batch_size": 1, "config": {"s": 1}, "format": "so"}
    a = db.store_artifact(**key, payload=b"build 1")
    assert db.store_artifact(**key, payload=b"build 2", replace=False) == a
    b = db.store_artifact(**key, payload=b"build 2")
    assert b.artifact_id == a.artifact_id and db.fetch_artifact(b) == b"build 2"
    db.store_artifact(**{**key, "format": "json"}, payload=b"build 2")
    assert [x.format for x in db.artifacts(W1, FP, 1)] == ["so", "json"]
    assert db.get_artifact(W1, FP, 1, config_hash({"s": 1}), "json") is not None


# --------------------------------------------------------------------------- export / import


def _populate(database: Database) -> None:
    database.register_device(OTHER_DEVICE)
    database.add_trials([trial(W, batch, latency=(i + 1) * 1e-4, i=i) for W in (W1, W2) for batch in (1, 8)
                         for i in range(6)])
    database.add_trial(TrialRecord(W1, FP, 1, {"x": "é"}, status="error", error="boom\nline 2", started_at=T0))
    for batch in (1, 8):
        best = database.best_trial(W1, FP, batch)
        database.store_artifact(workload_hash=W1, device_fingerprint=FP, batch_size=batch, config=best.config,
                                format="tvm-so", payload=f"artifact {batch}".encode(), created_at=T0)
    database.save_cost_model(device_fingerprint=FP, name="xgb", payload=bytes(range(256)) * 10, n_trials=24)


def test_export_then_import_is_idempotent_and_complete(db: Database, tmp_path: Path) -> None:
    _populate(db)
    before = contents(db)
    out = tmp_path / "log.jsonl"
    counts = db.export_jsonl(out)
    assert counts == {"device": 2, "workload": 2, "trial": 25, "artifact": 2, "cost_model": 1, "artifacts_skipped": 0}
    assert db.import_jsonl(out) == dict.fromkeys(counts.keys() - {"artifacts_skipped"}, 0)
    assert contents(db) == before
    for store in ("files", "database"):
        with records.open_database(tmp_path / f"fresh-{store}.db", artifact_store=store) as fresh:
            assert fresh.import_jsonl(out) == {k: v for k, v in counts.items() if k != "artifacts_skipped"}
            assert fresh.import_jsonl(out)["trial"] == 0
            assert contents(fresh) == before
            assert [fresh.fetch_artifact(a) for a in fresh.artifacts()] == [b"artifact 1", b"artifact 8"]
            fresh.export_jsonl(tmp_path / "again.jsonl")
        assert (tmp_path / "again.jsonl").read_text().splitlines()[1:] == out.read_text().splitlines()[1:]


def test_import_refuses_what_is_not_a_complete_export(db: Database, tmp_path: Path) -> None:
    _populate(db)
    out = tmp_path / "log.jsonl"
    db.export_jsonl(out)
    lines = out.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="cut short"):
        db.import_jsonl(bad)
    bad.write_text('{"hello": 1}\n')
    with pytest.raises(ValueError, match="not a tunebird records export"):
        db.import_jsonl(bad)
    header = json.loads(lines[0])
    bad.write_text(json.dumps({**header, "format_version": 99}) + "\n")
    with pytest.raises(SchemaVersionError, match="export format version 99"):
        db.import_jsonl(bad)
    art = next(i for i, line in enumerate(lines) if '"kind": "artifact"' in line)
    forged = json.loads(lines[art])
    forged["payload_base64"] = "ZXZpbA=="
    bad.write_text("\n".join([*lines[:art], json.dumps(forged), *lines[art + 1:]]) + "\n")
    with pytest.raises(ArtifactIntegrityError, match=forged["sha256"]):
        db.import_jsonl(bad)


# --------------------------------------------------------------------------- processes

WRITER = r"""
import hashlib, sys
import records
from records import DeviceRecord, TrialRecord, WorkloadRecord
assert "torch" not in sys.modules and "tvm" not in sys.modules, "records must not import torch or tvm"
url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
device = DeviceRecord(**__DEVICE__)
w = hashlib.sha256(name.encode()).hexdigest()
with records.open_database(url) as db:
    db.register_device(device)
    db.register_workload(WorkloadRecord(w, name))
    total, i = 0, 0
    while n < 0 or total < n:
        db.add_trial(TrialRecord(w, device.fingerprint, 1, {"i": i}, latency_median_s=1e-3))
        i += 1
        total += 1
        if n < 0:  # the killed writer: also atomic batches of 7, and say what is committed
            db.add_trials([TrialRecord(w, device.fingerprint, 1, {"i": i + k}, latency_median_s=1e-3) for k in range(7)])
            i += 7
            total += 7
            print(total, flush=True)
""".replace("__DEVICE__", repr({k: v for k, v in dataclasses.asdict(DeviceRecord.from_device(DEVICE)).items()
                                if k != "created_at"}))


def _writer(url: str, name: str, n: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(n)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_writers_lose_and_duplicate_nothing(url: str) -> None:
    procs = [_writer(url, name, 500) for name in ("w1", "w2")]  # both also race to create the schema
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with records.open_database(url) as database:
        for w in (W1, W2):
            trials = database.trials(w)
            assert len(trials) == 500
            assert sorted(t.config["i"] for t in trials) == list(range(500))
        assert len(database.devices()) == 1


def test_a_killed_writer_leaves_every_committed_trial(url: str) -> None:
    p = _writer(url, "w1", -1)
    assert p.stdout is not None
    reported = 0
    for line in p.stdout:
        reported = int(line)
        if reported >= 200:
            break
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert reported >= 200, p.stderr.read() if p.stderr else ""
    with records.open_database(url) as database:
        n = len(database.trials(W1))
        assert n >= reported and n % 8 in (0, 1)  # batches are all or nothing
        assert sorted(t.config["i"] for t in database.trials(W1)) == list(range(n))
        database.add_trial(trial(W1, i=-1))  # and it is writable


def test_sqlite_uses_wal_and_retries_while_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "t.db"
    monkeypatch.setattr(records.engine, "BUSY_TIMEOUT_S", 0.05)  # give up waiting early, so the retry loop runs
    with records.open_database(path) as database:
        database.register_device(DEVICE)
        database.register_workload(WorkloadRecord(W1))
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        assert holder.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        holder.execute("BEGIN IMMEDIATE")
        timer = threading.Timer(0.4, holder.rollback)
        timer.start()
        with caplog.at_level(logging.WARNING, logger="records.sql"):
            database.add_trial(trial(a=1))
        timer.join()
        holder.close()
        assert "is busy (database is locked); retrying" in caplog.text
        assert len(database.trials()) == 1


# --------------------------------------------------------------------------- schema versions


def _schema_digest() -> str:
    parts = []
    for table in sorted(Base.metadata.sorted_tables, key=lambda t: t.name):
        parts.append(table.name)
        for col in table.columns:
            t = col.type
            kind = f"{type(t).__name__}({getattr(t, 'length', None)}, {getattr(t, 'timezone', None)}, {getattr(t, 'enums', None)})"
            fks = sorted(fk.target_fullname for fk in col.foreign_keys)
            parts.append(f"  {col.name} {kind} null={col.nullable} pk={col.primary_key} fk={fks}")
        parts += sorted(f"  {type(c).__name__} {c.name} {sorted(col.name for col in c.columns)}"
                        for c in table.constraints)
        parts += sorted(f"  index {i.name} {[col.name for col in i.columns]} unique={i.unique}" for i in table.indexes)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def test_schema_matches_its_version() -> None:
    digest = _schema_digest()
    assert SCHEMA_DIGESTS.get(migrate.SCHEMA_VERSION) == digest, (
        f"records/models.py no longer matches schema version {migrate.SCHEMA_VERSION}: bump SCHEMA_VERSION in "
        f"records/migrate.py, add a migration from the old version, and set SCHEMA_DIGESTS[new] = {digest!r}"
    )


def test_a_newer_schema_is_refused_with_the_way_out(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    records.open_database(url).close()
    execute(url, "UPDATE tunebird_schema_version SET schema_version = :v, tunebird_version = '9.9.9'",
            v=migrate.SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionError) as err:
        records.open_database(url)
    message = str(err.value)
    assert f"schema version {migrate.SCHEMA_VERSION + 1} (last written by tunebird 9.9.9)" in message
    assert f"reads schema version {migrate.SCHEMA_VERSION}" in message
    assert "tunebird records export FILE" in message and "tunebird records import FILE" in message
    assert cli.main(["records", "--db", url]) == 1
    assert "tunebird: error:" in capsys.readouterr().err


def test_an_older_schema_upgrades_only_when_asked(url: str, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with records.open_database(url) as database:
        database.register_device(DEVICE)
        database.register_workload(WorkloadRecord(W1))
        database.add_trial(trial())
    calls = []

    def v1_to_v2(conn: object) -> None:
        calls.append(conn)

    monkeypatch.setattr(migrate, "SCHEMA_VERSION", migrate.SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionError, match="no upgrade from version 1"):
        records.open_database(url)
    monkeypatch.setattr(migrate, "MIGRATIONS", {1: v1_to_v2})
    with pytest.raises(SchemaVersionError, match="tunebird records upgrade --db"):
        records.open_database(url)
    assert calls == []
    assert cli.main(["records", "upgrade", "--db", url]) == 0
    assert "schema version 2" in capsys.readouterr().out
    assert len(calls) == 1
    with records.open_database(url) as database:
        assert len(database.trials()) == 1
    assert len(calls) == 1


def test_tables_without_a_version_are_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    records.open_database(path).close()
    execute(str(path), "DROP TABLE tunebird_schema_version")
    with pytest.raises(SchemaVersionError, match="no tunebird_schema_version table"):
        records.open_database(path)


# --------------------------------------------------------------------------- opening


def test_default_location_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(records.ENV_VAR, raising=False)
    assert records.resolve_url() == f"sqlite:///{tmp_path / 'tunebird.db'}"
    assert records.resolve_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    monkeypatch.setenv(records.ENV_VAR, str(tmp_path / "env.db"))
    with records.open_database() as database:
        assert database.url == str(tmp_path / "env.db")
    assert (tmp_path / "env.db").exists() and not (tmp_path / "tunebird.db").exists()
    with records.open_database(f"sqlite:///{tmp_path / 'env.db'}", create=False) as database:
        assert database.devices() == []
    with pytest.raises(RecordNotFoundError, match="no tunebird tuning log at"):
        records.open_database(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(RecordNotFoundError, match="does not exist"):
        records.open_database(tmp_path / "no" / "such.db")
    with pytest.raises(ValueError, match="artifact_store must be"):
        records.open_database(tmp_path / "x.db", artifact_store="s3")


def test_in_memory_database_and_closing() -> None:
    database = records.open_database("sqlite://")
    database.register_device(DEVICE)
    database.register_workload(WorkloadRecord(W1))
    art = database.store_artifact(workload_hash=W1, device_fingerprint=FP, batch_size=1, config={}, format="so",
                                  payload=b"p")
    assert art.location == "db" and database.fetch_artifact(art) == b"p"
    database.close()
    with pytest.raises(RuntimeError, match="is closed"):
        database.devices()


# --------------------------------------------------------------------------- the CLI


def test_cli_lists_a_run_and_moves_it(db: Database, url: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _populate(db)
    assert cli.main(["records", "--db", url]) == 0
    out = capsys.readouterr().out
    for expected in ("Devices:", "Test CPU 9000", "Workloads:", "workload one", "Best config per batch size:",
                     W1[:12], FP[:12], '{"i":0}', "100 µs", "6/7", "6/6"):
        assert expected in out, (expected, out)
    rows = best_table(db).rows
    assert (W1[:12], FP[:12], "8", "100 µs", "-", "6/6", '{"i":0}') in rows
    assert len(rows) == 4

    out_file = tmp_path / "moved.jsonl"
    assert cli.main(["records", "export", str(out_file), "--db", url]) == 0
    assert "25 trials" in capsys.readouterr().out
    other = tmp_path / "other.db"
    assert cli.main(["records", "--db", str(other), "import", str(out_file)]) == 0
    assert "25 new trials" in capsys.readouterr().out
    assert cli.main(["records", "import", str(out_file), "--db", str(other)]) == 0
    assert "0 new trials" in capsys.readouterr().out
    assert cli.main(["records", "--db", str(tmp_path / "none.db")]) == 1
    assert "no tunebird tuning log" in capsys.readouterr().err


def test_report_formatting() -> None:
    assert [format_seconds(s) for s in (None, 2.5, 1.5e-3, 1e-4, 3e-9)] == ["-", "2.5 s", "1.5 ms", "100 µs", "3 ns"]
    assert isa_summary(("avx2", "avx512f", "avx512bw", "fma")) == "avx2 fma avx512(2)"
    table = records.report.format_table(records.report.Table("T", ("a", "bb"), (("xxx", "y"),)))
    assert table.splitlines() == ["T:", "  a    bb", "  ---  --", "  xxx  y"]

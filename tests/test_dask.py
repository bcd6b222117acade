"""Batch scoring on a real dask.distributed LocalCluster (2 worker processes, 1 thread each)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

pytest.importorskip("dask.distributed", reason="needs the dask extra: pip install -e '.[dask]'")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402
from dask.distributed import Client, LocalCluster  # noqa: E402

import tuner  # noqa: E402
import tuner.dask as tdask  # noqa: E402
from tests import scale_out_model as so  # noqa: E402
from tuner.scoring import DeviceMismatchError, clear_cache, worker_predictor  # noqa: E402

COLUMNS = [f"f{i}" for i in range(so.N_FEATURES)]


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def expected():
    """Single-process Predictor output on the 2 million rows."""
    p = tuner.load_artifact(so.artifact())
    X = so.all_rows()
    return {"predict": p.predict(X), "predict_proba": p.predict_proba(X)}


def _frame(part: int, n: int = so.PART_ROWS) -> pd.DataFrame:
    return pd.DataFrame(so.rows(part, n), columns=COLUMNS, index=pd.RangeIndex(part * n, (part + 1) * n))


def frame(n_parts: int = so.N_PARTS, n: int = so.PART_ROWS) -> dd.DataFrame:
    """The rows as a Dask DataFrame built on the workers (nothing large goes through the graph)."""
    meta = pd.DataFrame({c: np.empty(0, np.float32) for c in COLUMNS})
    return dd.from_map(_frame, range(n_parts), n=n, meta=meta, divisions=[i * n for i in range(n_parts)] + [n_parts * n - 1])


def array(n_parts: int = so.N_PARTS, n: int = so.PART_ROWS) -> da.Array:
    blocks = [da.from_delayed(dask.delayed(so.rows)(i, n), shape=(n, so.N_FEATURES), dtype=np.float32)
              for i in range(n_parts)]
    return da.concatenate(blocks)


def test_frame_scoring_matches_single_process(client, expected):
    rows = frame()
    proba = tdask.predict(rows, artifact=so.artifact(), method="predict_proba")
    label = tdask.predict(rows, artifact=so.artifact(), method="predict")
    assert proba.columns.tolist() == ["0", "1", "2"] and label.columns.tolist() == ["predict"]
    got_proba, got_label = dask.compute(proba, label)  # one pass over the rows
    for out, got in ((proba, got_proba), (label, got_label)):
        assert len(got) == 2_000_000
        assert got.index.equals(pd.RangeIndex(2_000_000))
        assert got.columns.tolist() == out.columns.tolist()
        assert got.dtypes.tolist() == out.dtypes.tolist()  # the meta says what the partitions hold
    assert got_proba.dtypes.tolist() == [expected["predict_proba"].dtype] * 3
    assert np.array_equal(got_proba.to_numpy(), expected["predict_proba"])
    assert got_label["predict"].dtype == so.model().classes_.dtype
    assert np.array_equal(got_label["predict"].to_numpy(), expected["predict"])


def test_array_scoring_matches_single_process(client, expected):
    rows = array()
    outs = {m: tdask.predict(rows, artifact=so.artifact(), method=m) for m in ("predict_proba", "predict")}
    for method, out in outs.items():
        assert out.dtype == expected[method].dtype and out.shape == expected[method].shape
    for method, got in zip(outs, dask.compute(*outs.values())):
        assert got.dtype == expected[method].dtype
        assert np.array_equal(got, expected[method])


def test_each_worker_loads_the_artifact_once(client):
    digest = hashlib.sha256(so.artifact().read_bytes()).hexdigest()
    tdask.predict(array(4, 1000), artifact=so.artifact()).compute()

    def loaded():
        from tuner import scoring

        return sorted(key[0] for key in scoring._CACHE)

    per_worker = client.run(loaded)
    assert len(per_worker) == 2
    assert all(keys == [digest] for keys in per_worker.values())


def test_wrong_sha256_is_refused(client):
    with pytest.raises(tuner.ArtifactIntegrityError, match="SHA-256"):
        tdask.predict(frame(2, 100), artifact=so.artifact(), sha256="0" * 64)
    blob = so.artifact().read_bytes()
    damaged = blob[:-1] + bytes([blob[-1] ^ 1])
    digest = hashlib.sha256(blob).hexdigest()  # the digest of the bytes the driver meant to send
    with pytest.raises(tuner.ArtifactIntegrityError, match="SHA-256"):
        client.submit(_load_afresh, damaged, digest, pure=False).result()


def _load_afresh(blob: bytes, digest: str) -> bool:
    """Load on a worker that has forgotten what it loaded (a cached predictor was checked when it loaded)."""
    clear_cache()
    worker_predictor(blob, digest)
    return True


def test_artifact_of_another_device_is_refused_or_falls_back(client, tmp_path):
    other = so.with_device(so.artifact(), tmp_path / "other.tb", cpu_model="Another CPU", n_cores=64)
    with pytest.raises(DeviceMismatchError, match="built for device .* but this worker is device"):
        tdask.predict(array(2, 500), artifact=other, method="predict").compute()
    got = tdask.predict(frame(1, 500), artifact=other, method="predict_proba",
                        on_device_mismatch="default").compute()
    default = tuner.compile(so.model())  # the untuned default the worker falls back to
    assert np.array_equal(got.to_numpy(), default.predict_proba(so.all_rows(1, 500)))


def test_model_with_a_database(client, tmp_path):
    db = tmp_path / "empty.db"
    with pytest.warns(UserWarning, match="nothing is tuned"):
        out = tdask.predict(array(2, 500), so.model(), db=str(db), method="predict")
    assert np.array_equal(out.compute(), so.model().predict(so.all_rows(2, 500)))
    with pytest.raises(tuner.NotTunedError):
        tdask.predict(array(2, 500), so.model(), db=str(db), strict=True)

"""Distributed tuning on a real dask.distributed LocalCluster (2 worker processes, 1 thread each).

``tuner.tune(..., client=client)`` measures on the workers of this device, one
candidate per worker at a time, and this process records every result once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("dask.distributed", reason="needs the dask extra: pip install -e '.[dask]'")

from dask.distributed import Client, LocalCluster, get_task_stream  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402

import records  # noqa: E402
import tuner  # noqa: E402
from pg_schema import postgres_url  # noqa: E402
from tolerances import assert_same_labels  # noqa: E402
from tuner.dask_measure import DaskMeasurer, NoMatchingWorkerError, device_resource  # noqa: E402
from tuner.device import current_device  # noqa: E402

BACKENDS = ("torch", "torchscript")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return RandomForestClassifier(n_estimators=12, max_depth=4, random_state=0).fit(X, y), X


def _cluster() -> tuple[LocalCluster, Client]:
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    return cluster, Client(cluster)


@pytest.fixture(scope="module")
def client():
    cluster, c = _cluster()
    yield c
    c.close()
    cluster.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield str(tmp_path / "tunebird.db")
    else:
        yield from postgres_url()


def _trial_keys(url: str) -> list[tuple]:
    with records.open_database(url) as db:
        return [(t.workload_hash, t.batch_size, json.dumps(t.config, sort_keys=True), t.status.value)
                for t in db.trials()]


def _measure_tasks(stream) -> list[dict]:
    return [t for t in stream.data if "_measure_remote" in t["key"]]


def test_every_candidate_is_measured_once_on_the_workers_and_recorded_once(client, url, data):
    model, X = data
    with get_task_stream(client) as stream:
        report = tuner.tune(model, X, db=url, batch_sizes=(1, 256), trials=12, client=client, progress=False,
                            backends=BACKENDS)
    keys = _trial_keys(url)
    assert report.trials_measured == len(keys) == 12
    assert len({k[:3] for k in keys}) == 12, "a config was recorded twice"
    tasks = _measure_tasks(stream)
    assert len(tasks) == 12, "every candidate is measured exactly once on the cluster"
    assert len({t["worker"] for t in tasks}) == 2, "both workers measure"
    assert {json.loads(k[2])["threads"] for k in keys} == {1}, "candidates use the cores a worker declares"
    # the winners' artifacts were built on the workers too, and serve the model exactly
    predictor = tuner.load(model, db=url, strict=True)
    assert_same_labels(predictor.predict(X), model.predict(X), what="tuned on the cluster")


def test_only_workers_of_the_tuned_device_measure(client, tmp_path, data):
    model, X = data
    DaskMeasurer(client)  # registers the device plugin
    resource = device_resource(current_device().fingerprint)
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    other = workers[0]

    async def set_units(dask_worker, units):
        await dask_worker.set_resources(**{resource: units})

    # as far as the scheduler knows, the first worker now runs on another device
    client.run(set_units, units=0, workers=[other])
    try:
        with get_task_stream(client) as stream:
            tuner.tune(model, X, db=str(tmp_path / "t.db"), batch_sizes=(256,), trials=6, client=client,
                       progress=False, backends=BACKENDS)
        tasks = _measure_tasks(stream)
        assert len(tasks) == 6
        assert {t["worker"] for t in tasks} == {workers[1]}
    finally:
        client.run(set_units, units=1, workers=[other])


def test_no_worker_of_the_device_is_a_clear_error(client):
    from dataclasses import replace

    elsewhere = replace(current_device(), cpu_model="Another CPU 9000")
    with pytest.raises(NoMatchingWorkerError, match="none of the 2 Dask workers runs on the device"):
        DaskMeasurer(client, device=elsewhere, wait_s=0.5)


def test_a_worker_killed_mid_measurement_costs_one_retry_and_no_committed_trial(tmp_path, data):
    model, X = data
    url = str(tmp_path / "killed.db")
    cluster, client = _cluster()
    killed: dict = {}

    def kill_one_mid_measurement() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                committed = _trial_keys(url)
            except Exception:  # noqa: BLE001 - the database may not exist yet
                committed = []
            if len(committed) >= 3:
                busy = [w for w, keys in client.processing().items() if any("_measure_remote" in k for k in keys)]
                if busy:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                    killed["committed"] = committed
                    os.kill(pid, signal.SIGKILL)
                    killed["worker"] = busy[0]
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_mid_measurement, daemon=True)
    try:
        killer.start()
        report = tuner.tune(model, X, db=url, batch_sizes=(1, 256), trials=16, client=client, progress=False,
                            backends=BACKENDS)
        killer.join(5)
    finally:
        client.close()
        cluster.close()
    assert "worker" in killed, "no worker was killed mid-measurement"
    keys = _trial_keys(url)
    assert report.trials_measured == len(keys) == 16
    assert len({k[:3] for k in keys}) == 16, "a config was recorded twice"
    assert set(killed["committed"]) <= set(keys), "a trial committed before the kill was lost"
    # the candidate in flight on the killed worker ran again elsewhere: nothing failed
    assert {k[3] for k in keys} == {"ok"}


def test_cli_tune_with_a_scheduler_address(client, tmp_path, data, capsys):
    import joblib

    from tuner import cli

    model, X = data
    path = tmp_path / "forest.joblib"
    joblib.dump(model, path)
    db = str(tmp_path / "cli.db")
    address = client.scheduler.address
    with get_task_stream(client) as stream:
        assert cli.main(["tune", str(path), "--db", db, "--trials", "4", "--batch-size", "256",
                         "--backends", "torch", "--scheduler", address, "-q"]) == 0
    assert "4 trials measured" in capsys.readouterr().out
    assert len(_measure_tasks(stream)) == 4 == len(_trial_keys(db))



def test_candidates_whose_inputs_were_lost_are_sent_again(client, data):
    """Inputs are scattered to the workers; when every worker holding them dies, Dask cancels the
    measurements that need them: they are sent again with fresh inputs, not lost."""
    import strategies
    from strategies.compile import resolve_config
    from tuner.measure import make_task_inputs

    model, X = data
    graph = strategies.convert(model).graph
    inputs = make_task_inputs(graph, X, 32)
    configs = [resolve_config(graph, {"backend": "torch", "threads": 1, "strategy": s})
               for s in ("gemm", "tree_traversal")]
    measurer = DaskMeasurer(client)
    client.cancel(measurer._scattered(inputs))  # as if the workers that held them died
    results = measurer.measure_many(graph, [(c, None) for c in configs], inputs)
    assert [r.status for r in results] == ["ok", "ok"], [r.error for r in results]
    measurer.close()

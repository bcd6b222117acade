"""The measurer role on a Dask cluster: candidates built and timed on the workers of the tuned device.

``tuner.tune(model, client=client)`` (``tunebird tune --scheduler ADDRESS``)
measures with a :class:`DaskMeasurer` instead of a local worker process.  Needs
the ``dask`` extra.

* **Only the tuned device measures.**  A worker plugin gives every worker (those
  that join later, or are restarted, included) one unit of the resource
  ``tunebird-device-<fingerprint>``; each measurement and build asks for one
  unit.  So a candidate runs only on a worker whose device fingerprint equals
  the tuning device's, and each worker measures one candidate at a time.
* **With the cores the worker declares.**  The candidates' thread counts are
  capped at the smallest ``nthreads`` of those workers.
* **Crash-safe.**  On the worker, each candidate runs in the same isolated
  worker process as a local run (:class:`tuner.measure.Measurer`): a crashing
  candidate is an ``error`` trial, not a dead Dask worker.  A Dask worker that
  dies mid-measurement (killed, OOM) costs that one candidate: the scheduler
  runs it again on another matching worker.
* **Recorded once.**  Workers never write to the records database: the tuning
  process records each candidate's result once, as it arrives, and each run
  measures each config once.  The workers need no database access; several
  machines tuning into one log share a PostgreSQL database.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from typing import Any, Mapping, Sequence

from strategies.ground.device import Device, current_device
from strategies.ir import Graph, Op, as_graph, from_bytes, to_bytes

from .measure import MeasureResult, MeasureSettings, Measurer, TaskInputs

log = logging.getLogger(__name__)

RESOURCE_PREFIX = "tunebird-device-"
PLUGIN_NAME = "tunebird-device"
_GRACE_S = 30.0  # beyond a measurement's own timeout: scheduling, data transfer, a retry's start
_INPUT_ATTEMPTS = 3  # how often a candidate is sent again after the workers holding its inputs died


def device_resource(fingerprint: str) -> str:
    """The Dask worker resource a worker of device ``fingerprint`` holds one unit of."""
    return RESOURCE_PREFIX + fingerprint[:16]


class NoMatchingWorkerError(RuntimeError):
    """No worker of the Dask cluster runs on the device being tuned."""


def _plugin_class() -> type:
    from distributed.diagnostics.plugin import WorkerPlugin

    class DevicePlugin(WorkerPlugin):
        """Gives a worker one unit of its device's resource (``device_resource``)."""

        name = PLUGIN_NAME
        idempotent = True  # registering again (another tuning run) leaves the workers' resources alone

        async def setup(self, worker: Any) -> None:
            await worker.set_resources(**{device_resource(current_device().fingerprint): 1})

    return DevicePlugin


# --------------------------------------------------------------------------- worker side

_WORKER_LOCK = threading.Lock()
_WORKER_MEASURERS: dict[tuple, Measurer] = {}


def _worker_measurer(settings: MeasureSettings) -> Measurer:
    key = tuple(sorted(vars(settings).items()))
    m = _WORKER_MEASURERS.get(key)
    if m is None:
        for old in _WORKER_MEASURERS.values():
            old.close()
        _WORKER_MEASURERS.clear()
        m = _WORKER_MEASURERS[key] = Measurer(settings)
    return m


def _check_device(fingerprint: str) -> None:
    here = current_device().fingerprint
    if here != fingerprint:  # the resource rules this out; a misconfigured resource must not time elsewhere
        raise RuntimeError(f"this worker's device fingerprint is {here[:16]}, the tuned device's {fingerprint[:16]}")


def _measure_remote(graph_bytes: bytes, config: Mapping[str, Any], inputs: TaskInputs, settings: MeasureSettings,
                    best_s: float | None, timeout_s: float | None, fingerprint: str) -> MeasureResult:
    _check_device(fingerprint)
    with _WORKER_LOCK:
        return _worker_measurer(settings).measure(from_bytes(graph_bytes), config, inputs, best_s=best_s,
                                                  timeout_s=timeout_s)


def _build_remote(graph_bytes: bytes, config: Mapping[str, Any], outputs: Sequence[str], settings: MeasureSettings,
                  timeout_s: float | None, fingerprint: str) -> bytes:
    _check_device(fingerprint)
    with _WORKER_LOCK:
        return _worker_measurer(settings).build(from_bytes(graph_bytes), config, outputs, timeout_s=timeout_s)


# --------------------------------------------------------------------------- the tuning process


def _wait(futures: list, timeout: float | None) -> None:
    """Wait until every future is done or ``timeout`` passes; cancelled futures and the timeout are the
    callers' to read off each future's status, not errors here."""
    from distributed import wait
    from distributed.client import FuturesCancelledError

    try:
        wait(futures, timeout=timeout)
    except (FuturesCancelledError, TimeoutError):
        pass


class DaskMeasurer:
    """Measures candidates on the Dask workers whose device is ``device`` (default: this machine's).

    ``parallelism`` candidates (one per matching worker) are measured at once
    (:meth:`measure_many`).  Raises :class:`NoMatchingWorkerError` when no worker
    of the cluster runs on the device.
    """

    def __init__(self, client: Any, settings: MeasureSettings | None = None, device: Device | None = None,
                 *, wait_s: float = 30.0):
        self.client = client
        self.settings = settings or MeasureSettings()
        self.device = device or current_device()
        self.resource = device_resource(self.device.fingerprint)
        client.register_plugin(_plugin_class()(), name=PLUGIN_NAME)
        self.workers = self._matching_workers(wait_s)
        self._inputs: collections.OrderedDict[str, Any] = collections.OrderedDict()

    def _matching_workers(self, wait_s: float) -> dict[str, int]:
        deadline = time.monotonic() + wait_s
        while True:
            info = self.client.scheduler_info(n_workers=-1)["workers"]
            found = {addr: int(w.get("nthreads", 1)) for addr, w in info.items()
                     if w.get("resources", {}).get(self.resource)}
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if not found:
            raise NoMatchingWorkerError(
                f"none of the {len(info)} Dask workers runs on the device being tuned "
                f"({self.device.summary()}, fingerprint {self.device.fingerprint[:16]}): start workers on "
                f"machines of that device, or tune on the machine itself without a client")
        log.info("measuring on %d Dask workers of this device (%s)", len(found), ", ".join(sorted(found)))
        return found

    @property
    def parallelism(self) -> int:
        """How many candidates are measured at once: one per matching worker."""
        return len(self.workers)

    @property
    def max_threads(self) -> int:
        """The most threads a candidate may use: the fewest any matching worker declares."""
        return max(1, min(self.workers.values()))

    def _submit(self, fn: Any, *args: Any) -> Any:
        return self.client.submit(fn, *args, resources={self.resource: 1}, pure=False)

    def _scattered(self, inputs: TaskInputs) -> Any:
        fut = self._inputs.get(inputs.key)
        if fut is None:
            # on every worker: a worker that dies does not take a job's only copy with it
            fut = self._inputs[inputs.key] = self.client.scatter(inputs, broadcast=True, hash=False)
            while len(self._inputs) > 4:
                self._inputs.popitem(last=False)[1].release()
        self._inputs.move_to_end(inputs.key)
        return fut

    def measure(self, task: Graph | Sequence[Op], config: Mapping[str, Any], inputs: TaskInputs, *,
                best_s: float | None = None, timeout_s: float | None = None) -> MeasureResult:
        """One candidate on a matching worker (see :meth:`tuner.measure.Measurer.measure`)."""
        return self.measure_many(task, [(config, best_s)], inputs, timeout_s=timeout_s)[0]

    def measure_many(self, task: Graph | Sequence[Op], items: Sequence[tuple[Mapping[str, Any], float | None]],
                     inputs: TaskInputs, *, timeout_s: float | None = None) -> list[MeasureResult]:
        """Several candidates (config, best latency known) of one task at once; results in order.  Never
        raises for a bad candidate: a worker lost too often or a wait past the timeout is a result.  A
        candidate whose inputs were lost with the workers that held them runs again on freshly sent ones."""
        timeout = self.settings.timeout_s if timeout_s is None else min(self.settings.timeout_s, timeout_s)
        graph_bytes = to_bytes(as_graph(task))
        results: list[MeasureResult | None] = [None] * len(items)
        todo = list(range(len(items)))
        for _ in range(_INPUT_ATTEMPTS):
            data = self._scattered(inputs)
            futures = {i: self._submit(_measure_remote, graph_bytes, dict(items[i][0]), data, self.settings,
                                       items[i][1], timeout, self.device.fingerprint) for i in todo}
            _wait(list(futures.values()), timeout + _GRACE_S)
            todo = []
            for i, fut in futures.items():
                if fut.status == "finished":
                    results[i] = fut.result()
                elif fut.status == "pending":
                    fut.cancel()
                    results[i] = MeasureResult("timeout", error=f"no result from the cluster within {timeout:.0f} s")
                elif fut.cancelled():  # its inputs were lost with the workers that held them
                    todo.append(i)
                else:
                    exc = fut.exception()
                    results[i] = MeasureResult("error", error=f"on the cluster: {type(exc).__name__}: {exc}"[:2000])
            if not todo:
                break
            log.info("%d candidates lost their inputs with a worker; sending them again", len(todo))
            self._forget(inputs.key)
        for i in todo:
            results[i] = MeasureResult("error", error="cancelled by the cluster: its inputs were lost "
                                                      f"{_INPUT_ATTEMPTS} times (workers dying)")
        return [r for r in results if r is not None]

    def _forget(self, key: str) -> None:
        fut = self._inputs.pop(key, None)
        if fut is not None:
            fut.release()

    def build(self, task: Graph | Sequence[Op], config: Mapping[str, Any], outputs: Sequence[str], *,
              timeout_s: float | None = None) -> bytes:
        """Build a winner's artifact on a matching worker (see :meth:`tuner.measure.Measurer.build`)."""
        timeout = self.settings.timeout_s if timeout_s is None else timeout_s
        fut = self._submit(_build_remote, to_bytes(as_graph(task)), dict(config), tuple(outputs), self.settings,
                           timeout, self.device.fingerprint)
        _wait([fut], timeout + _GRACE_S if math.isfinite(timeout) else None)
        if fut.status == "pending":
            fut.cancel()
            raise TimeoutError(f"build not done on the cluster within {timeout:.0f} s")
        if fut.status != "finished":
            exc = fut.exception()
            if isinstance(exc, (TimeoutError, RuntimeError)):
                raise exc
            raise RuntimeError(f"build failed on the cluster: {type(exc).__name__}: {exc}")
        return fut.result()

    def close(self) -> None:
        """Release the inputs held on the cluster (the workers' measurement processes stay for the next run)."""
        for fut in self._inputs.values():
            fut.release()
        self._inputs.clear()

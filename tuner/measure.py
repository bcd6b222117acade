"""Build, validate and time candidates in a worker process, so a crash or a hang costs one trial.

A :class:`Measurer` owns one spawned worker.  Each :meth:`Measurer.measure`
sends the task (serialised IR), the config and a key to the inputs; the worker
builds the program, checks its output against the reference values computed
here, then times it: warm-up, then timed calls on rotating input batches until
both ``min_repeats`` and ``min_seconds`` are reached.  A candidate whose last
warm-up call is ``hopeless_ratio`` times slower than the best known for its
job is recorded from that one call.  A worker that dies or
overruns the timeout is killed and restarted, and the trial is recorded as
``error`` or ``timeout``.  Failures are data: measure never raises for a bad
candidate.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Mapping, Sequence

import numpy as np

from strategies import reference
from strategies.ir import Graph, Op, as_graph, content_hash, from_bytes, to_bytes

from .checks import VALID_RTOL, check_outputs  # noqa: F401  - re-exported

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class MeasureResult:
    """What one trial produced.  ``status``: ok | invalid | error | timeout."""

    status: str
    median_s: float | None = None
    spread_s: float | None = None
    build_s: float | None = None
    repeats: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class MeasureSettings:
    warmup: int = 2
    min_repeats: int = 5
    min_seconds: float = 0.2
    max_repeats: int = 200
    timeout_s: float = 120.0
    # a candidate whose last warm-up call is this many times slower than the job's best so far is timed
    # by that call alone (it cannot win, and at large batches one call of a slow program can take seconds)
    hopeless_ratio: float = 4.0
    preload: tuple[str, ...] = ()  # modules the worker imports first (tests register fake backends)
    # the worker is killed (the candidate fails) when its resident memory passes this share of the machine's
    # (Linux): a candidate whose matrices do not fit fails in seconds instead of swapping or meeting the OOM killer
    max_memory_fraction: float = 0.5


@dataclass
class TaskInputs:
    """Input batches for one (task, batch size) and the reference outputs of the first one."""

    key: str
    batches: list[np.ndarray]
    expected: np.ndarray
    output: str = "out"


LARGE_BATCH_BYTES = 64 << 20  # as the bench: larger batches rotate over 2


def make_task_inputs(task: Graph | Sequence[Op], X: np.ndarray, batch_size: int, *, n_batches: int = 4,
                     seed: int = 0, output: str = "out") -> TaskInputs:
    """``n_batches`` batches of ``batch_size`` rows drawn from ``X`` (the task's input), plus reference outputs;
    batches over ``LARGE_BATCH_BYTES`` rotate over 2 (they miss every cache anyway, and the worker holds them all)."""
    graph = as_graph(task)
    if batch_size * X[:1].nbytes > LARGE_BATCH_BYTES:
        n_batches = min(n_batches, 2)
    rng = np.random.default_rng(seed)
    batches = [np.ascontiguousarray(X[rng.integers(0, len(X), size=batch_size)]) for _ in range(n_batches)]
    first = batches[0]  # float32 rows (a model served float32) are checked against the float64 reference
    v = reference.evaluate(graph, first.astype(np.float64) if first.dtype == np.float32 else first, output=output)
    key = f"{content_hash(graph)[:16]}-{batch_size}-{seed}-{len(X)}-{output}"
    return TaskInputs(key, batches, v, output)


# --------------------------------------------------------------------------- worker side


def _worker_main(conn: Any, preload: tuple[str, ...]) -> None:
    import importlib

    # the worker's log lines (compilers' output captured by strategies.ground.quiet included) go to its
    # stderr, which the parent logs at DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("tunebird.thirdparty").setLevel(logging.DEBUG)

    for name in preload:
        importlib.import_module(name)
    from strategies.compile import CompiledTask

    inputs: dict[str, tuple[list[np.ndarray], np.ndarray, str]] = {}
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        kind = msg[0]
        if kind == "stop":
            return
        if kind == "inputs":
            _, key, batches, expected, output = msg
            inputs.clear()  # one input set at a time keeps the worker's memory bounded
            inputs[key] = (batches, expected, output)
            conn.send(("ok",))
            continue
        if kind == "build":
            _, graph_bytes, config, outputs = msg
            try:
                conn.send(("built", _build_artifact(CompiledTask, graph_bytes, config, outputs)))
            except Exception:  # noqa: BLE001 - a failed build is reported, not raised
                conn.send(("failed", traceback.format_exc(limit=6)[-2000:]))
            continue
        _, ops_bytes, config, key, settings, cutoff_s = msg
        try:
            conn.send(("result", _run_trial(CompiledTask, ops_bytes, config, inputs[key], settings, cutoff_s)))
        except Exception:  # noqa: BLE001 - any failure of a candidate is a result
            conn.send(("result", MeasureResult("error", error=traceback.format_exc(limit=6)[-2000:])))


def _build_artifact(compiled_task: Any, graph_bytes: bytes, config: Mapping[str, Any], outputs: Sequence[str]) -> bytes:
    from .artifact import task_artifact_bytes

    graph = from_bytes(graph_bytes)
    task = compiled_task(graph if isinstance(graph, Graph) else tuple(graph), config)
    for out in outputs:
        task.program(out)
    return task_artifact_bytes(task)


def _run_trial(compiled_task: Any, ops_bytes: bytes, config: Mapping[str, Any], inp: Any,
               settings: MeasureSettings, cutoff_s: float | None = None) -> MeasureResult:
    batches, expected, output = inp
    graph = from_bytes(ops_bytes)
    t0 = time.perf_counter()
    task = compiled_task(graph if isinstance(graph, Graph) else tuple(graph), config)
    task.program(output)
    run = task.run_chunked  # as a plan runs it: in chunks of the config's batch_size
    first = run(batches[0], output)
    build_s = time.perf_counter() - t0
    problem = check_outputs(first, expected)
    if problem:
        return MeasureResult("invalid", build_s=build_s, error=problem)
    for i in range(settings.warmup):
        t = time.perf_counter()
        run(batches[i % len(batches)], output)
        once = time.perf_counter() - t
        if i == settings.warmup - 1 and cutoff_s is not None and once > cutoff_s:  # warm by now
            return MeasureResult("ok", once, None, build_s, 1)
    times: list[float] = []
    start = time.perf_counter()
    i = 0
    while len(times) < settings.max_repeats and (
        len(times) < settings.min_repeats or time.perf_counter() - start < settings.min_seconds
    ):
        x = batches[i % len(batches)]
        t = time.perf_counter()
        run(x, output)
        times.append(time.perf_counter() - t)
        i += 1
    arr = np.array(times)
    q1, med, q3 = np.percentile(arr, [25, 50, 75])
    return MeasureResult("ok", float(med), float(q3 - q1), build_s, len(times))


# --------------------------------------------------------------------------- parent side


class Measurer:
    """Measures candidates one at a time in a persistent worker process (restarted after a failure).

    The worker is ``python -m tuner.measure`` talking over a socket pair, so
    nothing of the caller's ``__main__`` is re-imported.  Not thread-safe.  Use
    as a context manager, or call :meth:`close`.
    """

    def __init__(self, settings: MeasureSettings | None = None):
        self.settings = settings or MeasureSettings()
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._inputs_key: str | None = None

    def __enter__(self) -> "Measurer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _start(self) -> None:
        parent, child = socket.socketpair()
        cmd = [sys.executable, "-m", "tuner.measure", str(child.fileno()), *self.settings.preload]
        # the worker imports what this process can import (tests add their folder to sys.path)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        # the worker's stderr (compilers' C++ log lines, third-party warnings) goes to this module's
        # logger at DEBUG: shown with ``tunebird -v``, never on a user's terminal otherwise
        self._proc = subprocess.Popen(cmd, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, env=env,
                                      stderr=subprocess.PIPE)
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=5)
        self._stderr_thread = threading.Thread(target=_forward_stderr, args=(self._proc.stderr, self._stderr_tail),
                                               daemon=True, name="tunebird-worker-stderr")
        self._stderr_thread.start()
        child.close()
        self._conn = Connection(parent.detach())
        self._inputs_key = None

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)
        if self._proc is not None and self._proc.stderr is not None:
            self._stderr_thread.join(2)  # the pipe ends with the process: its last lines are logged
            self._proc.stderr.close()
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None
        self._inputs_key = None

    def _last_words(self) -> str:
        tail = list(getattr(self, "_stderr_tail", ()))
        return ("; its last output: " + " | ".join(tail[-3:]))[:600] if tail else ""

    def close(self) -> None:
        """Stop the worker (politely, then by force)."""
        if self._proc is not None and self._proc.poll() is None and self._conn is not None:
            try:
                self._conn.send(("stop",))
                self._proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()

    def _ensure(self, inputs: TaskInputs | None, timeout: float) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self._kill()
            self._start()
        if inputs is not None and self._inputs_key != inputs.key:
            self._conn.send(("inputs", inputs.key, inputs.batches, inputs.expected, inputs.output))
            self._recv(timeout)
            self._inputs_key = inputs.key

    def build(self, task: Graph | Sequence[Op], config: Mapping[str, Any], outputs: Sequence[str], *,
              timeout_s: float | None = None) -> bytes:
        """Build ``config``'s programs for ``outputs`` in the worker and return them as task-artifact bytes.

        Raises:
            TimeoutError: not built within ``timeout_s`` (the worker is killed).
            RuntimeError: the build failed or the worker died (the message says how).
        """
        timeout = self.settings.timeout_s if timeout_s is None else timeout_s
        try:
            self._ensure(None, timeout)
            self._conn.send(("build", to_bytes(as_graph(task)), dict(config), tuple(outputs)))
            kind, payload = self._recv(timeout)
        except TimeoutError:
            self._kill()
            raise TimeoutError(f"build not done within {timeout:.0f} s; worker killed") from None
        except MemoryLimitError as e:
            self._kill()
            raise RuntimeError(f"build failed: {e}") from None
        except (EOFError, OSError) as e:
            code = self._proc.wait(10) if self._proc is not None else None
            self._kill()
            raise RuntimeError(f"worker process died while building (exit code {code}): {type(e).__name__}"
                               + self._last_words()) from None
        if kind != "built":
            raise RuntimeError(f"build failed: {payload}")
        return payload

    def _recv(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        limit = self._memory_limit()
        while True:
            left = deadline - time.monotonic()
            if self._conn.poll(max(0.0, min(left, 0.2 if limit else left))):
                return self._conn.recv()
            if left <= 0:
                raise TimeoutError
            rss = _resident_bytes(self._proc.pid) if limit else None
            if rss is not None and rss > limit:
                raise MemoryLimitError(f"the worker used {rss / 2**30:.1f} GiB, over the limit of "
                                       f"{limit / 2**30:.1f} GiB (MeasureSettings.max_memory_fraction); worker killed")

    def _memory_limit(self) -> int | None:
        total = _physical_bytes()
        fraction = getattr(self.settings, "max_memory_fraction", None)
        return int(total * fraction) if total and fraction else None

    def measure(self, task: Graph | Sequence[Op], config: Mapping[str, Any], inputs: TaskInputs, *,
                best_s: float | None = None, timeout_s: float | None = None) -> MeasureResult:
        """Build, validate and time ``config`` for the task (its graph, or a chain of ops); never raises
        for a bad candidate.

        ``best_s``: the best latency known for this task and batch; a candidate far slower
        (``settings.hopeless_ratio``) is timed by a single call.  ``timeout_s`` shortens the
        settings' timeout (a run's deadline): the worker is killed when it passes.
        """
        cutoff = best_s * self.settings.hopeless_ratio if best_s and math.isfinite(best_s) else None
        timeout = self.settings.timeout_s if timeout_s is None else min(self.settings.timeout_s, timeout_s)
        try:
            self._ensure(inputs, timeout)
            self._conn.send(("trial", to_bytes(as_graph(task)), dict(config), inputs.key, self.settings, cutoff))
            return self._recv(timeout)[1]
        except TimeoutError:
            self._kill()
            return MeasureResult("timeout", error=f"no result within {timeout:.0f} s; worker killed")
        except MemoryLimitError as e:
            self._kill()
            return MeasureResult("error", error=str(e))
        except (EOFError, OSError) as e:
            code = self._proc.wait(10) if self._proc is not None else None
            self._kill()
            return MeasureResult("error", error=f"worker process died (exit code {code}): {type(e).__name__}"
                                               + self._last_words())


class MemoryLimitError(RuntimeError):
    """The worker's resident memory passed ``MeasureSettings.max_memory_fraction`` of the machine's."""


def _physical_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _resident_bytes(pid: int) -> int | None:
    """Resident set size of process ``pid`` (Linux ``/proc``; None elsewhere or once it has ended)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _forward_stderr(stream: Any, tail: "collections.deque[str]") -> None:
    worker_log = logging.getLogger(__name__ + ".worker")
    try:
        for line in iter(stream.readline, b""):
            text = line.decode(errors="replace").rstrip()
            if text:
                tail.append(text)
                worker_log.debug("%s", text)
    except (OSError, ValueError):  # the pipe closed with the worker
        pass


if __name__ == "__main__":
    # Run the worker from the importable module so pickled results name tuner.measure, not __main__.
    from tuner.measure import _worker_main as worker_main

    worker_main(Connection(int(sys.argv[1])), tuple(sys.argv[2:]))

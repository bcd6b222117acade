"""TVM process facts shared by the ``tvm`` and ``tvm-tir`` backends: host target, threads, alignment.

Threads.  TVM keeps its worker pool *and* its notion of "max concurrency" per
calling thread (``thread_local`` in ``src/runtime/thread_pool.cc`` and
``threading_backend.cc``).  ``TVMBackendParallelLaunch`` runs a parallel loop
serially whenever that thread's max concurrency is 1, which is the default on a
2-core VM (half the hardware threads, unless ``TVM_NUM_THREADS`` /
``OMP_NUM_THREADS`` say otherwise, read at each launch).  So a program with
``threads = k > 1`` runs each call through :class:`ParallelCall`:
``runtime.config_threadpool(-3, k, cpus)`` (mode -3: every worker may run on
every CPU of the process's own affinity mask, so nothing gets pinned) sets the
calling thread's max concurrency to ``len(cpus)``, creates its pool at that
size if it has none, and uses ``k`` workers; afterwards
``config_threadpool(-3, default, [])`` puts the thread's max concurrency back
to TVM's default (0: read the environment) and its worker count to the default
(the empty CPU list makes TVM's affinity calls fail harmlessly, so no thread's
affinity changes).  About 3 us each way.  No environment variable is touched
and no other thread is affected.  A pool cannot grow once created: if the
calling thread already has one with fewer workers (someone used TVM's pool
there at its default size first), the call runs on a private helper thread
instead (logged once).

The two global functions are called through the TVM-FFI C API
(``_tir_native.ThreadPoolControl``, ctypes), not through ``import tvm``: a
process that only runs saved ``tvm-tir`` kernels never imports tvm.  With tvm
imported too, it is the same runtime library and the same per-thread pools.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_SHARE_ALL_CORES = -3  # ThreadGroup::kSpecifyThreadShareAllCore
from ._tir_native import ALIGNMENT, aligned_empty  # noqa: E402,F401  - re-exported


def usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return list(range(os.cpu_count() or 1))


def usable_cores() -> int:
    return len(usable_cpus())


@functools.lru_cache(maxsize=4)
def host_target(cl_opt: tuple[str, ...] = ()):
    """The LLVM target of this CPU (``mcpu`` from LLVM's host detection; "native" is not honoured)."""
    import tvm
    from tvm.target import codegen

    spec: dict[str, Any] = {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu(), "num-cores": usable_cores()}
    if cl_opt:
        spec["cl-opt"] = list(cl_opt)
    return tvm.target.Target(spec)


def _default_concurrency() -> int:
    """TVM's own default thread count (``MaxConcurrency`` without a configured value)."""
    for var in ("TVM_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var)
        if value:
            try:
                return max(1, int(value))
            except ValueError:
                pass
    return max(1, (os.cpu_count() or 2) // 2)


class ParallelCall:
    """``call(fn, *args)``: run a packed call whose parallel loops use ``threads`` TVM workers,
    then restore the calling thread's defaults; returns what ``fn`` returns.

    A thread whose TVM pool already exists with fewer workers (someone used TVM's
    pool there before, at its default size) cannot be resized upwards; such calls
    go to a private helper thread whose pool this class creates at full size.
    """

    def __init__(self, threads: int):
        from ._tir_native import thread_pool

        self.threads = threads
        control = thread_pool()
        cpus = usable_cpus()
        self._configure = control.configure(_SHARE_ALL_CORES, threads, cpus)
        self._restore_calls: dict[int, Any] = {}
        self._control = control
        self._pool_size = control.num_threads
        self._want = min(threads, len(cpus))

    def _restore(self) -> None:
        default = _default_concurrency()
        call = self._restore_calls.get(default)
        if call is None:
            call = self._restore_calls[default] = self._control.configure(_SHARE_ALL_CORES, default, [])
        call()

    def __call__(self, fn: Any, *args: Any) -> Any:
        self._configure()
        try:
            sized = self._pool_size() >= self._want
            if sized:
                return fn(*args)
        finally:
            self._restore()
        return _helper_thread().submit(self._on_helper, fn, args).result()

    def _on_helper(self, fn: Any, args: tuple) -> Any:
        self._configure()
        try:
            return fn(*args)
        finally:
            self._restore()


@functools.lru_cache(maxsize=1)
def _helper_thread():
    from concurrent.futures import ThreadPoolExecutor

    log.warning(
        "this thread's TVM worker pool was created with fewer workers than a program asks for; "
        "multi-threaded TVM calls from it run on a helper thread (~50 us extra per call)"
    )
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunebird-tvm")


def as_aligned(x: np.ndarray) -> np.ndarray:
    """``x`` itself when C-contiguous, aligned and writeable, else an aligned copy (DLPack, as TVM reads it,
    cannot mark a tensor read-only: it refuses read-only arrays, such as a pandas frame's ``to_numpy()``)."""
    if x.flags.c_contiguous and x.flags.writeable and x.ctypes.data % ALIGNMENT == 0:
        return x
    out = aligned_empty(x.shape, x.dtype)
    out[...] = x
    return out


def metaschedule_build(mod, target, _params):  # noqa: ANN001, ANN201 - MetaSchedule's f_build signature
    """MetaSchedule builder that skips the default's import of tvm.s_tir.tensor_intrin (35-110 s here)."""
    from tvm.driver import build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)

"""TVM process facts shared by the tvm and tvm-tir backends: the host target and the thread pool.

TVM sizes its worker pool once, from ``TVM_NUM_THREADS``, when the pool is first
used, and defaults to half the hardware threads (one, on a 2-core VM); later it
can only lower the count (``runtime.config_threadpool``).  ``ensure_pool`` starts
the pool at the number of usable cores unless the user set ``TVM_NUM_THREADS``,
restoring the environment afterwards; ``use_threads`` then picks the count per call.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from typing import Iterator

_lock = threading.Lock()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def host_target():
    """The LLVM target of this CPU (``mcpu`` from LLVM's host detection; "native" is not honoured)."""
    import tvm
    from tvm.target import codegen

    return tvm.target.Target({"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu(), "num-cores": usable_cores()})


@functools.lru_cache(maxsize=1)
def ensure_pool() -> int:
    """Start TVM's thread pool with every usable core (or the user's TVM_NUM_THREADS); return its size."""
    import tvm

    with _lock:
        had = "TVM_NUM_THREADS" in os.environ
        old = os.environ.get("TVM_NUM_THREADS")
        if not had:
            os.environ["TVM_NUM_THREADS"] = str(usable_cores())
        try:
            size = int(tvm.runtime.num_threads())
        finally:
            if not had:
                os.environ.pop("TVM_NUM_THREADS", None)
            elif old is not None:
                os.environ["TVM_NUM_THREADS"] = old
    return size


def _config(n: int) -> None:
    import tvm

    tvm.get_global_func("runtime.config_threadpool")(1, n)


@contextlib.contextmanager
def use_threads(n: int) -> Iterator[None]:
    """Run TVM kernels with ``n`` workers inside the block (capped at the pool size).

    The pool normally stays at its full size; a program that wants fewer workers
    resizes it for the call and restores it after (~50 us each way, so
    single-threaded programs are generated without parallel loops instead).
    """
    size = ensure_pool()
    n = max(1, min(n, size))
    if n == size:
        yield
        return
    with _lock:
        _config(n)
        try:
            yield
        finally:
            _config(size)


def metaschedule_build(mod, target, _params):  # noqa: ANN001, ANN201 - MetaSchedule's f_build signature
    """MetaSchedule builder that skips the default's import of tvm.s_tir.tensor_intrin (35-110 s here)."""
    from tvm.driver import build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


ALIGNMENT = 64  # TVM's generated code assumes 64-byte aligned buffers


def aligned_empty(shape: tuple[int, ...], dtype) -> "np.ndarray":  # noqa: ANN001
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    import numpy as np

    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.empty(nbytes + ALIGNMENT, np.uint8)
    off = (-buf.ctypes.data) % ALIGNMENT
    return buf[off : off + nbytes].view(dtype).reshape(shape)


def as_aligned(x: "np.ndarray") -> "np.ndarray":
    """``x`` itself when C-contiguous and aligned, else an aligned copy."""
    if x.flags.c_contiguous and x.ctypes.data % ALIGNMENT == 0:
        return x
    out = aligned_empty(x.shape, x.dtype)
    out[...] = x
    return out

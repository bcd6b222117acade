"""Run a saved ``tvm-tir`` kernel without importing tvm: ctypes over TVM's two runtime libraries.

``import tvm`` brings in torch (through tvm_ffi) and the 259 MB compiler
library, ~2.5 s.  A saved kernel needs neither: ``kernel.so`` exports
``__tvm_ffi_main`` (TVM-FFI's safe-call ABI, ``int f(void* self, const
TVMFFIAny* args, int32_t num_args, TVMFFIAny* result)``) and imports
``TVMFFIErrorSetRaisedFromCStrParts`` from ``libtvm_ffi.so``; its calls into
TVM's runtime (workspace allocation, the parallel launcher) go through weak
function-pointer variables (``__TVMBackendParallelLaunch``, ...) that TVM's
library loader fills in when it opens the library.  This module does the same
with ``ctypes``: it loads ``libtvm_ffi.so`` (RTLD_GLOBAL, so the kernel's import
resolves) and ``libtvm_runtime.so`` from the installed ``tvm_ffi`` / ``tvm``
packages without importing them, opens the kernel, fills the context variables
the way ``CreateLibraryModule`` (tvm-ffi ``src/ffi/extra/library_module.cc``)
does with the symbols ``src/runtime/module.cc`` registers, and calls
``__tvm_ffi_main`` with ``DLTensor*`` arguments.  Only numpy, ctypes and the
standard library are imported.

When tvm is imported in the same process (before or after), both use the very
same two libraries (``dlopen`` of an already-loaded file returns it; paths are
taken from ``/proc/self/maps`` when a copy is mapped already), so the thread
pool, the workspace allocator and the global function table are shared.

Calls.  The argument list (``TVMFFIAny[2 + tables]``), the ``DLTensor`` of
every argument and the shapes are built once; per call only the input's and
output's data pointers and their row counts are written (a handful of stores
from Python, then one ctypes call that releases the GIL).  Blocks of prebuilt
arguments are taken from a small free list, so concurrent calls from several
Python threads never share one.  NumPy's data pointer is read straight from the
array object (``PyArrayObject.data``, the field NumPy's ``PyArray_DATA`` macro
reads; its offset is verified at import, else ``ndarray.ctypes.data`` is used).
A batch-1 call of a trivial kernel took ~0.75 us here (on a busy 2-core VM; the
ctypes call itself ~0.4 us), ~0.1 us more than tvm_ffi's packed call of the same
kernel.  ``self`` is NULL and the result slot starts as None, as in
``LibraryModuleObj::GetFunction``.

Errors.  A non-zero return is turned into a Python exception carrying TVM's
error kind and message (``TVMFFIErrorMoveFromRaised``): ``ValueError`` /
``TypeError`` ... as tvm_ffi maps them, else :class:`NativeRuntimeError`.

Thread pool.  :class:`ThreadPoolControl` calls TVM's global functions
``runtime.config_threadpool`` and ``runtime.NumThreads`` through the C API
(``TVMFFIFunctionGetGlobal`` / ``TVMFFIFunctionCall``, the CPU list an
``ffi.Array`` built by the global function of that name); ``_tvm_runtime.ParallelCall``
uses it.
"""

from __future__ import annotations

import builtins
import ctypes
import functools
import importlib.util
import os
import struct
import sys
import threading
from ctypes import POINTER, byref, c_char_p, c_double, c_int, c_int32, c_int64, c_size_t, c_uint8
from ctypes import c_uint16, c_uint32, c_uint64, c_void_p
from pathlib import Path
from typing import Any, Sequence

import numpy as np

FFI_LIBRARY = "libtvm_ffi.so"
RUNTIME_LIBRARY = "libtvm_runtime.so"
ENTRY = "__tvm_ffi_main"  # what module["main"] looks up in a library module

# The context symbols TVM's runtime registers (TVM_INIT_CONTEXT_FUNC in src/runtime/module.cc): the
# library loader sets each variable "__<name>" the library defines to the address of function <name>.
CONTEXT_FUNCTIONS = (
    "TVMFFIFunctionCall",
    "TVMFFIErrorSetRaisedFromCStr",
    "TVMFFIEnvModLookupFromImports",
    "TVMFFIHandleInitOnce",
    "TVMBackendAllocWorkspace",
    "TVMBackendFreeWorkspace",
    "TVMBackendParallelLaunch",
    "TVMBackendParallelBarrier",
)
# Symbols that only make sense with a tvm Module object behind the library (imported modules, packed
# calls resolved through them): such a library is refused instead of crashing on a NULL context.
_NEEDS_MODULE = ("__tvm_ffi__library_bin", "__TVMFFIEnvModLookupFromImports")

# TVMFFITypeIndex (tvm/ffi/c_api.h)
K_NONE, K_INT, K_BOOL, K_FLOAT, K_OPAQUE_PTR = 0, 1, 2, 3, 4
K_DLTENSOR_PTR, K_RAW_STR = 7, 8
K_STATIC_OBJECT_BEGIN, K_FUNCTION, K_ARRAY = 64, 68, 71
_OBJECT_HEADER = 24  # sizeof(TVMFFIObject): ref counts, type index, deleter
_KDLCPU = 1
# DLDataTypeCode: kDLInt, kDLUInt, kDLFloat, kDLBool
_DTYPE_CODES = {"i": 0, "u": 1, "f": 2, "b": 6}


class NativeRuntimeError(RuntimeError):
    """TVM's runtime libraries or a kernel library could not be loaded or used."""


# ---------------------------------------------------------------- C layouts (dlpack.h, tvm/ffi/c_api.h)
class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", c_int32), ("device_id", c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", c_void_p), ("device", DLDevice), ("ndim", c_int32), ("dtype", DLDataType),
        ("shape", POINTER(c_int64)), ("strides", POINTER(c_int64)), ("byte_offset", c_uint64),
    ]


class _AnyValue(ctypes.Union):
    _fields_ = [("v_int64", c_int64), ("v_float64", c_double), ("v_ptr", c_void_p)]


class TVMFFIAny(ctypes.Structure):
    _anonymous_ = ("value",)
    _fields_ = [("type_index", c_int32), ("zero_padding", c_uint32), ("value", _AnyValue)]


class TVMFFIByteArray(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("size", c_size_t)]


class TVMFFIErrorCell(ctypes.Structure):  # follows the object header of an Error object
    _fields_ = [("kind", TVMFFIByteArray), ("message", TVMFFIByteArray), ("backtrace", TVMFFIByteArray)]


assert ctypes.sizeof(DLTensor) == 48 and ctypes.sizeof(TVMFFIAny) == 16


# ---------------------------------------------------------------- NumPy data pointers, fast
def _array_data_words() -> ctypes.Array | None:
    """``words[id(a) >> 3]`` is ``a``'s data pointer (``PyArrayObject.data``), if that is verified to hold here.

    A ctypes view of the address space that starts at the offset of ``data`` in an ndarray
    object (after ``PyObject_HEAD``: refcount and type in default CPython builds), so one
    subscript reads the field (~100 ns; ``ndarray.ctypes.data`` costs ~900 ns).  Objects are
    8-byte aligned, so ``8 * (id(a) >> 3) == id(a)``.
    """
    offset = 2 * ctypes.sizeof(c_void_p)
    try:
        words = (c_uint64 * (1 << 56)).from_address(offset)
        probes = [np.empty((3, 5), np.float32), np.zeros(7)[2:], np.arange(12, dtype=np.int32).reshape(3, 4)[1:]]
        if all(id(a) % 8 == 0 and words[id(a) >> 3] == a.ctypes.data for a in probes):
            return words
    except Exception:  # pragma: no cover - exotic interpreter
        pass
    return None  # pragma: no cover


_DATA_WORDS = _array_data_words()


def data_pointer(a: np.ndarray) -> int:
    if _DATA_WORDS is not None:
        return _DATA_WORDS[id(a) >> 3]
    return a.ctypes.data  # pragma: no cover - only when the direct read failed its check


# ---------------------------------------------------------------- the runtime libraries
def _mapped_library(basename: str) -> str | None:
    """Path of ``basename`` if it is already mapped into this process (by tvm, or by us)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rstrip("\n").split(None, 5)[-1]
                if path.endswith("/" + basename) and os.path.isfile(path):
                    return path
    except OSError:  # pragma: no cover - not Linux
        pass
    return None


def _package_library(package: str, basename: str) -> str:
    """``<package>/lib/<basename>`` of an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / "lib" / basename
        if path.is_file():
            return str(path)
    raise NativeRuntimeError(
        f"cannot find {basename}: the {package!r} package is not installed"
        + (f" (looked in {[str(Path(p) / 'lib') for p in locations]})" if locations else "")
    )


class _Runtime:
    """``libtvm_ffi.so`` and ``libtvm_runtime.so``, loaded once per process."""

    def __init__(self) -> None:
        ffi_path = _mapped_library(FFI_LIBRARY) or _package_library("tvm_ffi", FFI_LIBRARY)
        runtime_path = _mapped_library(RUNTIME_LIBRARY) or _package_library("tvm", RUNTIME_LIBRARY)
        try:
            # the FFI library first and global: libtvm_runtime.so and every kernel import from it
            self.ffi = ctypes.CDLL(ffi_path, mode=ctypes.RTLD_GLOBAL)
            self.runtime = ctypes.CDLL(runtime_path, mode=ctypes.RTLD_GLOBAL)
        except OSError as e:
            raise NativeRuntimeError(f"cannot load TVM's runtime libraries: {e}") from e
        self.paths = (ffi_path, runtime_path)
        f = self.ffi
        f.TVMFFIErrorMoveFromRaised.argtypes = [POINTER(c_void_p)]
        f.TVMFFIErrorMoveFromRaised.restype = None
        f.TVMFFIObjectDecRef.argtypes = [c_void_p]
        f.TVMFFIObjectDecRef.restype = c_int
        f.TVMFFIFunctionGetGlobal.argtypes = [POINTER(TVMFFIByteArray), POINTER(c_void_p)]
        f.TVMFFIFunctionGetGlobal.restype = c_int
        self.function_call = f.TVMFFIFunctionCall  # (handle, TVMFFIAny* args, int32 n, TVMFFIAny* result)
        self.function_call.restype = c_int
        self.context = {}  # name -> address, as registered by TVM's runtime
        for name in CONTEXT_FUNCTIONS:
            for lib in (self.runtime, self.ffi):
                try:
                    self.context[name] = ctypes.cast(getattr(lib, name), c_void_p).value
                    break
                except AttributeError:
                    continue
            else:
                raise NativeRuntimeError(f"TVM's runtime ({runtime_path}) does not export {name}")

    def raise_error(self, rc: int, what: str) -> None:
        """Raise the error TVM-FFI recorded for a call that returned ``rc`` != 0."""
        handle = c_void_p()
        self.ffi.TVMFFIErrorMoveFromRaised(byref(handle))
        if not handle.value:
            raise NativeRuntimeError(f"{what} failed (return code {rc}) without recording an error")
        try:
            cell = TVMFFIErrorCell.from_address(handle.value + _OBJECT_HEADER)
            kind = _text(cell.kind) or "RuntimeError"
            message = _text(cell.message)
        finally:
            self.ffi.TVMFFIObjectDecRef(handle)
        raise _exception(kind, message)


def _text(b: TVMFFIByteArray) -> str:
    return ctypes.string_at(b.data, b.size).decode("utf-8", "replace") if b.data and b.size else ""


def _exception(kind: str, message: str) -> BaseException:
    """tvm_ffi raises the Python builtin exception named by the error kind, else a RuntimeError."""
    cls = getattr(builtins, kind, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls(message)
    return NativeRuntimeError(f"{kind}: {message}")


_LOCK = threading.Lock()
_RUNTIME: _Runtime | None = None


def runtime() -> _Runtime:
    global _RUNTIME
    if _RUNTIME is None:
        with _LOCK:
            if _RUNTIME is None:
                _RUNTIME = _Runtime()
    return _RUNTIME


# ---------------------------------------------------------------- TVM-FFI objects and global functions
class FFIObject:
    """An owned reference to a TVM-FFI object (released when this goes away)."""

    __slots__ = ("handle", "type_index", "_rt")

    def __init__(self, handle: int, type_index: int, rt: _Runtime):
        self.handle, self.type_index, self._rt = handle, type_index, rt

    def __del__(self) -> None:
        handle, self.handle = self.handle, 0
        if handle:
            try:
                self._rt.ffi.TVMFFIObjectDecRef(c_void_p(handle))
            except Exception:  # pragma: no cover - interpreter shutdown
                pass


def _pack(args: Sequence[Any], keep: list) -> ctypes.Array:
    packed = (TVMFFIAny * max(1, len(args)))()
    for slot, a in zip(packed, args):
        if a is None:
            slot.type_index = K_NONE
        elif isinstance(a, bool):
            slot.type_index, slot.v_int64 = K_BOOL, int(a)
        elif isinstance(a, int):
            slot.type_index, slot.v_int64 = K_INT, a
        elif isinstance(a, float):
            slot.type_index, slot.v_float64 = K_FLOAT, a
        elif isinstance(a, str):
            raw = c_char_p(a.encode())
            keep.append(raw)
            slot.type_index, slot.v_ptr = K_RAW_STR, ctypes.cast(raw, c_void_p).value
        elif isinstance(a, FFIObject):
            keep.append(a)
            slot.type_index, slot.v_ptr = a.type_index, a.handle
        else:
            raise TypeError(f"cannot pass {type(a).__name__} through the TVM-FFI C API here")
    return packed


class GlobalFunction:
    """A global function of TVM's registry (``TVMFFIFunctionGetGlobal``), called through ``TVMFFIFunctionCall``.

    Arguments: None, bool, int, float, str (raw C strings, converted by the callee) and
    :class:`FFIObject`.  Returns None / bool / int / float, or an :class:`FFIObject`.
    """

    def __init__(self, name: str):
        rt = runtime()
        raw = name.encode()
        handle = c_void_p()
        key = TVMFFIByteArray(ctypes.cast(c_char_p(raw), c_void_p), len(raw))
        rc = rt.ffi.TVMFFIFunctionGetGlobal(byref(key), byref(handle))
        if rc:
            rt.raise_error(rc, f"looking up {name!r}")
        if not handle.value:
            raise NativeRuntimeError(f"TVM's runtime has no global function {name!r}")
        self.name = name
        self.function = FFIObject(handle.value, K_FUNCTION, rt)

    def __call__(self, *args: Any) -> Any:
        return self.prepared(*args)()

    def prepared(self, *args: Any) -> "PreparedCall":
        """This call with ``args`` packed once, for calls on a hot path."""
        return PreparedCall(self, args)


class PreparedCall:
    """``call()``: one global function with fixed arguments (packed once; the objects stay referenced)."""

    __slots__ = ("_function", "_keep", "_packed", "_n", "_rt", "_handle", "_name")

    def __init__(self, function: GlobalFunction, args: Sequence[Any]):
        self._function = function  # keeps the function object alive
        self._keep: list = []
        self._packed = _pack(args, self._keep)
        self._n = c_int32(len(args))
        self._rt = function.function._rt
        self._handle = c_void_p(function.function.handle)
        self._name = function.name

    def __call__(self) -> Any:
        result = TVMFFIAny()
        rc = self._rt.function_call(self._handle, self._packed, self._n, byref(result))
        if rc:
            self._rt.raise_error(rc, self._name)
        return _unpack(result, self._rt)


def _unpack(value: TVMFFIAny, rt: _Runtime) -> Any:
    t = value.type_index
    if t == K_NONE:
        return None
    if t == K_INT:
        return value.v_int64
    if t == K_BOOL:
        return bool(value.v_int64)
    if t == K_FLOAT:
        return value.v_float64
    if t >= K_STATIC_OBJECT_BEGIN:
        return FFIObject(value.v_ptr, t, rt)
    raise NativeRuntimeError(f"unexpected TVM-FFI return value of type index {t}")


@functools.lru_cache(maxsize=None)
def string_array(items: tuple[str, ...]) -> FFIObject:
    """An ``ffi.Array`` of strings (kept for the process's lifetime; callers pass it many times)."""
    array = GlobalFunction("ffi.Array")(*items)
    if not isinstance(array, FFIObject) or array.type_index != K_ARRAY:
        raise NativeRuntimeError("ffi.Array did not return an Array")
    return array


class ThreadPoolControl:
    """``runtime.config_threadpool`` / ``runtime.NumThreads`` of TVM's runtime, without tvm's Python package.

    ``configure(mode, threads, cpus)`` returns a prepared call (arguments packed once);
    ``num_threads()`` is the calling thread's pool size.
    """

    def __init__(self) -> None:
        self._config = GlobalFunction("runtime.config_threadpool")
        self.num_threads = GlobalFunction("runtime.NumThreads").prepared()

    def configure(self, mode: int, threads: int, cpus: Sequence[int]) -> PreparedCall:
        return self._config.prepared(mode, threads, string_array(tuple(str(c) for c in cpus)))


@functools.lru_cache(maxsize=1)
def thread_pool() -> ThreadPoolControl:
    return ThreadPoolControl()


# ---------------------------------------------------------------- kernels
def _elf_machine(header: bytes) -> int:
    return struct.unpack_from("<H", header, 18)[0]


@functools.lru_cache(maxsize=1)
def _host_machine() -> int | None:
    try:
        with open(sys.executable, "rb") as f:
            head = f.read(64)
        return _elf_machine(head) if head[:4] == b"\x7fELF" else None
    except OSError:  # pragma: no cover
        return None


def _check_elf(path: Path) -> None:
    """Refuse a file ``dlopen`` would map but cannot use: a truncated library is a SIGBUS, not an error.

    Checks the ELF header (64-bit, little-endian, shared object, this machine) and that every
    segment and the section header table lie inside the file.  (It does not detect bit flips
    inside the file: artifacts carry content hashes for that.)
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
        bad = None
        if len(head) < 64 or head[:4] != b"\x7fELF":
            bad = "no ELF header"
        elif head[4] != 2 or head[5] != 1:
            bad = "not a 64-bit little-endian ELF file"
        else:
            e_type, machine = struct.unpack_from("<HH", head, 16)
            phoff, shoff = struct.unpack_from("<QQ", head, 32)
            phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 54)
            host = _host_machine()
            if e_type != 3:  # ET_DYN
                bad = f"ELF type {e_type}, not a shared object"
            elif host is not None and machine != host:
                bad = f"built for ELF machine {machine}, this one is {host}"
            elif phentsize < 56 or phnum == 0 or phoff + phnum * phentsize > size:
                bad = "its program headers lie outside the file (truncated?)"
            elif shnum and shoff + shnum * shentsize > size:
                bad = "its section headers lie outside the file (truncated?)"
            else:
                f.seek(phoff)
                table = f.read(phnum * phentsize)
                for i in range(phnum):
                    offset, _vaddr, _paddr, filesz = struct.unpack_from("<QQQQ", table, i * phentsize + 8)
                    if offset + filesz > size:
                        bad = f"segment {i} lies outside the file (truncated?)"
                        break
    if bad:
        raise NativeRuntimeError(f"{str(path)!r} is not a usable shared library ({bad}): the file is corrupt")


def _load_library(path: Path) -> ctypes.CDLL:
    if not path.is_file():
        raise FileNotFoundError(f"tvm-tir kernel library {str(path)!r} does not exist")
    _check_elf(path)
    runtime()  # the kernel imports TVMFFIErrorSetRaisedFromCStrParts from libtvm_ffi.so (loaded globally)
    try:
        return ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL)  # ctypes adds RTLD_NOW: unresolved -> error here
    except OSError as e:
        raise NativeRuntimeError(f"cannot load tvm-tir kernel library {str(path)!r}: {e}") from e


def _has_symbol(lib: ctypes.CDLL, name: str) -> bool:
    try:
        c_void_p.in_dll(lib, name)
        return True
    except ValueError:
        return False


def _dtype_fields(dtype: np.dtype) -> tuple[int, int]:
    code = _DTYPE_CODES.get(dtype.kind)
    if code is None:
        raise TypeError(f"no DLPack data type for {dtype}")
    return code, dtype.itemsize * 8


ALIGNMENT = 64  # TVM's generated code assumes 64-byte aligned buffers (Relax VM inputs are checked)


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.empty(nbytes + ALIGNMENT, np.uint8)
    off = (-buf.ctypes.data) % ALIGNMENT
    return buf[off : off + nbytes].view(dtype).reshape(shape)


def _aligned_copy(a: np.ndarray) -> np.ndarray:
    out = aligned_empty(a.shape, a.dtype)  # as tvm.runtime.tensor() would allocate it
    out[...] = a
    return out


class NativeKernel:
    """``kernel(x, out)`` runs ``main(x, out, *tables)`` of a TVM-exported kernel library.

    ``x`` is ``(n, x_columns)`` of ``x_dtype`` and ``out`` is ``(n, out_columns)`` of
    ``out_dtype``, both C-contiguous: the caller checks that; the kernel itself
    checks shapes and types again and raises TVM's error if they do not match
    what it was built for.  The tables are copied once, 64-byte aligned.
    """

    def __init__(
        self, path: str | os.PathLike, tables: Sequence[np.ndarray], *, x_columns: int, x_dtype: Any,
        out_columns: int, out_dtype: Any,
    ):
        self.path = Path(path)
        rt = runtime()
        lib = _load_library(self.path)
        try:
            entry = lib[ENTRY]
        except AttributeError:
            raise NativeRuntimeError(
                f"{str(self.path)!r} has no {ENTRY}: it is not a TVM-exported kernel with a 'main' function"
            ) from None
        for name in _NEEDS_MODULE:
            if _has_symbol(lib, name):
                raise NativeRuntimeError(
                    f"{str(self.path)!r} defines {name}: it needs a tvm Module behind it (imported modules or "
                    "packed calls); load it with tvm.runtime.load_module"
                )
        # what TVM's library loader does (ContextSymbolRegistry::InitContextSymbols)
        for name, address in rt.context.items():
            try:
                c_void_p.in_dll(lib, "__" + name).value = address
            except ValueError:
                continue
        entry.restype = c_int
        self._lib, self._rt, self._entry = lib, rt, entry
        self._tables = [_aligned_copy(np.ascontiguousarray(t)) for t in tables]
        self._x = (int(x_columns), np.dtype(x_dtype))
        self._out = (int(out_columns), np.dtype(out_dtype))
        self._nargs = c_int32(2 + len(self._tables))
        self._free: list = [self._block()]
        self._call = self._make_call()

    def _block(self) -> tuple:
        """One prebuilt argument list: Any[2 + tables], then DLTensors, then shapes, then the result Any."""
        specs = [((0, self._x[0]), self._x[1], None), ((0, self._out[0]), self._out[1], None)]
        specs += [(t.shape, t.dtype, t) for t in self._tables]
        n = len(specs)
        any_size, dl_size = ctypes.sizeof(TVMFFIAny), ctypes.sizeof(DLTensor)
        dl_at = n * any_size
        shape_at = dl_at + n * dl_size
        result_at = shape_at + 8 * sum(max(1, len(s[0])) for s in specs)
        size = result_at + any_size
        words = (c_int64 * (size // 8))()
        base = ctypes.addressof(words)
        shape_pos = shape_at
        shape_words = []
        for i, (shape, dtype, table) in enumerate(specs):
            arg = TVMFFIAny.from_buffer(words, i * any_size)
            dl = DLTensor.from_buffer(words, dl_at + i * dl_size)
            arg.type_index, arg.v_ptr = K_DLTENSOR_PTR, base + dl_at + i * dl_size
            code, bits = _dtype_fields(dtype)
            dl.device = DLDevice(_KDLCPU, 0)
            dl.ndim = len(shape)
            dl.dtype = DLDataType(code, bits, 1)
            dims = (c_int64 * max(1, len(shape))).from_buffer(words, shape_pos)
            dims[: len(shape)] = [int(s) for s in shape]
            dl.shape = ctypes.cast(base + shape_pos, POINTER(c_int64))
            dl.strides = None  # compact row-major
            dl.byte_offset = 0
            dl.data = data_pointer(table) if table is not None else None
            shape_words.append(shape_pos // 8)
            shape_pos += 8 * max(1, len(shape))
        # word indices written per call: x.data, x.shape[0], out.data, out.shape[0]
        self._slots = (dl_at // 8, shape_words[0], (dl_at + dl_size) // 8, shape_words[1])
        return words, c_void_p(base + result_at)

    def _make_call(self):
        free, new, entry, nargs, rt = self._free, self._block, self._entry, self._nargs, self._rt
        xd, xr, od, orows = self._slots
        words = _DATA_WORDS
        path = str(self.path)

        def call(x: np.ndarray, out: np.ndarray) -> None:  # x and out have the same number of rows
            try:
                block = free.pop()
            except IndexError:  # another thread is calling this kernel right now
                block = new()
            w, result = block
            w[xd] = words[id(x) >> 3]
            w[od] = words[id(out) >> 3]
            w[xr] = w[orows] = len(x)
            rc = entry(None, w, nargs, result)
            free.append(block)
            if rc:
                rt.raise_error(rc, f"tvm-tir kernel {path}")

        def call_slow(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - see _array_data_words
            try:
                block = free.pop()
            except IndexError:
                block = new()
            w, result = block
            w[xd], w[od] = x.ctypes.data, out.ctypes.data
            w[xr] = w[orows] = len(x)
            rc = entry(None, w, nargs, result)
            free.append(block)
            if rc:
                rt.raise_error(rc, f"tvm-tir kernel {path}")

        return call if words is not None else call_slow

    def __call__(self, x: np.ndarray, out: np.ndarray) -> None:
        self._call(x, out)

    @property
    def call(self):
        """The bare call function (one Python frame less than calling the kernel object)."""
        return self._call

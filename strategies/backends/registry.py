"""The table of backends, each imported only when first asked for.

A deployed process that runs one tvm-tir plan imports the tvm-tir backend
alone (no torch); :func:`all_backends` imports every backend (the tuner's view).
Backends registered by other modules (``register_backend``) are found too.
"""

from __future__ import annotations

from .base import _BACKENDS, Backend
from ..ground.errors import InvalidConfigError

# which module defines each built-in backend
_MODULES = {"torch": "torch_backends", "torchscript": "torch_backends", "inductor": "torch_backends",
            "tvm": "tvm_relax", "tvm-tir": "tvm_tir", "onnxruntime": "onnx_runtime"}


def _load(module: str) -> None:
    if module == "torch_backends":
        from . import torch_backends  # noqa: F401
    elif module == "tvm_relax":
        from . import tvm_relax  # noqa: F401
    elif module == "tvm_tir":
        from . import tvm_tir  # noqa: F401
    elif module == "onnx_runtime":
        from . import onnx_runtime  # noqa: F401


def get_backend(name: str) -> type[Backend]:
    """The backend class called ``name`` (importing its module if needed)."""
    if name not in _BACKENDS and name in _MODULES:
        _load(_MODULES[name])
    cls = _BACKENDS.get(name)
    if cls is None:
        raise InvalidConfigError(f"unknown backend {name!r}; expected one of {sorted(all_backends())}")
    return cls


def all_backends() -> dict[str, type[Backend]]:
    """Every backend, built-in and registered."""
    for module in dict.fromkeys(_MODULES.values()):
        _load(module)
    return dict(_BACKENDS)

"""Peers: every way of serving a suite model, behind one small interface (see ``base.System``).

Systems run in this order; the first, ``native``, is the reference the others are checked against.
"""

from __future__ import annotations

import importlib

from .base import System

SYSTEMS: tuple[str, ...] = ("native", "onnxruntime", "treelite", "hummingbird", "onedal", "lleaves", "ydf",
                            "tunebird-untuned", "tunebird-tuned")
# the optional peers (--skip-peers)
PEER_NAMES: tuple[str, ...] = ("onnxruntime", "treelite", "hummingbird", "onedal", "lleaves", "ydf")
TUNEBIRD: tuple[str, ...] = ("tunebird-untuned", "tunebird-tuned")

_MODULES = {"native": ("native", "Native"), "onnxruntime": ("onnx", "OnnxRuntime"),
            "treelite": ("treelite", "Treelite"), "hummingbird": ("hummingbird", "Hummingbird"),
            "onedal": ("onedal", "OneDAL"), "lleaves": ("lleaves", "Lleaves"), "ydf": ("ydf", "Ydf"),
            "tunebird-untuned": ("tunebird", "Untuned"), "tunebird-tuned": ("tunebird", "Tuned")}


def get(name: str) -> System:
    """The system called ``name`` (its module is imported now; the library it wraps only when used)."""
    module, cls = _MODULES[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()

"""tunebird's user entry points: compile, tune, load.

Heavy modules (torch, tvm) are imported on first use of an entry point, so
``tunebird records`` and ``import tuner.device`` start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from strategies.ground.errors import (
    ArtifactIntegrityError,
    InvalidConfigError,
    NotTunedError,
    TunebirdError,
    UnsupportedModelError,
)

__version__ = "0.1.0"

_LAZY = {
    "compile": "api",
    "load_artifact": "api",
    "Predictor": "predictor",
    "tune": "tuning",
    "load": "deploy",
    "TuneReport": "report",
}

__all__ = [
    "ArtifactIntegrityError",
    "InvalidConfigError",
    "NotTunedError",
    "TunebirdError",
    "UnsupportedModelError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tuner' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value

"""The interface every benchmarked system implements, and output alignment shared by all of them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

Fn = Callable[[np.ndarray], Any]


class NotApplicable(Exception):
    """A system that cannot serve this model (``status``: unsupported, not tuned, ...)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Context:
    """What a worker knows besides the model: threads, the tuning database, the cache folder."""

    threads: int
    db: str
    cache_dir: Path
    method: str  # the native method every system reproduces (predict_proba for classifiers)


class System:
    """One way of serving a model.  ``prepare`` runs inside a fresh worker process."""

    name: str = ""
    label: str = ""
    external: bool = False  # runs its own worker (another virtual environment)
    requires: tuple[str, ...] = ()  # optional modules it needs (the [bench] extras)
    imports: tuple[str, ...] = ()  # modules imported before the memory baseline, besides ``requires``

    def available(self) -> str | None:
        """None when usable here; otherwise why not (e.g. "not installed: pip install -e .[bench]")."""
        for module in self.requires:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                return f"not installed ({exc.name}): pip install -e .[bench]"
        return None

    def warm_imports(self) -> None:
        """Import the libraries before the memory baseline (library code is not the predictor's memory)."""
        for module in (*self.requires, *self.imports):
            importlib.import_module(module)

    def prepare(self, model_name: str, ctx: Context) -> tuple[Fn, str]:
        """Load/convert/compile the model; ``(X -> outputs, note)``.  Raises NotApplicable or any error."""
        raise NotImplementedError

    def cell_facts(self, batch: int) -> dict[str, Any]:
        """JSON facts about the predictor ``prepare`` built, recorded in the cell of batch size ``batch`` (e.g. the
        threads of the plan that serves it); called after ``prepare`` in the same worker."""
        return {}

    def notes(self) -> str:
        """One line for the table's legend (versions, backend, how it was run)."""
        return ""


def as_columns(y: Any, n: int) -> np.ndarray:
    """Outputs as a float64 (n, k) array."""
    return np.asarray(y, dtype=np.float64).reshape(n, -1)


def align(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Match a binary classifier's one-column (P(class 1)) and two-column outputs to ``want``'s layout."""
    got = as_columns(got, want.shape[0])
    if got.shape[1] == want.shape[1]:
        return got
    if want.shape[1] == 1 and got.shape[1] == 2:
        return got[:, 1:]
    if want.shape[1] == 2 and got.shape[1] == 1:
        return np.hstack([1 - got, got])
    return got

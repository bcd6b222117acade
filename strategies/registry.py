"""The table of strategies: which exist, which compute an operator kind, one by name.

Importing a strategy module registers its classes (``strategies.base.register``);
this module imports all of them on first use, so that the modules defining
strategies never import the table.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import _REGISTRY, Strategy
from .ground.errors import InvalidConfigError


def _load_all() -> None:
    # Importing the modules registers their strategies: the operator families' modules, and every public
    # module of ``strategies.trees`` (a new tree strategy is one new file there)
    from . import (columns, decomposition, ensembles, expansions, linear, linear_tir, mixture,  # noqa: F401
                   mlp, naive_bayes, neighbors, preprocessing, svm, trees)

    if not _TREE_MODULES:
        for info in pkgutil.iter_modules(trees.__path__):
            if not info.name.startswith("_"):
                _TREE_MODULES.append(importlib.import_module(f"{trees.__name__}.{info.name}"))


_TREE_MODULES: list = []


def strategies_for(op_kind: str) -> list[type[Strategy]]:
    _load_all()
    return [s for s in _REGISTRY.values() if s.op_kind == op_kind]


def get_strategy(name: str, op_kind: str | None = None) -> type[Strategy]:
    _load_all()
    cls = _REGISTRY.get(name)
    if cls is None or (op_kind is not None and cls.op_kind != op_kind):
        allowed = sorted(s.name for s in _REGISTRY.values() if op_kind is None or s.op_kind == op_kind)
        what = f" for {op_kind}" if op_kind else ""
        raise InvalidConfigError(f"unknown strategy {name!r}{what}; expected one of {allowed}")
    return cls


def all_strategies() -> dict[str, type[Strategy]]:
    _load_all()
    return dict(_REGISTRY)

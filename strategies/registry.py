"""The table of strategies: which exist, which compute an operator kind, one by name.

Importing a strategy module registers its classes (``strategies.base.register``);
this module imports all of them on first use, so that the modules defining
strategies never import the table.
"""

from __future__ import annotations

from .base import _REGISTRY, Strategy
from .ground.errors import InvalidConfigError


def _load_all() -> None:
    # Importing the modules registers their strategies.
    from . import columns, expansions, linear, preprocessing  # noqa: F401
    from .trees import gemm, tiled_traversal, traversal  # noqa: F401


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

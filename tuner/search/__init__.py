"""Search strategies behind one interface (:class:`SearchStrategy`): TPE, grid, evolutionary.

``make_search(name_or_instance)`` gives one by name: ``auto`` (grid for small
spaces, TPE otherwise), ``grid``, ``tpe`` (optuna's TPE sampler), ``evolutionary``
(MetaSchedule's evolutionary search over the cost model).
"""

from __future__ import annotations

from .base import _STRATEGIES, SearchSettings, SearchStrategy, pick, register_search, unmeasured
from .evolutionary import EvolutionarySearch
from .grid import GRID_LIMIT, AutoSearch, GridSearch
from .tpe import TPESearch

__all__ = ["GRID_LIMIT", "AutoSearch", "EvolutionarySearch", "GridSearch", "SearchSettings", "SearchStrategy",
           "TPESearch", "make_search", "pick", "register_search", "unmeasured"]


def make_search(search: str | SearchStrategy | None, settings: SearchSettings | None = None) -> SearchStrategy:
    """The search strategy called ``search`` (default ``auto``), or ``search`` itself."""
    if isinstance(search, SearchStrategy):
        return search
    name = search or "auto"
    cls = _STRATEGIES.get(name)
    if cls is None:
        raise ValueError(f"unknown search strategy {name!r}; expected one of {sorted(_STRATEGIES)}")
    return cls(settings)



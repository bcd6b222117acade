"""Fusion rewrites: graphs that compute exactly what a model's graph computes, with fewer or cheaper ops."""

from __future__ import annotations

from .ir import Graph


def rewrites(graph: Graph) -> list[Graph]:
    """The exact rewrites of ``graph`` worth tuning (each differs from it)."""
    return []

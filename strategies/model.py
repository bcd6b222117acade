"""A converted model: the IR graph, its output head, and what input it accepts."""

from __future__ import annotations

from dataclasses import dataclass

from .head import Head, InputSpec
from .ir import Graph, content_hash, from_bytes, register_dataclass, to_bytes


@register_dataclass
@dataclass(frozen=True, eq=False)
class ConvertedModel:
    """What a frontend returns: everything needed to reproduce the original model's methods."""

    graph: Graph
    head: Head
    input: InputSpec
    source: str  # e.g. "sklearn.ensemble.RandomForestClassifier"

    def __post_init__(self) -> None:
        if self.input.n_features != self.graph.n_features:
            raise ValueError(
                f"input spec has {self.input.n_features} features, graph has {self.graph.n_features}"
            )

    @property
    def methods(self) -> tuple[str, ...]:
        return self.head.methods

    @property
    def classes_(self):
        return self.head.classes

    def content_hash(self) -> str:
        """Hash of graph and head (not the source name): equal for equal models."""
        return content_hash((self.graph, self.head, self.input.n_features))

    def to_bytes(self) -> bytes:
        return to_bytes(self)

    @staticmethod
    def from_bytes(data: bytes) -> "ConvertedModel":
        obj = from_bytes(data)
        if not isinstance(obj, ConvertedModel):
            raise ValueError(f"expected a serialised ConvertedModel, got {type(obj).__name__}")
        return obj

    def summary(self) -> str:
        return f"{self.source}: {self.graph.summary()}"

"""The frozen :class:`Config`: one candidate program for a task, as plain data.

A config names the strategy for the task's main operator, the backend that
builds it, the strategy's and backend's knob values, the thread count, the
chunk size (rows per program call) and whether the post-transform is fused::

    {"strategy": "tiled_traversal", "backend": "tvm-tir", "threads": 2,
     "batch_size": 1024, "fuse_post": true, "knobs": {"tree_group": 8, ...}}

That JSON form is what records store, what artifacts carry and what rebuilds a
program.  :attr:`Config.key` (SHA-256 of the canonical JSON) is its one
identity: the records database, the cost model and every search strategy use
it.  A Config also reads like the mapping above (``cfg["strategy"]``,
``dict(cfg)``), so code written against the JSON form works unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator

KEYS = ("strategy", "backend", "threads", "batch_size", "fuse_post", "knobs")


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys; NaN and infinities are rejected."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"expected plain JSON data (dicts, lists, str, int, finite float, bool, None): {exc}") from exc


def json_key(data: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON mapping's canonical form (``1`` and ``1.0`` differ)."""
    return hashlib.sha256(canonical_json(dict(data)).encode()).hexdigest()


@dataclass(frozen=True)
class Config(Mapping):
    """One candidate for a task; immutable, hashable, JSON round-trip (``to_json`` / ``from_json``)."""

    strategy: str
    backend: str
    threads: int
    batch_size: int
    fuse_post: bool = True
    knob_items: tuple[tuple[str, Any], ...] = ()  # sorted (name, value) pairs
    key: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        items = tuple(sorted((str(k), v) for k, v in dict(self.knob_items).items()))
        object.__setattr__(self, "knob_items", items)
        for name in ("threads", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                try:
                    if int(value) != value or isinstance(value, bool):
                        raise ValueError
                    object.__setattr__(self, name, int(value))
                except (TypeError, ValueError):
                    raise ValueError(f"Config.{name} must be an integer, got {value!r}") from None
        if not isinstance(self.fuse_post, bool):
            raise ValueError(f"Config.fuse_post must be true or false, got {self.fuse_post!r}")
        object.__setattr__(self, "key", json_key(self.to_json()))

    @property
    def knobs(self) -> dict[str, Any]:
        """The knob values (a fresh dict)."""
        return dict(self.knob_items)

    def to_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "backend": self.backend, "threads": self.threads,
                "batch_size": self.batch_size, "fuse_post": self.fuse_post, "knobs": dict(self.knob_items)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Config:
        """The Config of a JSON mapping (every key of :data:`KEYS`; unknown keys are refused)."""
        if isinstance(data, Config):
            return data
        missing = [k for k in KEYS if k not in data]
        extra = sorted(set(data) - set(KEYS))
        if missing or extra:
            raise ValueError(f"a config needs exactly the keys {list(KEYS)}; missing {missing}, unknown {extra}")
        return cls(data["strategy"], data["backend"], data["threads"], data["batch_size"], data["fuse_post"],
                   tuple(dict(data["knobs"] or {}).items()))

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields (or ``knobs=`` as a mapping) changed."""
        data = self.to_json()
        if "knobs" in changes:
            changes["knobs"] = dict(changes["knobs"])
        data.update(changes)
        return Config.from_json(data)

    # ---- the mapping view of the JSON form
    def __getitem__(self, name: str) -> Any:
        if name == "knobs":
            return dict(self.knob_items)
        if name in KEYS:
            return getattr(self, name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(KEYS)

    def __len__(self) -> int:
        return len(KEYS)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return self.key == other.key
        if isinstance(other, Mapping):
            try:
                return self.key == json_key(other)
            except ValueError:
                return False
        return NotImplemented

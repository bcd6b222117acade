"""How each operator can be computed as tensors: the IR, frontends, reference evaluator and strategies."""

from .ground.errors import (
    ArtifactIntegrityError,
    InvalidConfigError,
    NotTunedError,
    TunebirdError,
    UnsupportedModelError,
)
from .frontends import convert, load_model
from .model import ConvertedModel

__all__ = [
    "ArtifactIntegrityError",
    "ConvertedModel",
    "InvalidConfigError",
    "NotTunedError",
    "TunebirdError",
    "UnsupportedModelError",
    "convert",
    "load_model",
]

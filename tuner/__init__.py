"""tunebird's user entry points: compile, tune, load."""

from strategies.errors import (
    ArtifactIntegrityError,
    InvalidConfigError,
    NotTunedError,
    TunebirdError,
    UnsupportedModelError,
)

__version__ = "0.1.0"

from .api import compile, load_artifact  # noqa: E402
from .predictor import Predictor  # noqa: E402

__all__ = [
    "ArtifactIntegrityError",
    "InvalidConfigError",
    "NotTunedError",
    "TunebirdError",
    "Predictor",
    "UnsupportedModelError",
    "__version__",
    "compile",
    "load_artifact",
]

"""tunebird's user entry points: compile, tune, load."""

from strategies.errors import (
    ArtifactIntegrityError,
    InvalidConfigError,
    NotTunedError,
    TunebirdError,
    UnsupportedModelError,
)

__version__ = "0.1.0"

__all__ = [
    "ArtifactIntegrityError",
    "InvalidConfigError",
    "NotTunedError",
    "TunebirdError",
    "UnsupportedModelError",
    "__version__",
]

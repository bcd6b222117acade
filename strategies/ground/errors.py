"""Exceptions shared by every tunebird package (re-exported by ``tuner``)."""

from __future__ import annotations

SUPPORTED_MODELS_DOC = "the 'Supported models' section of README.md"


class TunebirdError(Exception):
    """Base class of every error tunebird raises on purpose."""


class UnsupportedModelError(TunebirdError, TypeError):
    """The model (or one of its parts or options) cannot be converted."""


class NotTunedError(TunebirdError, LookupError):
    """Nothing is tuned for this model and device, and ``strict=True`` was asked."""


class ArtifactIntegrityError(TunebirdError):
    """A stored artifact's payload does not match the SHA-256 recorded for it."""


class InvalidConfigError(TunebirdError, ValueError):
    """A strategy, backend or knob value that does not exist or does not apply."""

"""Exceptions shared by every tunebird package: they live in :mod:`strategies.ground.errors`."""

from .ground.errors import *  # noqa: F403
from .ground.errors import SUPPORTED_MODELS_DOC  # noqa: F401

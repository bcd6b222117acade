"""Shared fixtures: paths to the shared Treebeard models, CI-aware skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TREEBEARD = REPO.parent / "shared" / "data" / "treebeard"
IN_CI = os.environ.get("CI", "").lower() == "true"


def need_treebeard() -> Path:
    """The Treebeard data folder; skip (locally) or fail (under CI=true) when it is missing."""
    if not TREEBEARD.is_dir():
        msg = f"the shared Treebeard models are not at {TREEBEARD} (a user's clone has no ../shared)"
        if IN_CI:
            pytest.fail(msg + "; CI must have them")
        pytest.skip(msg)
    return TREEBEARD


@pytest.fixture
def treebeard_dir() -> Path:
    return need_treebeard()

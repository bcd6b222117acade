"""Content-addressed payload files beside a SQLite database, and SHA-256 checks.

A payload with SHA-256 ``abcdef…`` lives at ``<root>/ab/abcdef…``.  Files are
written to a temporary name and renamed, so a crash never leaves a partial
payload under its final name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from strategies.ground.errors import ArtifactIntegrityError

logger = logging.getLogger(__name__)

from .schema import IN_DATABASE  # noqa: E402
_FILE_LOCATION = re.compile(r"([0-9a-f]{2})/([0-9a-f]{64})")


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


@contextmanager
def atomic_file(target: Path, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``target``; on success flush it to disk and rename it to ``target``."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, mode.replace("w", "x"), **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def verify_payload(data: bytes | None, expected: str, what: str) -> bytes:
    """Return ``data`` when its SHA-256 is ``expected``.

    Raises:
        ArtifactIntegrityError: ``data`` is None (missing) or hashes differently.
    """
    if data is None:
        raise ArtifactIntegrityError(f"{what}: payload is missing; expected SHA-256 {expected}, actual: none")
    actual = sha256_hex(data)
    if actual != expected:
        raise ArtifactIntegrityError(
            f"{what}: payload was modified; expected SHA-256 {expected}, actual {actual}. "
            f"Do not load it: rebuild the artifact or re-import it from a trusted export."
        )
    return data


class FileStore:
    """Payload files under ``root``, named by their SHA-256."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    @staticmethod
    def location(sha256: str) -> str:
        """The payload's path relative to the root."""
        return f"{sha256[:2]}/{sha256}"

    def path(self, location: str, sha256: str) -> Path:
        """The payload file for a location recorded with ``sha256``.

        Raises:
            ArtifactIntegrityError: the location is not the one ``sha256`` names.
        """
        if not _FILE_LOCATION.fullmatch(location) or location != self.location(sha256):
            raise ArtifactIntegrityError(
                f"payload location {location!r} does not match its SHA-256 (expected {self.location(sha256)!r})"
            )
        return self.root / location

    def put(self, data: bytes, sha256: str) -> str:
        """Write ``data`` (whose SHA-256 is ``sha256``) unless an intact copy exists; return its location."""
        location = self.location(sha256)
        target = self.root / location
        if target.is_file() and sha256_hex(target.read_bytes()) == sha256:
            return location
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target) as f:
            f.write(data)
        logger.debug("wrote payload %s (%d bytes)", target, len(data))
        return location

    def get(self, location: str, sha256: str) -> bytes:
        """The payload at ``location``, checked against ``sha256``.

        Raises:
            ArtifactIntegrityError: the file is missing or its content hashes differently.
        """
        path = self.path(location, sha256)
        try:
            data: bytes | None = path.read_bytes()
        except FileNotFoundError:
            data = None
        return verify_payload(data, sha256, f"artifact file {path}")

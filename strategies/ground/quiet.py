"""Keep third-party noise off a user's terminal around tunebird's own calls into compilers.

:func:`quiet` (a context manager) catches Python warnings raised inside it and
routes what native code writes to the process's stderr (TVM's C++ log lines,
LLVM) into a temporary file while it runs; both are logged at DEBUG on the
``tunebird.thirdparty`` logger afterwards, so ``tunebird -v`` shows them.  The
warning filters and file descriptor 2 are restored on exit.  The descriptor is
process-wide: another thread's stderr output during the block is captured and
logged the same way, not lost.  Set ``TUNEBIRD_SHOW_NATIVE_LOGS=1`` to leave
stderr alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from typing import Iterator

log = logging.getLogger("tunebird.thirdparty")
_lock = threading.RLock()
_depth = 0


@contextlib.contextmanager
def quiet(what: str = "") -> Iterator[None]:
    """Run the block with warnings caught and native stderr captured; both logged at DEBUG."""
    global _depth
    show_native = os.environ.get("TUNEBIRD_SHOW_NATIVE_LOGS") == "1"
    with _lock:
        outer = _depth == 0
        _depth += 1
    saved = captured = None
    try:
        if outer and not show_native:
            try:
                sys.stderr.flush()
                captured = tempfile.TemporaryFile()
                saved = os.dup(2)
                os.dup2(captured.fileno(), 2)
            except OSError:  # no usable fd 2 (embedded interpreters): leave it
                saved = captured = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for w in caught:
            log.debug("%s%s: %s (%s:%s)", f"{what}: " if what else "", w.category.__name__, w.message,
                      w.filename, w.lineno)
    finally:
        if saved is not None and captured is not None:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip():
                    log.debug("%s%s", f"{what}: " if what else "", line.rstrip())
            captured.close()
        with _lock:
            _depth -= 1

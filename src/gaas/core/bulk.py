"""A section of the process tuned for a CPU-bound bulk writer (a discovery import) whose
database work runs on a second thread while the first prepares the next batch."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# The writer thread waits for the GIL after each statement: at most this long, not the default 5 ms.
BULK_SWITCH_INTERVAL = 0.0001

_lock = threading.Lock()
_depth = 0
_saved: tuple[bool, float] = (True, 0.005)


@contextmanager
def bulk_section() -> Iterator[None]:
    """While it lasts: no cyclic garbage collection, whose full passes rescan every object in the
    process again and again as each batch's rows survive a while (those rows hold no cycles:
    reference counting frees them), and a short GIL switch interval, so that the writer thread
    picks up each statement's result at once. Both are process-wide: sections are counted and
    the last one out restores what was there before the first."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = (gc.isenabled(), sys.getswitchinterval())
            gc.disable()
            sys.setswitchinterval(min(BULK_SWITCH_INTERVAL, _saved[1]))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                enabled, interval = _saved
                sys.setswitchinterval(interval)
                if enabled:
                    gc.enable()

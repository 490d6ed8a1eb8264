"""Heap pages freed by a big control message given back to the system (glibc's malloc_trim).

A ``torrent.list`` of 10,000 torrents builds megabytes of rows and JSON; once freed, glibc
keeps most of it: its dynamic mmap threshold grows past the size of a freed big buffer, so
the next ones come from the heap, whose free pages are returned only from its top. At
10,000 torrents that held ~20 MiB of RSS after a few lists. ``malloc_trim(0)`` returns the
free pages of every arena (madvise): ~6 ms the first time after 100 MB were freed, ~0.02 ms
when there is nothing to give back. It runs once, ``DELAY`` seconds after a control message
of ``BIG`` bytes or more (a request or a reply), so a burst of lists costs one trim and the
reply has left the socket buffer first; nothing runs while the daemon is quiet.

Where there is no glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any

BIG = 256 * 1024  # bytes of one control message (request or reply) worth a trim after it
# (a 3-field list of 10,000 is ~0.8 MB, an all-field one ~7 MB)
DELAY = 2.0  # seconds after it: the reply has left, a burst of big calls is one trim


def _glibc_trim() -> Callable[[], None] | None:
    """``malloc_trim(0)`` of this process's C library, or None when it has none."""
    try:
        libc = ctypes.CDLL(None)
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return lambda: fn(0) and None


class MemoryTrim:
    """One trim after big control messages (see module doc); ``trim`` None: never."""

    def __init__(self, clock: Any, trim: Callable[[], None] | None = None) -> None:
        self.clock = clock
        self.trim = trim
        self.trims = 0
        self._call: Any = None

    @classmethod
    def for_this_process(cls, clock: Any) -> MemoryTrim:
        return cls(clock, _glibc_trim())

    def message(self, size: int) -> None:
        """A control message of ``size`` bytes was read or written."""
        if size < BIG or self.trim is None or self._call is not None:
            return
        self._call = self.clock.callLater(DELAY, self._run)

    def cancel(self) -> None:
        """Shutting down: no trim pending."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _run(self) -> None:
        self._call = None
        self.trims += 1
        assert self.trim is not None
        self.trim()

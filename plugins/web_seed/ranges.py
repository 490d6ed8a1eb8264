"""Web seeds, the pure part: URLs of files, block requests merged into jobs, a job's
byte range cut at file edges, and what an HTTP answer means (pure, no Twisted).

A web seed (BEP 19) serves the torrent's files, not its pieces. The Peer of a web seed
asks for 16 KiB blocks like of any peer; ``BlockQueue`` holds them and ``take_run`` hands
out a *job*: the first queued block and the queued blocks that follow it in the torrent's
byte stream (across piece edges too), up to ``max_bytes``. ``file_spans`` cuts the job's
range at file edges, so a piece across three files becomes three Range requests (the URL of
each from ``file_url``); pad files (BEP 47) are never asked for, their zeros made here.
"""

from __future__ import annotations

import bisect
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from btd.core.types import BlockRef

# Characters kept as they are in a path segment (RFC 3986 unreserved and a few sub-delims
# that file servers take literally, as libtorrent's escape_path does); the rest is %XX.
SAFE = "-_.~!*'(),"


def file_url(base: str, path: Sequence[str], *, multi_file: bool) -> str:
    """The URL of one file of the torrent at web seed ``base`` (BEP 19).

    ``path`` is the file's path as btd stores it: ``(name,)`` for a single-file torrent,
    ``(name, dir..., file)`` for a multi-file one. A single-file torrent's URL is ``base``
    itself, or ``base`` + name when it ends in ``/``; a multi-file torrent's is ``base``,
    a ``/`` if it lacks one, then the name and path, each segment percent-encoded.
    """
    encoded = "/".join(quote(segment, safe=SAFE) for segment in path)
    if not multi_file:
        return base + encoded if base.endswith("/") else base
    return (base if base.endswith("/") else base + "/") + encoded


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes ``offset .. offset+length`` of file ``index`` (``pad``: a BEP 47 pad file)."""

    index: int
    offset: int
    length: int
    pad: bool = False


def file_spans(
    offsets: Sequence[int], lengths: Sequence[int], pads: Sequence[bool], start: int, length: int
) -> list[Span]:
    """The torrent's bytes ``start .. start+length`` as pieces of files, in order.

    ``offsets`` (ascending), ``lengths`` and ``pads`` describe the files laid end to end;
    empty files are skipped. ValueError if the range is outside the torrent.
    """
    total = offsets[-1] + lengths[-1] if offsets else 0
    if start < 0 or length <= 0 or start + length > total:
        raise ValueError(f"bytes {start}+{length} are outside the torrent ({total} bytes)")
    out: list[Span] = []
    i = bisect.bisect_right(offsets, start) - 1
    pos, end = start, start + length
    while pos < end:
        file_end = offsets[i] + lengths[i]
        if lengths[i] and pos < file_end:
            take = min(end, file_end) - pos
            out.append(Span(i, pos - offsets[i], take, pads[i]))
            pos += take
        i += 1
    return out


class BlockQueue:
    """Block requests waiting at a web seed, in arrival order; cancels are O(1)."""

    def __init__(self, piece_length: int, limit: int) -> None:
        self.piece_length = piece_length
        self.limit = limit
        self._order: dict[BlockRef, None] = {}  # arrival order
        self._at: dict[int, BlockRef] = {}  # torrent offset -> request

    def __len__(self) -> int:
        return len(self._order)

    def offset(self, ref: BlockRef) -> int:
        return ref.piece * self.piece_length + ref.begin

    def add(self, ref: BlockRef) -> bool:
        """Queue a request; False when it cannot be (the queue is full, or the same
        bytes are queued already): the caller rejects it."""
        at = self.offset(ref)
        if len(self._order) >= self.limit or ref in self._order or at in self._at:
            return False
        self._order[ref] = None
        self._at[at] = ref
        return True

    def cancel(self, ref: BlockRef) -> bool:
        """Forget a queued request; False if it was not queued (taken or never asked)."""
        if ref not in self._order:
            return False
        del self._order[ref]
        del self._at[self.offset(ref)]
        return True

    def take_run(self, max_bytes: int) -> list[BlockRef]:
        """The oldest request and the queued ones that follow it byte for byte, up to
        ``max_bytes`` in all (at least the first); taken off the queue."""
        if not self._order:
            return []
        ref = next(iter(self._order))
        run = [ref]
        size = ref.length
        while True:
            nxt = self._at.get(self.offset(ref) + ref.length)
            if nxt is None or size + nxt.length > max_bytes:
                break
            run.append(nxt)
            size += nxt.length
            ref = nxt
        for taken in run:
            del self._order[taken]
            del self._at[self.offset(taken)]
        return run

    def clear(self) -> list[BlockRef]:
        """Everything queued, taken off."""
        refs = list(self._order)
        self._order.clear()
        self._at.clear()
        return refs


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


def parse_content_range(value: str) -> tuple[int, int] | None:
    """``bytes FIRST-LAST/TOTAL`` -> (first, last), or None if it is not one."""
    match = _CONTENT_RANGE.match(value)
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    return (first, last) if first <= last else None


def range_header(offset: int, length: int) -> str:
    return f"bytes={offset}-{offset + length - 1}"


def retry_after(value: str | None, now: float, cap: float) -> float | None:
    """Seconds an HTTP ``Retry-After`` asks for (delta-seconds or an HTTP date), at most
    ``cap``; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, min(when.timestamp() - now, cap))


def backoff(failures: int, base: float, cap: float) -> float:
    """Seconds to wait after ``failures`` failed requests in a row (>= 1)."""
    return min(cap, base * 2 ** max(0, failures - 1))


# What an HTTP status means for the web seed: retry later, or give it up now.
RETRY_STATUSES = frozenset({408, 429})
# The file is not on this server: its pieces are asked of others (libtorrent does the same).
MISSING_STATUSES = frozenset({404, 410})


def pieces_of_file(offset: int, length: int, piece_length: int) -> range:
    """The pieces that hold bytes of a file at ``offset`` of ``length`` (> 0) bytes."""
    return range(offset // piece_length, (offset + length - 1) // piece_length + 1)


def gives_up(status: int) -> bool:
    """A status after which asking again is pointless: 4xx but timeouts and rate limits
    (a missing file, forbidden, gone); 5xx and the rest are retried with a back-off."""
    return 400 <= status < 500 and status not in RETRY_STATUSES

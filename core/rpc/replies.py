"""Reply lines that never freeze the reactor: big results encoded in slices, on a budget.

Encoding a 200,000-file ``torrent.files`` result holds the only thread for tens of
milliseconds even with orjson (C code: a thread pool would not help, it keeps the GIL). So
a list longer than ``ENCODE_SLICE`` items, at any of the first few levels of a message, is
encoded ``ENCODE_SLICE`` items at a time with a reactor turn in between; a small reply is
encoded at once. Every reply line is held to ``RPC_REPLY_BUDGET`` bytes (what
btctl reads in one line): a result that does not fit is answered with REPLY_TOO_LARGE
instead, and encoding stops as soon as it is over, so it never holds more than that.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from btd.core.limits import RPC_REPLY_BUDGET
from btd.core.rpc.errors import INTERNAL_ERROR, REPLY_TOO_LARGE
from btd.core.rpc.json_text import dumps

_log = Logger()

ENCODE_SLICE = 20_000  # list items encoded per reactor turn (~10-20 ms of orjson for list rows)
_DEEP = 3  # levels searched for big lists: message -> result -> a field (torrent.get files)
_TURN = object()  # a piece meaning "let the reactor run now"

Message = dict[str, Any]


def _big(value: Any, depth: int) -> bool:
    """A list of more than ``ENCODE_SLICE`` items, or a dict holding one within the first
    ``_DEEP`` levels (the items of a list are not searched: a row is small)."""
    if isinstance(value, list):
        return len(value) > ENCODE_SLICE
    if isinstance(value, dict) and depth < _DEEP:
        return any(_big(v, depth + 1) for v in value.values() if isinstance(v, (list, dict)))
    return False


def _pieces(value: Any, depth: int = 0) -> Iterator[Any]:
    """The JSON text of ``value`` in pieces, with ``_TURN`` after each slice of a big list."""
    if not _big(value, depth):
        yield dumps(value)
    elif isinstance(value, list):
        yield b"["
        for start in range(0, len(value), ENCODE_SLICE):
            yield (b"," if start else b"") + dumps(value[start : start + ENCODE_SLICE])[1:-1]
            yield _TURN
        yield b"]"
    else:
        yield b"{"
        for n, (key, item) in enumerate(value.items()):
            yield (b"," if n else b"") + dumps(str(key)) + b":"
            yield from _pieces(item, depth + 1)
        yield b"}"


def too_large(message: Message, budget: int) -> Message:
    """The answer for a result that would not fit in ``budget`` bytes."""
    return {
        "jsonrpc": "2.0",
        "error": {
            "code": REPLY_TOO_LARGE,
            "message": f"reply too large: over {budget} bytes; ask for less (fields, filters)",
            "data": {"reply_budget": budget},
        },
        "id": message.get("id"),
    }


def _not_json(message: Message, exc: Exception) -> bytes:
    _log.error("RPC result is not JSON (id {id!r}): {e}", id=message.get("id"), e=str(exc))
    fallback = {
        "jsonrpc": "2.0",
        "error": {"code": INTERNAL_ERROR, "message": f"Internal error: result is not JSON: {exc}"},
        "id": message.get("id"),
    }
    return dumps(fallback)


class Budget:
    """Bytes a reply line may still hold: shared by the members of a batch, which may be
    encoded at the same time (their results settle in any order)."""

    def __init__(self, total: int = RPC_REPLY_BUDGET) -> None:
        self.total = total
        self.left = total

    def refused(self, message: Message, taken: int) -> bytes:
        """Give ``taken`` bytes back; the REPLY_TOO_LARGE answer instead (not counted:
        the 64 KiB under the frame cap are kept for these)."""
        self.left += taken
        return dumps(too_large(message, self.total))


class _Encoding:
    """One message encoded piece by piece, a reactor turn after each slice."""

    def __init__(self, message: Message, clock: Any, budget: Budget) -> None:
        self.message = message
        self.clock = clock
        self.budget = budget
        self.pieces = _pieces(message)
        self.parts: list[bytes] = []
        self.taken = 0
        self.done: Deferred[bytes] = Deferred()

    def run(self) -> None:
        try:
            for piece in self.pieces:
                if piece is _TURN:
                    self.clock.callLater(0, self.run)
                    return
                self.taken += len(piece)
                self.budget.left -= len(piece)
                if self.budget.left < 0:
                    self.pieces.close()
                    self.parts = []
                    self.done.callback(self.budget.refused(self.message, self.taken))
                    return
                self.parts.append(piece)
        except (TypeError, ValueError, RecursionError) as exc:
            self.parts = []
            self.budget.left += self.taken
            self.done.callback(_not_json(self.message, exc))
            return
        self.done.callback(b"".join(self.parts))


def encode_sliced(message: Message, clock: Any, budget: Budget | None = None) -> Deferred[bytes]:
    """``message`` as JSON bytes (no newline); fired at once unless it is big. Over the
    ``budget`` (a fresh one: one reply line): REPLY_TOO_LARGE for its id instead."""
    budget = Budget() if budget is None else budget
    if not _big(message, 0):
        try:
            data = dumps(message)
        except (TypeError, ValueError, RecursionError) as exc:
            return succeed(_not_json(message, exc))
        budget.left -= len(data)
        if budget.left < 0:
            data = budget.refused(message, len(data))
        return succeed(data)
    encoding = _Encoding(message, clock, budget)
    encoding.run()
    return encoding.done

"""JSON text for the control socket and the HTTP APIs: orjson, the standard library behind it.

A ``torrent.list`` of 10,000 torrents with every field is 7 MB of JSON: the standard
library takes ~120 ms to write it and ~100 ms to read it back, orjson ~10 ms and ~50 ms,
and that is most of what a big list costs the daemon and its client. Output is the same
compact UTF-8 text either way, with two choices of orjson's kept on purpose: a float that
is not finite is written as ``null`` (JSON has no NaN; a browser's ``JSON.stringify`` does
the same), and a dataclass is written as its fields. What orjson refuses but the standard
library takes (an integer beyond 64 bits) goes through the standard library. An
:class:`Encoded` value is text written earlier and goes into the output as it is (a list row
kept between lists: core/rpc/list_rows.py). Reading with
:func:`loads` is for trusted text (the daemon's replies); a request from a stranger is read
by the dispatcher, which also refuses duplicate keys and NaN.

Pure: no Twisted (btctl imports it).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS  # {1: x} -> {"1": x}, as json.dumps does


class Encoded:
    """JSON text already written (by :func:`dumps`), to be sent again as it is."""

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


def _fragment(value: Any) -> Any:
    if type(value) is Encoded:
        return orjson.Fragment(value.text)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _decoded(value: Any) -> Any:
    if type(value) is Encoded:
        return orjson.loads(value.text)  # the standard library cannot splice text in
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_fallback = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_decoded
).encode


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; TypeError, ValueError or RecursionError when it is
    not JSON (an object JSON cannot hold, nesting past orjson's 254 levels)."""
    try:
        return orjson.dumps(value, default=_fragment, option=_OPTIONS)
    except orjson.JSONEncodeError:
        pass  # too big an integer, too deep, or not JSON at all: the standard library says which
    return _fallback(value).encode("utf-8")


def dumps_kept(value: Any) -> bytes:
    """:func:`dumps` for text kept a long time: an exact-size copy. orjson's bytes keep the
    buffer they were written in, 4 KB or more even for a 100-byte row (10,000 kept list rows
    held 100 MB)."""
    return memoryview(dumps(value)).tobytes()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON text; ValueError (``orjson.JSONDecodeError`` is one) when it is not JSON."""
    return orjson.loads(data)

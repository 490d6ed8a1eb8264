"""Bencode (BEP 3): a strict, iterative decoder with limits, and an encoder.

Why hand-written: btd needs exact control over hostile input (depth, token and size limits,
byte offsets in every error) and the raw byte span of ``info`` -- the info hash is the SHA-1
of those raw bytes, never of a re-encoding.

Decoding rules (every violation raises ``BencodeError(message, offset)``):

- integers: ``i<digits>e`` with an optional ``-``; ``i-0e``, leading zeros, ``ie``, ``i-e`` and
  anything but ASCII digits are refused, as are integers over ``MAX_INT_DIGITS`` digits.
- strings: ``<length>:<bytes>``; a length with leading zeros is refused, and a length that
  runs past the data is refused before anything is sliced.
- dictionaries: keys must be byte strings; a duplicate key is refused. Keys out of order are
  ACCEPTED (as libtorrent does): such files exist, and since the info hash is taken over the
  raw bytes, leniency here cannot change which torrent a file names.
- ``decode`` refuses trailing data after the top-level value; ``decode_prefix`` allows it.
- limits: ``max_depth`` open containers (100 nested lists pass, 101 fail), ``max_tokens`` values
  (each int, string, list and dict counts one; dict keys are strings and count), ``max_size``
  bytes of input. The decoder keeps an explicit stack, so deep input never recurses.

Offsets: a malformed token is reported at its first byte; a truncated input at ``len(data)``;
a limit at the token that crossed it (``max_size`` at byte ``max_size``).
Values decode to ``int``, ``bytes``, ``list`` and ``dict[bytes, ...]``.
"""

from __future__ import annotations

import re
from typing import Any

from btd.core.errors import BencodeError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_MAX_TOKENS",
    "MAX_INT_DIGITS",
    "decode",
    "decode_prefix",
    "decode_with_span",
    "encode",
]

DEFAULT_MAX_DEPTH = 100
DEFAULT_MAX_TOKENS = 3_000_000
DEFAULT_MAX_SIZE = 10_000_000
MAX_INT_DIGITS = 64
"""Integers longer than this are refused: real fields fit in 64 bits, and it bounds int()."""
_MAX_LEN_DIGITS = 20  # a string length with more digits could never fit in memory anyway

_INT_PREFIX = re.compile(rb"-?[0-9]*")  # what a truncated integer may look like
_E, _I, _L, _D = 0x65, 0x69, 0x6C, 0x64  # b"e", b"i", b"l", b"d"
_ZERO, _NINE, _MINUS = 0x30, 0x39, 0x2D


def decode(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_size: int = DEFAULT_MAX_SIZE,
) -> Any:
    """Decode exactly one bencoded value; trailing bytes are an error."""
    value, end, _ = _decode(data, max_depth, max_tokens, max_size, None)
    if end != len(data):
        raise BencodeError("trailing data after the top-level value", end)
    return value


def decode_prefix(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[Any, int]:
    """Decode the value at the start of ``data``; return it and the offset where it ended.

    For BEP 9 ``ut_metadata`` data messages: a dict followed by raw metadata bytes.
    """
    value, end, _ = _decode(data, max_depth, max_tokens, max_size, None)
    return value, end


def decode_with_span(
    data: bytes,
    key_path: tuple[bytes, ...] = (b"info",),
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[Any, tuple[int, int] | None]:
    """Decode like ``decode`` and also return the ``(start, end)`` byte span of the value found
    at ``key_path`` (dict keys from the top-level dict down), or None when it is absent.

    ``hashlib.sha1(data[start:end])`` is then the info hash, computed on the raw bytes.
    """
    if not key_path:
        raise ValueError("key_path must name at least one key")
    value, end, span = _decode(data, max_depth, max_tokens, max_size, tuple(key_path))
    if end != len(data):
        raise BencodeError("trailing data after the top-level value", end)
    return value, span


def _decode(
    data: bytes,
    max_depth: int,
    max_tokens: int,
    max_size: int,
    key_path: tuple[bytes, ...] | None,
) -> tuple[Any, int, tuple[int, int] | None]:
    """The one decoding loop: returns (value, end offset, span of key_path or None)."""
    if not isinstance(data, bytes):
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        else:
            raise TypeError(f"bencode data must be bytes, not {type(data).__name__}")
    n = len(data)
    if n > max_size:
        raise BencodeError(f"data is {n} bytes, over the limit of {max_size}", max_size)
    span_depth = len(key_path) if key_path else -1
    span: tuple[int, int] | None = None
    # A frame is [container, pending dict key (None = expecting a key), start offset].
    # Lists and dicts share the shape so the hot path needs one type test.
    stack: list[list[Any]] = []
    tokens = 0
    pos = 0
    while True:
        if pos >= n:
            raise BencodeError("unexpected end of data", n)
        c = data[pos]
        start = pos
        if c == _E:
            if not stack:
                raise BencodeError("unexpected end marker 'e'", pos)
            frame = stack.pop()
            if frame[1] is not None:
                raise BencodeError("dict key without a value", pos)
            value: Any = frame[0]
            start = frame[2]
            pos += 1
        else:
            tokens += 1
            if tokens > max_tokens:
                raise BencodeError(f"more than {max_tokens} tokens", pos)
            if _ZERO <= c <= _NINE:
                # Inlined fast path for the commonest token; _string() explains failures.
                colon = data.find(b":", pos, pos + _MAX_LEN_DIGITS + 1)
                if colon < 0:
                    _string(data, pos, n)  # raises the precise error
                digits = data[pos:colon]
                if not digits.isdigit() or (c == _ZERO and colon != pos + 1):
                    _string(data, pos, n)  # raises
                colon += 1
                pos = colon + int(digits)
                if pos > n:
                    _string(data, start, n)  # raises
                value = data[colon:pos]
            elif c == _I:
                # Fast path: plain digits without a leading zero; _integer() handles the rest.
                end = data.find(b"e", pos + 1, pos + MAX_INT_DIGITS + 2)
                body = data[pos + 1 : end] if end > pos + 1 else b""
                if body.isdigit() and (body[0] != _ZERO or end == pos + 2):
                    value, pos = int(body), end + 1
                else:
                    value, pos = _integer(data, pos, n)
            elif c == _L or c == _D:
                if stack and type(stack[-1][0]) is dict and stack[-1][1] is None:
                    raise BencodeError("dict key must be a byte string", pos)
                if len(stack) >= max_depth:
                    raise BencodeError(f"nesting deeper than {max_depth}", pos)
                stack.append([[] if c == _L else {}, None, pos])
                pos += 1
                continue
            else:
                raise BencodeError(f"unexpected byte {bytes([c])!r}", pos)
        # A value is complete: hand it to its container, or return it.
        if not stack:
            return value, pos, span
        top = stack[-1]
        container = top[0]
        if type(container) is list:
            container.append(value)
        elif top[1] is None:
            if type(value) is not bytes:
                raise BencodeError("dict key must be a byte string", start)
            if value in container:
                raise BencodeError(f"duplicate dict key {value[:64]!r}", start)
            top[1] = value
        else:
            container[top[1]] = value
            if len(stack) == span_depth and span is None and _on_path(stack, key_path):
                span = (start, pos)
            top[1] = None


def _on_path(stack: list[list[Any]], key_path: tuple[bytes, ...] | None) -> bool:
    """True when every open container is a dict and their pending keys spell key_path."""
    assert key_path is not None
    for frame, key in zip(stack, key_path):
        if type(frame[0]) is not dict or frame[1] != key:
            return False
    return True


def _string(data: bytes, pos: int, n: int) -> tuple[bytes, int]:
    """Parse a string token; the decoder calls it to explain a malformed one."""
    colon = data.find(b":", pos, pos + _MAX_LEN_DIGITS + 1)
    if colon < 0:
        digits = data[pos : pos + _MAX_LEN_DIGITS + 1]
        if pos + len(digits) >= n and digits.isdigit() and len(digits) <= _MAX_LEN_DIGITS:
            raise BencodeError("unexpected end of data", n)
        raise BencodeError("malformed string length", pos)
    digits = data[pos:colon]
    if not digits.isdigit():
        raise BencodeError("malformed string length", pos)
    if digits[0] == _ZERO and len(digits) > 1:
        raise BencodeError("string length with a leading zero", pos)
    length = int(digits)
    end = colon + 1 + length
    if end > n:
        raise BencodeError(f"string length {length} runs past the end of the data", pos)
    return data[colon + 1 : end], end


def _integer(data: bytes, pos: int, n: int) -> tuple[int, int]:
    window = pos + MAX_INT_DIGITS + 3  # i, '-', digits, e
    end = data.find(b"e", pos + 1, window)
    if end < 0:
        if window >= n and _INT_PREFIX.fullmatch(data, pos + 1):
            raise BencodeError("unexpected end of data", n)
        raise BencodeError("malformed or overlong integer", pos)
    body = data[pos + 1 : end]
    digits = body[1:] if body[:1] == b"-" else body
    if not digits.isdigit():
        raise BencodeError("malformed integer", pos)
    if digits[0] == _ZERO and (len(digits) > 1 or len(body) > 1):
        raise BencodeError("integer with a leading zero or negative zero", pos)
    if len(digits) > MAX_INT_DIGITS:
        raise BencodeError(f"integer longer than {MAX_INT_DIGITS} digits", pos)
    return int(body), end + 1


class _End:
    """Encoder work item: close the container ``obj`` (tracked to refuse cycles)."""

    __slots__ = ("obj_id",)

    def __init__(self, obj_id: int) -> None:
        self.obj_id = obj_id


def encode(obj: Any) -> bytes:
    """Bencode ``obj``: int (not bool), bytes, str (UTF-8), list/tuple, dict with bytes or
    str keys (emitted sorted by their raw bytes). Other types raise TypeError; a key given
    both as str and bytes, or a container that contains itself, raises ValueError.
    Iterative, so deep structures cannot hit the recursion limit.
    """
    out: list[bytes] = []
    work: list[Any] = [obj]
    active: set[int] = set()
    while work:
        item = work.pop()
        t = type(item)
        if t is bytes:
            out.append(b"%d:%s" % (len(item), item))
        elif t is int:
            out.append(b"i%de" % item)
        elif t is str:
            raw = item.encode("utf-8")
            out.append(b"%d:%s" % (len(raw), raw))
        elif t is _End:
            out.append(b"e")
            active.discard(item.obj_id)
        elif isinstance(item, (list, tuple)):
            _enter(item, active)
            out.append(b"l")
            work.append(_End(id(item)))
            work.extend(reversed(item))
        elif isinstance(item, dict):
            _enter(item, active)
            out.append(b"d")
            work.append(_End(id(item)))
            for key, value in reversed(_sorted_items(item)):
                work.append(value)
                work.append(key)
        elif isinstance(item, bool):
            raise TypeError("cannot bencode a bool (use 0 or 1)")
        elif isinstance(item, int):
            out.append(b"i%de" % int(item))
        elif isinstance(item, (bytes, bytearray, memoryview)):
            raw = bytes(item)
            out.append(b"%d:%s" % (len(raw), raw))
        elif isinstance(item, str):
            raw = str(item).encode("utf-8")
            out.append(b"%d:%s" % (len(raw), raw))
        else:
            raise TypeError(f"cannot bencode a {type(item).__name__}")
    return b"".join(out)


def _enter(container: Any, active: set[int]) -> None:
    if id(container) in active:
        raise ValueError("cannot bencode a container that contains itself")
    active.add(id(container))


def _sorted_items(d: dict[Any, Any]) -> list[tuple[bytes, Any]]:
    items: dict[bytes, Any] = {}
    for key, value in d.items():
        if isinstance(key, str):
            raw = key.encode("utf-8")
        elif isinstance(key, (bytes, bytearray)):
            raw = bytes(key)
        else:
            raise TypeError(f"dict keys must be bytes or str, not {type(key).__name__}")
        if raw in items:
            raise ValueError(f"dict key {raw!r} given twice (as str and as bytes)")
        items[raw] = value
    return sorted(items.items(), key=lambda kv: kv[0])

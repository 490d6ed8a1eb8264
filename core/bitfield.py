"""Piece sets: which pieces a peer (or we) have, as the wire's bitfield bytes.

Bit layout is the BitTorrent one: the high bit of byte 0 is piece 0. The bytes are
kept as a ``bytearray`` of exactly ceil(n/8) bytes whose spare (trailing) bits are
always zero, so ``to_bytes`` is the wire form with no conversion. ``count`` is kept
up to date on every change so "how many" and "complete?" are O(1).

An index outside 0..n-1 raises ``BitIndexError``, which is both an ``IndexError``
(a caller's bug) and a ``ProtocolError`` (a peer's HAVE for a piece that does not
exist closes the connection without special handling).
"""

from __future__ import annotations

from collections.abc import Iterator

from btd.core.errors import ProtocolError


class BitIndexError(ProtocolError, IndexError):
    """A piece index outside 0..n-1."""


# _BITS[b]: the positions (0 = high bit) set in byte b, for fast iteration.
_BITS: tuple[tuple[int, ...], ...] = tuple(
    tuple(j for j in range(8) if b & (0x80 >> j)) for b in range(256)
)
_POPCOUNT: bytes = bytes(b.bit_count() for b in range(256))


class Bitfield:
    """A mutable set of piece indices in range(n), bytearray-backed."""

    __slots__ = ("_bits", "_count", "size")

    def __init__(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"negative piece count {n}")
        self.size = n
        self._bits = bytearray((n + 7) >> 3)
        self._count = 0

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, n: int) -> Bitfield:
        """Parse a peer's BITFIELD payload; wrong length or a set spare bit is a ProtocolError."""
        expected = (n + 7) >> 3
        if len(data) != expected:
            raise ProtocolError(
                f"bitfield of {len(data)} bytes for {n} pieces (expected {expected})"
            )
        bf = cls(n)
        bf._bits[:] = data
        spare = (expected << 3) - n
        if spare and bf._bits[-1] & ((1 << spare) - 1):
            raise ProtocolError(f"bitfield has bits set past piece {n - 1}")
        bf._count = sum(bf._bits.translate(_POPCOUNT))
        return bf

    @classmethod
    def full(cls, n: int) -> Bitfield:
        """Every piece (a seed, or a HAVE_ALL peer)."""
        bf = cls(n)
        if n:
            bf._bits[:] = b"\xff" * len(bf._bits)
            spare = (len(bf._bits) << 3) - n
            bf._bits[-1] = (0xFF << spare) & 0xFF
        bf._count = n
        return bf

    def to_bytes(self) -> bytes:
        """The wire form (a copy)."""
        return bytes(self._bits)

    def copy(self) -> Bitfield:
        bf = Bitfield.__new__(Bitfield)
        bf.size = self.size
        bf._bits = bytearray(self._bits)
        bf._count = self._count
        return bf

    @property
    def count(self) -> int:
        """How many pieces are in the set (O(1))."""
        return self._count

    @property
    def complete(self) -> bool:
        """True when every piece is in the set (a torrent with 0 pieces is complete)."""
        return self._count == self.size

    def _check(self, i: int) -> None:
        if not 0 <= i < self.size:
            raise BitIndexError(f"piece index {i} out of range 0..{self.size - 1}")

    def has(self, i: int) -> bool:
        if not 0 <= i < self.size:
            raise BitIndexError(f"piece index {i} out of range 0..{self.size - 1}")
        return bool(self._bits[i >> 3] & (0x80 >> (i & 7)))

    __contains__ = has

    def add(self, i: int) -> bool:
        """Add piece i; True if it was not there before."""
        if not 0 <= i < self.size:
            raise BitIndexError(f"piece index {i} out of range 0..{self.size - 1}")
        mask = 0x80 >> (i & 7)
        byte = self._bits[i >> 3]
        if byte & mask:
            return False
        self._bits[i >> 3] = byte | mask
        self._count += 1
        return True

    def discard(self, i: int) -> bool:
        """Remove piece i; True if it was there."""
        if not 0 <= i < self.size:
            raise BitIndexError(f"piece index {i} out of range 0..{self.size - 1}")
        mask = 0x80 >> (i & 7)
        byte = self._bits[i >> 3]
        if not byte & mask:
            return False
        self._bits[i >> 3] = byte & ~mask
        self._count -= 1
        return True

    def __iter__(self) -> Iterator[int]:
        """The set pieces, ascending; whole zero bytes are skipped."""
        bits = _BITS
        for bi, byte in enumerate(self._bits):
            if byte:
                base = bi << 3
                for j in bits[byte]:
                    yield base + j

    def missing(self) -> Iterator[int]:
        """The pieces not in the set, ascending; whole 0xFF bytes are skipped."""
        bits = _BITS
        n = self.size
        for bi, byte in enumerate(self._bits):
            if byte != 0xFF:
                base = bi << 3
                for j in bits[byte ^ 0xFF]:
                    if base + j >= n:
                        return
                    yield base + j

    def intersects(self, other: Bitfield) -> bool:
        """True if some piece is in both sets (O(n/8) in C, no Python loop)."""
        if other.size != self.size:
            raise ValueError("bitfields of different sizes")
        return bool(int.from_bytes(self._bits, "big") & int.from_bytes(other._bits, "big"))

    def __and__(self, other: Bitfield) -> Bitfield:
        if other.size != self.size:
            raise ValueError("bitfields of different sizes")
        n = len(self._bits)
        bf = Bitfield(self.size)
        if n:
            both = int.from_bytes(self._bits, "big") & int.from_bytes(other._bits, "big")
            bf._bits[:] = both.to_bytes(n, "big")
            bf._count = both.bit_count()
        return bf

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bitfield):
            return NotImplemented
        return self.size == other.size and self._bits == other._bits

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"<Bitfield {self._count}/{self.size}>"

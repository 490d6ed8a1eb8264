"""The part file: bytes of skipped files that share a piece with a wanted file.

A piece that spans a wanted and a skipped file must be downloaded and verified whole,
but the skipped file must not appear on disk. Its skipped bytes live here instead, as
libtorrent does: one hidden file per torrent in the save path, ``.<info hash>.parts``.
Blocking I/O, called from worker threads only (through core/storage.py, which holds the
lock that orders it with the files' own I/O).

Layout: a header, then slots of one piece length each. The header is ``MAGIC``, the
piece length and the piece count (3 x 8 bytes with the magic), then one 4-byte entry
per piece: 0 for none, else its slot + 1. Within a slot a byte sits at its offset in the
piece, so a piece's bytes of several skipped files share one slot. Slots are taken when
a piece first writes here and freed when no skipped byte of it is left (a file became
wanted and its bytes moved out); the header is written on ``flush`` (before resume data
records the piece), so a crash forgets at most slots no recorded piece needs.
"""

from __future__ import annotations

import os
import struct
from array import array
from pathlib import Path

from btd.core.errors import StorageError

MAGIC = b"btdparts"
_HEAD = struct.Struct("<8sQQ")
_ALIGN = 16 * 1024
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class PartFile:
    """Skipped files' bytes of spanning pieces, by piece (see the module docstring)."""

    def __init__(self, path: Path, piece_length: int, num_pieces: int) -> None:
        self.path = Path(path)
        self._piece_length = piece_length
        self._num_pieces = num_pieces
        self._slots: array[int] | None = None  # per piece: slot + 1, or 0; None: not read
        self._free: list[int] = []
        self._next = 0  # slots ever used
        self._fd = -1
        self._dirty = False
        size = _HEAD.size + 4 * num_pieces
        self._data_start = -(-size // _ALIGN) * _ALIGN

    # -- the header ----------------------------------------------------------------------
    def _load(self) -> array[int]:
        if self._slots is not None:
            return self._slots
        slots = array("I", bytes(4 * self._num_pieces))
        try:
            with open(self.path, "rb", opener=_nofollow) as f:
                head = f.read(_HEAD.size)
                body = f.read(4 * self._num_pieces)
        except FileNotFoundError:
            head = body = b""
        except OSError as exc:
            raise StorageError(f"error reading {self.path}: {exc.strerror or exc}") from None
        if head:
            magic, plen, count = _HEAD.unpack(head) if len(head) == _HEAD.size else (b"", 0, 0)
            if (magic, plen, count) != (MAGIC, self._piece_length, self._num_pieces) or len(
                body
            ) != 4 * self._num_pieces:
                raise StorageError(f"{self.path} is not this torrent's part file")
            slots = array("I", body)
            if slots.itemsize != 4:  # pragma: no cover - every platform we run on
                raise StorageError("unsigned int is not 4 bytes here")
        used = sorted(s - 1 for s in slots if s)
        if len(set(used)) != len(used):
            raise StorageError(f"{self.path} is damaged (a slot is used twice)")
        self._next = used[-1] + 1 if used else 0
        taken = set(used)
        self._free = [s for s in range(self._next) if s not in taken]
        self._slots = slots
        return slots

    def has(self, piece: int) -> bool:
        return bool(self._load()[piece])

    @property
    def pieces(self) -> list[int]:
        """The pieces with bytes here."""
        return [i for i, s in enumerate(self._load()) if s]

    # -- I/O -----------------------------------------------------------------------------
    def _open(self, create: bool) -> int:
        if self._fd < 0:
            flags = os.O_RDWR | _O_NOFOLLOW | _O_CLOEXEC | (os.O_CREAT if create else 0)
            try:
                self._fd = os.open(self.path, flags, 0o666)
            except OSError as exc:
                raise StorageError(f"error opening {self.path}: {exc.strerror or exc}") from None
        return self._fd

    def write(self, piece: int, offset: int, data: bytes | memoryview) -> None:
        """Store ``data`` at ``offset`` within ``piece`` (a slot is taken if it has none)."""
        slots = self._load()
        if not slots[piece]:
            slot = self._free.pop() if self._free else self._next
            self._next = max(self._next, slot + 1)
            slots[piece] = slot + 1
            self._dirty = True
        fd = self._open(True)
        pos = self._data_start + (slots[piece] - 1) * self._piece_length + offset
        view = memoryview(data)
        try:
            while view:
                n = os.pwrite(fd, view, pos)
                view, pos = view[n:], pos + n
        except OSError as exc:
            raise StorageError(f"error writing {self.path}: {exc.strerror or exc}") from None

    def read(self, piece: int, offset: int, length: int) -> bytes | None:
        """The bytes at ``offset`` in ``piece``; None if the piece has nothing here."""
        slots = self._load()
        if not slots[piece]:
            return None
        fd = self._open(False)
        pos = self._data_start + (slots[piece] - 1) * self._piece_length + offset
        try:
            data = os.pread(fd, length, pos)
        except OSError as exc:
            raise StorageError(f"error reading {self.path}: {exc.strerror or exc}") from None
        return data + bytes(length - len(data))  # a slot's tail never written reads as 0

    def free(self, piece: int) -> None:
        """The piece keeps nothing here any more: its slot may be reused."""
        slots = self._load()
        if slots[piece]:
            self._free.append(slots[piece] - 1)
            slots[piece] = 0
            self._dirty = True

    def flush(self) -> None:
        """Write the header if slots changed, and fsync (blocking)."""
        if self._slots is None or (self._fd < 0 and not self._dirty):
            return
        fd = self._open(True)
        try:
            if self._dirty:
                os.pwrite(fd, _HEAD.pack(MAGIC, self._piece_length, self._num_pieces), 0)
                os.pwrite(fd, self._slots.tobytes(), _HEAD.size)
                self._dirty = False
            os.fsync(fd)
        except OSError as exc:
            raise StorageError(f"error writing {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def delete(self) -> None:
        """Remove the file (the torrent's data is deleted, or nothing is left in it)."""
        self.close()
        self._slots = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"could not delete {self.path}: {exc.strerror or exc}") from None


def _nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | _O_NOFOLLOW | _O_CLOEXEC)

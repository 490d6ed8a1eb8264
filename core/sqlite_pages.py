"""The rows of an SQLite file read page by page, without its b-tree (a ``.recover`` in small).

When an interior b-tree page of a damaged store is lost, every row under it is out of
reach of SQL, though the leaf pages holding them may be intact. This reads each table-leaf
page on its own (cell pointers, record format, overflow chains; the format is
https://www.sqlite.org/fileformat2.html) and skips the pages on the freelist, whose old
cells are rows deleted long ago. It cannot tell which table a row belongs to or whether a
newer version sits in the WAL: the caller judges rows by their shape and content. Pure: the
pages come from ``read_page``; nothing here does I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

LEAF_TABLE = 0x0D
MAX_OVERFLOW_PAGES = 1 << 16  # an overflow chain longer than this is taken for a loop


def header_geometry(page1: bytes) -> tuple[int, int] | None:
    """(page size, usable size) from the file header, or None if it is not an SQLite header."""
    if len(page1) < 100 or not page1.startswith(b"SQLite format 3\x00"):
        return None
    size = struct.unpack(">H", page1[16:18])[0]
    size = 65536 if size == 1 else size
    if size < 512 or size & (size - 1):
        return None
    reserved = page1[20]
    return size, size - reserved


def freelist(page1: bytes, read_page: Callable[[int], bytes | None], limit: int) -> set[int]:
    """The page numbers on the freelist (trunks and leaves), as far as it can be followed."""
    pages: set[int] = set()
    trunk = struct.unpack(">I", page1[32:36])[0]
    while 1 < trunk <= limit and trunk not in pages:
        pages.add(trunk)
        data = read_page(trunk)
        if data is None or len(data) < 8:
            break
        nxt, count = struct.unpack(">II", data[:8])
        for i in range(min(count, (len(data) - 8) // 4)):
            pages.add(struct.unpack(">I", data[8 + 4 * i : 12 + 4 * i])[0])
        trunk = nxt
    return pages


def leaf_records(
    page: bytes, usable: int, read_page: Callable[[int], bytes | None]
) -> Iterator[tuple[int, list[Any]]]:
    """(rowid, values) of every cell of a table-leaf page that decodes whole."""
    if not page or page[0] != LEAF_TABLE or len(page) < 8:
        return
    cells = struct.unpack(">H", page[3:5])[0]
    for i in range(cells):
        at = 8 + 2 * i
        if at + 2 > len(page):
            return
        offset = struct.unpack(">H", page[at : at + 2])[0]
        try:
            yield _cell(page, offset, usable, read_page)
        except (ValueError, IndexError, struct.error):
            continue


def _cell(
    page: bytes, offset: int, usable: int, read_page: Callable[[int], bytes | None]
) -> tuple[int, list[Any]]:
    size, at = _varint(page, offset)
    rowid, at = _varint(page, at)
    limit = usable - 35
    if size <= limit:
        local = size
    else:
        least = (usable - 12) * 32 // 255 - 23
        local = least + (size - least) % (usable - 4)
        if local > limit:
            local = least
    payload = bytearray(page[at : at + local])
    if len(payload) != local:
        raise ValueError("cell runs off its page")
    if size > local:
        nxt = struct.unpack(">I", page[at + local : at + local + 4])[0]
        seen = 0
        while len(payload) < size:
            data = read_page(nxt) if nxt else None
            seen += 1
            if data is None or seen > MAX_OVERFLOW_PAGES:
                raise ValueError("overflow chain broken")
            nxt = struct.unpack(">I", data[:4])[0]
            payload += data[4:usable][: size - len(payload)]
    if rowid >= 1 << 63:
        rowid -= 1 << 64
    return rowid, _record(bytes(payload))


def _record(payload: bytes) -> list[Any]:
    header, at = _varint(payload, 0)
    if header > len(payload):
        raise ValueError("record header too long")
    types = []
    while at < header:
        kind, at = _varint(payload, at)
        types.append(kind)
    values: list[Any] = []
    at = header
    for kind in types:
        if kind == 0:
            values.append(None)
        elif 1 <= kind <= 6:
            n = (1, 2, 3, 4, 6, 8)[kind - 1]
            values.append(int.from_bytes(payload[at : at + n], "big", signed=True))
            at += n
        elif kind == 7:
            values.append(struct.unpack(">d", payload[at : at + 8])[0])
            at += 8
        elif kind in (8, 9):
            values.append(kind - 8)
        elif kind >= 12:
            n = (kind - 12) // 2
            raw = payload[at : at + n]
            if len(raw) != n:
                raise ValueError("value runs off its record")
            values.append(raw.decode("utf-8") if kind % 2 else raw)
            at += n
        else:
            raise ValueError(f"serial type {kind}")
    if at > len(payload):
        raise ValueError("values run off their record")
    return values


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        byte = data[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    raise ValueError("varint")  # pragma: no cover - the loop always returns

"""core/sqlite_pages.py against files SQLite itself wrote: every row read back by page,
overflow chains followed, the freelist found, damage skipped cell by cell."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from btd.core.sqlite_pages import freelist, header_geometry, leaf_records


def pages_of(path: Path) -> tuple[int, int, dict[int, bytes]]:
    data = path.read_bytes()
    geometry = header_geometry(data[:100])
    assert geometry is not None
    size, usable = geometry
    return size, usable, {n + 1: data[n * size : (n + 1) * size] for n in range(len(data) // size)}


def make(path: Path, rows: list[tuple[str, bytes, float | None]]) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB, x REAL)")
    db.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()


def test_every_row_comes_back_with_its_overflow(tmp_path: Path) -> None:
    rows = [(f"k{n}", os.urandom(n * 97 % 9000), n / 3 if n % 2 else None) for n in range(300)]
    path = tmp_path / "a.db"
    make(path, rows)
    _, usable, pages = pages_of(path)
    got = {}
    for page in pages.values():
        for rowid, values in leaf_records(page, usable, pages.get):
            if len(values) == 3:
                got[rowid] = tuple(values)
    assert sorted(got.values()) == sorted(rows)


def test_the_freelist_is_found(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    make(path, [(f"k{n}", os.urandom(3000), None) for n in range(200)])
    db = sqlite3.connect(path)
    db.execute("DELETE FROM t WHERE rowid > 20")
    db.commit()
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    db.close()
    _, _, pages = pages_of(path)
    assert free > 50 and len(freelist(pages[1], pages.get, len(pages))) == free


def test_a_damaged_cell_costs_that_cell_only(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    make(path, [(f"k{n:03d}", b"v" * 50, 1.5) for n in range(40)])
    _, usable, pages = pages_of(path)
    [(n, page)] = [
        (n, p) for n, p in pages.items() if len(list(leaf_records(p, usable, pages.get))) > 30
    ]
    whole = len(list(leaf_records(page, usable, pages.get)))
    broken = bytearray(page)
    first = int.from_bytes(broken[8:10], "big")  # the first cell: a payload size too big
    broken[first : first + 3] = b"\xff\xff\x7f"
    assert len(list(leaf_records(bytes(broken), usable, pages.get))) == whole - 1


def test_not_an_sqlite_header() -> None:
    assert header_geometry(os.urandom(100)) is None
    assert header_geometry(b"SQLite format 3\x00" + b"\x00\x03" + bytes(82)) is None  # size 3

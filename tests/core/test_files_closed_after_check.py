"""A checked torrent keeps no file open (FileStorage.close_handles after a recheck)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.python.failure import Failure

from btd.core.metainfo import FileEntry
from btd.core.storage import FileStorage
from btd.core.verify import Verifier

PIECE = 64


class InlineReactor:
    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        f(*args, **kw)


class InlinePool:
    def callInThreadWithCallback(self, on_result: Any, f: Any, *args: Any, **kw: Any) -> None:
        try:
            value = f(*args, **kw)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, value)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def storage_with_data(tmp_path: Path) -> tuple[FileStorage, bytes]:
    files = [FileEntry(("t", name), 320, 320 * i) for i, name in enumerate("abc")]
    data = bytes((i * 7) % 251 for i in range(960))
    storage = FileStorage(tmp_path, files, PIECE, len(data))
    for p in range(len(data) // PIECE):
        storage.write_piece(p, data[p * PIECE : (p + 1) * PIECE])
    storage.flush()
    storage.close_handles()
    return storage, data


def test_close_handles_closes_the_files_and_the_storage_still_works(tmp_path: Path) -> None:
    storage, data = storage_with_data(tmp_path)
    before = open_fds()
    assert storage.read_piece(0) == data[:PIECE] and storage.read_piece(14) == data[-PIECE:]
    assert open_fds() == before + 2  # two files read, kept open
    storage.close_handles()
    assert open_fds() == before
    assert storage.read(7, 0, 16) == data[7 * PIECE : 7 * PIECE + 16]  # opened again


def test_a_recheck_leaves_no_file_open(tmp_path: Path) -> None:
    storage, data = storage_with_data(tmp_path)
    hashes = b"".join(
        hashlib.sha1(data[i : i + PIECE]).digest() for i in range(0, len(data), PIECE)
    )
    before = open_fds()
    verifier = Verifier(InlineReactor(), InlinePool())
    found: list[Any] = []
    verifier.recheck(storage, hashes, PIECE, len(data), batch_bytes=4 * PIECE).addBoth(found.append)
    assert found[0].count == 15
    assert open_fds() == before  # 10,000 checked torrents kept 10,000 files open

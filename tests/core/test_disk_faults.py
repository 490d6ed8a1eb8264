"""Disk faults injected at every storage call: a clear error, nothing else breaks.

Every os call ``btd.core.storage`` makes (open, pread, pwrite, fsync, ftruncate, stat,
makedirs, ...) is counted on a clean run; then, for each call number and each of EIO, ENOSPC
and EROFS, the same run is repeated with that one call failing. The invariant: the torrent
ends complete with the right bytes (the fault hit a path that is retried or not needed) or in
``error`` with a message naming the error; no exception escapes into the reactor; the
peers of the torrent are not left hanging; and the piece bookkeeping stays consistent.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from torrent_harness import CONTENT, FILE_SIZES, NUM_PIECES, TORRENT_NAME, Swarm

from btd.core import storage as storage_module
from btd.core.wire import messages as m

FAULTS = (errno.EIO, errno.ENOSPC, errno.EROFS)
WATCHED = {
    "open", "pread", "pwrite", "fsync", "ftruncate", "fstat", "stat", "lstat", "makedirs",
    "mkdir", "posix_fallocate", "close", "scandir", "rename", "replace", "unlink", "rmdir",
    "truncate", "statvfs",
}  # fmt: skip


class FaultyOs:
    """``os`` as btd.core.storage sees it: call number ``fail_at`` (0-based, over the
    watched functions) raises OSError(``code``); ``calls`` names every watched call made."""

    def __init__(self, fail_at: int | None = None, code: int = errno.EIO) -> None:
        self.fail_at = fail_at
        self.code = code
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in WATCHED or not callable(real):
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            n = len(self.calls)
            self.calls.append(name)
            if n == self.fail_at:
                raise OSError(self.code, os.strerror(self.code))
            return real(*args, **kwargs)

        return call


@contextmanager
def faulty_os(monkeypatch: pytest.MonkeyPatch, fake: FaultyOs) -> Iterator[FaultyOs]:
    with monkeypatch.context() as patch:
        patch.setattr(storage_module, "os", fake)
        yield fake


def requests_of(conn: Any) -> list[m.Request]:
    return [x for x in conn.new() if isinstance(x, m.Request)]


def download(tmp_path: Path) -> Swarm:
    """A download from one seed, run as far as it goes (to completion or a failure)."""
    s = Swarm(tmp_path)
    s.torrent.start()  # not Swarm.start: a fault may end it in error already
    if s.torrent.state != "downloading":
        return s
    seed = s.seed_peer()
    reqs = requests_of(seed)
    while reqs and s.torrent.state == "downloading":
        seed.answer(reqs)
        reqs = requests_of(seed)
    return s


def serve(tmp_path: Path) -> tuple[Swarm, list[m.Piece]]:
    """A seeding torrent asked for every block by a leecher."""
    s = Swarm(tmp_path, seeding=True)
    s.torrent.start()
    if s.torrent.state != "seeding":
        return s, []
    leecher = s.peer()
    leecher.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    got: list[m.Piece] = []
    for index in range(NUM_PIECES):
        size = min(s.meta.piece_length, len(CONTENT) - index * s.meta.piece_length)
        for begin in range(0, size, 16384):
            leecher.send(m.Request(index, begin, min(16384, size - begin)))
            got += [x for x in leecher.new() if isinstance(x, m.Piece)]
            if s.torrent.state != "seeding":
                return s, got
    return s, got


def on_disk(save_path: Path) -> bytes:
    root = save_path / TORRENT_NAME
    return b"".join((root / name).read_bytes() for name, _ in FILE_SIZES)


def assert_clear_outcome(s: Swarm, code: int, done: Callable[[Swarm], bool]) -> None:
    t = s.torrent
    if t.state == "error":
        said = [os.strerror(code), *{errno.ENOSPC: ["disk full"]}.get(code, [])]
        assert any(text in (t.error or "") for text in said), t.error
        assert [k for k in s.kinds if k == "error"], s.kinds
    else:
        assert done(s), (t.state, t.error)
    s.check()


def count_calls(monkeypatch: pytest.MonkeyPatch, run: Callable[[], Any]) -> list[str]:
    with faulty_os(monkeypatch, FaultyOs()) as fake:
        run()
    assert fake.calls, "the storage made no os calls: the injection point moved"
    return fake.calls


@pytest.mark.parametrize("code", FAULTS, ids=errno.errorcode.get)
def test_every_storage_call_failing_during_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    calls = count_calls(monkeypatch, lambda: download(tmp_path / "clean"))
    assert {"open", "pwrite"} <= set(calls)
    for n in range(len(calls)):
        where = tmp_path / f"{n}"
        with faulty_os(monkeypatch, FaultyOs(n, code)):
            s = download(where)
        assert_clear_outcome(
            s, code, lambda s: s.torrent.complete and on_disk(s.save_path) == CONTENT
        )


@pytest.mark.parametrize("code", FAULTS, ids=errno.errorcode.get)
def test_every_storage_call_failing_while_seeding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    calls = count_calls(monkeypatch, lambda: serve(tmp_path / "clean"))
    assert "pread" in calls
    for n in range(len(calls)):
        with faulty_os(monkeypatch, FaultyOs(n, code)):
            s, got = serve(tmp_path / f"{n}")
        for piece in got:  # whatever was sent is right
            start = piece.index * s.meta.piece_length + piece.begin
            assert bytes(piece.block) == CONTENT[start : start + len(piece.block)]
        served = len(got) > 0
        assert_clear_outcome(
            s, code, lambda s, served=served: s.torrent.state == "seeding" and served
        )

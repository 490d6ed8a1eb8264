"""``session.umask``: what storage creates under it, and what it leaves alone (the socket)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from btd.core import daemon
from btd.core.metainfo import FileEntry
from btd.core.rpc.sockfile import bind_control_socket
from btd.core.storage import FileStorage


@pytest.fixture()
def umask() -> Iterator[None]:
    """Put the test process's umask back, whatever a test sets."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield
    os.umask(saved)


def test_apply_umask_sets_the_value_or_the_inherited_one(umask: None) -> None:
    daemon.apply_umask(0o002, inherited=0o077)
    assert daemon.current_umask() == 0o002
    daemon.apply_umask(None, inherited=0o077)
    assert daemon.current_umask() == 0o077


@pytest.mark.parametrize(
    ("mask", "file_mode", "dir_mode"), [(0o002, 0o664, 0o775), (0o022, 0o644, 0o755)]
)
def test_storage_creates_files_under_the_umask(
    tmp_path: Path, umask: None, mask: int, file_mode: int, dir_mode: int
) -> None:
    daemon.apply_umask(mask, inherited=0o022)
    files = [FileEntry(path=("album", "track.flac"), length=10, offset=0)]
    storage = FileStorage(tmp_path, files, piece_length=16, total_length=10)
    storage.write_piece(0, b"0123456789")
    storage.close()
    assert stat.S_IMODE(os.stat(tmp_path / "album" / "track.flac").st_mode) == file_mode
    assert stat.S_IMODE(os.stat(tmp_path / "album").st_mode) == dir_mode


def test_control_socket_keeps_its_modes_under_any_umask(tmp_path: Path, umask: None) -> None:
    from twisted.internet import reactor
    from twisted.internet.protocol import ServerFactory

    daemon.apply_umask(0o000, inherited=0o022)
    path = tmp_path / "run" / "btd.sock"
    port, created = bind_control_socket(reactor, path, ServerFactory())
    try:
        assert created
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o750
        assert daemon.current_umask() == 0o000  # binding put our umask back
    finally:
        port.stopListening()

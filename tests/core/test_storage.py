from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core.errors import StorageError
from btd.core.storage import WRITE_CHUNK, FileStorage, MissingDataError


@dataclass(frozen=True)
class FE:
    path: tuple[str, ...]
    length: int
    offset: int = 0
    pad: bool = False


def entries(*specs: tuple[str, int] | tuple[str, int, bool]) -> list[FE]:
    out, pos = [], 0
    for spec in specs:
        name, length = spec[0], spec[1]
        pad = bool(spec[2]) if len(spec) > 2 else False
        out.append(FE(tuple(name.split("/")), length, pos, pad))
        pos += length
    return out


def payload(n: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(n))


def write_all(s: FileStorage, data: bytes, piece_length: int) -> None:
    for p in range(s.num_pieces):
        s.write_piece(p, data[p * piece_length : (p + 1) * piece_length])


# A piece (64) larger than several small files; a file (200) spanning several pieces;
# zero-length files; a short last piece (total 333 = 5*64 + 13).
MIXED = [
    ("t/a", 10),
    ("t/empty1", 0),
    ("t/b", 5),
    ("t/sub/c", 7),
    ("t/d", 3),
    ("t/big", 200),
    ("t/empty2", 0),
    ("t/e", 108),
]
MIXED_TOTAL = sum(n for _, n in MIXED)


def test_spans_across_many_files(tmp_path: Path) -> None:
    files = entries(*MIXED)
    s = FileStorage(tmp_path, files, 64, MIXED_TOTAL)
    assert s.num_pieces == 6 and s.piece_size(5) == MIXED_TOTAL - 5 * 64
    segs = s.segments(0, 0, 64)
    assert [(files[i].path[-1], off, n) for i, off, n in segs] == [
        ("a", 0, 10),
        ("b", 0, 5),
        ("c", 0, 7),
        ("d", 0, 3),
        ("big", 0, 39),
    ]
    data = payload(MIXED_TOTAL)
    write_all(s, data, 64)
    # Every file holds its slice of the concatenation.
    for f in files:
        assert (tmp_path.joinpath(*f.path)).read_bytes() == data[f.offset : f.offset + f.length]
    for p in range(s.num_pieces):
        assert s.read_piece(p) == data[p * 64 : (p + 1) * 64]
    assert s.read(0, 8, 20) == data[8:28]  # a block across 4 files
    assert s.read(5, 0, 13) == data[320:]
    s.close()


def test_zero_length_files_are_created(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, entries(*MIXED), 64, MIXED_TOTAL)
    s.write_piece(2, payload(64))
    for name in ("empty1", "empty2"):
        p = tmp_path / "t" / name
        assert p.is_file() and p.stat().st_size == 0
    assert s.pieces_of_file(1) == range(0)
    s.close()


def test_pieces_of_file(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, entries(*MIXED), 64, MIXED_TOTAL)
    assert s.pieces_of_file(0) == range(0, 1)
    assert s.pieces_of_file(5) == range(0, 4)  # big: bytes 25..224
    assert s.pieces_of_file(7) == range(3, 6)  # e: bytes 225..332


def test_bad_spans_and_sizes(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, entries(("f", 100)), 64, 100)
    with pytest.raises(StorageError):
        s.read(1, 30, 10)
    with pytest.raises(StorageError):
        s.read(2, 0, 1)
    with pytest.raises(StorageError):
        s.write_piece(1, b"x" * 64)
    with pytest.raises(StorageError, match="add up"):
        FileStorage(tmp_path, entries(("f", 100)), 64, 101)
    with pytest.raises(StorageError, match="preallocate"):
        FileStorage(tmp_path, entries(("f", 100)), 64, 100, preallocate="bogus")


def test_pad_files_never_written(tmp_path: Path) -> None:
    files = entries(("t/a", 50), ("t/.pad/14", 14, True), ("t/b", 64))
    s = FileStorage(tmp_path, files, 64, 128)
    data = payload(50) + bytes(14) + payload(64)
    write_all(s, data, 64)
    assert not (tmp_path / "t" / ".pad").exists()
    assert s.read_piece(0) == data[:64]
    assert s.read(0, 50, 14) == bytes(14)
    check = s.check_files()
    assert check.all_ok and check.files[1].pad
    s.close()


def test_sparse_creation(tmp_path: Path) -> None:
    size = 64 * 1024 * 1024
    s = FileStorage(tmp_path, entries(("huge", size)), 1 << 20, size)
    s.write_piece(3, b"\x01" * (1 << 20))
    st = (tmp_path / "huge").stat()
    assert st.st_size == size
    assert st.st_blocks * 512 < 8 * (1 << 20)
    assert s.read(0, 0, 16) == bytes(16)  # holes read as zeros
    s.close()


def test_full_preallocation(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, entries(("f", 1 << 20)), 1 << 16, 1 << 20, preallocate="full")
    s.write_piece(0, b"\x02" * (1 << 16))
    st = (tmp_path / "f").stat()
    assert st.st_size == 1 << 20 and st.st_blocks * 512 >= 1 << 20
    s.close()


def test_read_of_missing_file(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, entries(("t/a", 64), ("t/b", 64)), 64, 128)
    with pytest.raises(StorageError, match="file missing: .*a"):
        s.read(0, 0, 16)
    s.write_piece(0, payload(64))
    with pytest.raises(MissingDataError, match="file missing: .*b"):
        s.read_piece(1)
    s.close()


def test_read_of_short_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 70)
    s = FileStorage(tmp_path, entries(("f", 128)), 64, 128)
    assert s.read_piece(0) == b"x" * 64
    with pytest.raises(MissingDataError, match="too short"):
        s.read_piece(1)
    s.close()


def test_enospc_becomes_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = FileStorage(tmp_path, entries(("f", 128)), 64, 128)

    def full(fd: int, data: object, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(StorageError, match=r"disk full while writing .*f") as info:
        s.write_piece(0, payload(64))
    assert not isinstance(info.value, OSError)
    s.close()


def test_a_piece_is_written_in_chunks_of_at_most_write_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1 MiB piece goes to disk as 32 writes of 32 KiB, not one of 1 MiB (the kernel's
    large page-cache folios cost far more system time per GiB), and short writes go on
    where they stopped."""
    piece = 1 << 20
    s = FileStorage(tmp_path, entries(("f", 2 * piece)), piece, 2 * piece)
    real_pwrite = os.pwrite
    sizes: list[int] = []

    def counting(fd: int, data: memoryview, offset: int) -> int:
        sizes.append(len(data))
        if len(sizes) == 3:  # one short write
            return real_pwrite(fd, data[:1000], offset)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", counting)
    data = os.urandom(piece)
    s.write_piece(1, data)
    monkeypatch.undo()
    assert max(sizes) == WRITE_CHUNK == 32 * 1024
    assert len(sizes) == piece // WRITE_CHUNK + 1  # the short write's rest takes one more
    assert s.read_piece(1) == data
    s.close()


def test_other_oserror_names_path_and_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = FileStorage(tmp_path, entries(("t/f", 64)), 64, 64)
    real_open = os.open

    def denied(path, flags, *args, **kwargs):
        if str(path).endswith("f"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(StorageError, match=r"t/f: Permission denied"):
        s.write_piece(0, payload(64))
    with pytest.raises(StorageError, match=r"t/f: Permission denied"):
        s.read_piece(0)


def test_symlink_leading_out_is_refused(tmp_path: Path) -> None:
    save, outside = tmp_path / "save", tmp_path / "outside"
    save.mkdir()
    outside.mkdir()
    (save / "t").symlink_to(outside)  # a folder symlink leading out
    s = FileStorage(save, entries(("t/a", 64)), 64, 64)
    with pytest.raises(StorageError, match="refusing to write through a symlink outside"):
        s.write_piece(0, payload(64))
    assert list(outside.iterdir()) == []
    (save / "t").unlink()
    (save / "t").mkdir()
    (save / "t" / "a").symlink_to(outside / "victim")  # a file symlink leading out
    with pytest.raises(StorageError, match="refusing"):
        s.write_piece(0, payload(64))
    assert not (outside / "victim").exists()
    assert not s.check_files().files[0].exists


def test_the_check_does_not_count_a_file_symlinked_out_of_the_save_path(tmp_path: Path) -> None:
    """check_files resolves folders once per pass: a file that is itself a symlink leading
    out still counts as missing, a folder symlink leading out too."""
    save, outside = tmp_path / "save", tmp_path / "outside"
    (save / "t").mkdir(parents=True)
    outside.mkdir()
    (outside / "victim").write_bytes(payload(64))
    (save / "t" / "a").symlink_to(outside / "victim")
    (save / "u").symlink_to(outside)
    (save / "t" / "b").write_bytes(payload(64))
    s = FileStorage(save, entries(("t/a", 64), ("u/victim", 64), ("t/b", 64)), 64, 192)
    assert [f.exists for f in s.check_files().files] == [False, False, True]


def test_symlink_inside_save_path_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "t").symlink_to(tmp_path / "real")
    s = FileStorage(tmp_path, entries(("t/a", 64)), 64, 64)
    s.write_piece(0, payload(64))
    assert (tmp_path / "real" / "a").read_bytes() == payload(64)
    s.close()


def test_delete_files_only_removes_its_own(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, entries(*MIXED), 64, MIXED_TOTAL)
    write_all(s, payload(MIXED_TOTAL), 64)
    (tmp_path / "t" / "user.txt").write_text("mine")
    (tmp_path / "other").write_text("mine too")
    s.delete_files()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["other", "t", "user.txt"]
    (tmp_path / "t" / "user.txt").unlink()
    s2 = FileStorage(tmp_path, entries(*MIXED), 64, MIXED_TOTAL)
    s2.write_piece(0, payload(64))
    s2.delete_files()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["other"]  # empty folders went too


def test_delete_files_does_not_follow_symlinks(tmp_path: Path) -> None:
    save, outside = tmp_path / "save", tmp_path / "outside"
    save.mkdir()
    outside.mkdir()
    (outside / "a").write_text("keep")
    (outside / "b").write_text("keep")
    (save / "t").mkdir()
    (save / "t" / "a").symlink_to(outside / "a")  # file link: not ours, left alone
    (save / "u").symlink_to(outside)  # folder link: not walked through
    s = FileStorage(save, entries(("t/a", 4), ("u/b", 4)), 8, 8)
    s.delete_files()
    assert (outside / "a").read_text() == "keep" and (outside / "b").read_text() == "keep"
    assert (save / "t" / "a").is_symlink() and (save / "u").is_symlink()


def test_concurrent_writes_from_threads(tmp_path: Path) -> None:
    piece = 4096
    files = entries(*[(f"t/f{i}", 3000 + i * 997) for i in range(9)])
    total = sum(f.length for f in files)
    s = FileStorage(tmp_path, files, piece, total, max_open_files=3)  # force LRU churn
    data = payload(total)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for p in range(k, s.num_pieces, 4):
                s.write_piece(p, data[p * piece : (p + 1) * piece])
                assert s.read_piece(p) == data[p * piece : (p + 1) * piece]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    s.flush()
    for f in files:
        assert tmp_path.joinpath(*f.path).read_bytes() == data[f.offset : f.offset + f.length]
    s.close()


def test_check_files(tmp_path: Path) -> None:
    files = entries(("t/a", 100), ("t/b", 100), ("t/c", 100))
    s = FileStorage(tmp_path, files, 64, 300)
    check = s.check_files()
    assert not check.all_ok and check.bad_files == (0, 1, 2)
    write_all(s, payload(300), 64)
    s.flush()
    assert s.check_files().all_ok
    os.truncate(tmp_path / "t" / "b", 50)
    check = s.check_files()
    assert check.bad_files == (1,)
    st = check.files[1]
    assert st.exists and st.size == 50 and st.pieces == range(1, 4)
    assert check.bad_pieces() == {1, 2, 3}
    (tmp_path / "t" / "c").unlink()
    st = s.check_files().files[2]
    assert not st.exists and st.size == -1
    s.close()


def test_flush_and_close(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, entries(("f", 64)), 64, 64)
    s.flush()  # nothing written: a no-op
    s.write_piece(0, payload(64))
    s.flush()
    s.close()
    with pytest.raises(StorageError, match="closed"):
        s.read_piece(0)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 90), min_size=1, max_size=8).filter(lambda v: sum(v) > 0),
    piece_length=st.integers(1, 70),
    data=st.data(),
)
def test_segments_cover_span_exactly(lengths: list[int], piece_length: int, data) -> None:
    total = sum(lengths)
    s = FileStorage(
        Path("/nonexistent"),
        entries(*[(f"f{i}", n) for i, n in enumerate(lengths)]),
        piece_length,
        total,
    )
    piece = data.draw(st.integers(0, s.num_pieces - 1))
    size = s.piece_size(piece)
    begin = data.draw(st.integers(0, size))
    length = data.draw(st.integers(0, size - begin))
    segs = s.segments(piece, begin, length)
    assert sum(n for _, _, n in segs) == length
    pos = piece * piece_length + begin
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    for index, off, n in segs:
        assert n > 0 and starts[index] + off == pos and off + n <= lengths[index]
        pos += n

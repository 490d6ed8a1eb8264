"""Moving a torrent's files (core/move_files.py): one file system (rename) and across file
systems (copy, fsync, remove; simulated by a rename that answers EXDEV), the refusals made
before anything moves, and the rollback that leaves every file whole at the source."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Any

import pytest

from btd.core.move_files import (
    CHUNK,
    DiskOps,
    FileSpec,
    MoveFailed,
    MoveJob,
    MoveRefused,
    copy_chunk,
    plan_move,
)
from btd.core.storage import FileStorage

PIECE = 16 * 1024
FILES = {("t", "a.bin"): 3 * CHUNK + 123, ("t", "sub", "b.bin"): 5000, ("t", "c.bin"): 2 * CHUNK}


class Entry:
    def __init__(self, path: tuple[str, ...], length: int) -> None:
        self.path, self.length, self.pad = path, length, False


def make(
    tmp_path: Path, files: dict[tuple[str, ...], int] = FILES
) -> tuple[Path, FileStorage, dict]:
    src = tmp_path / "src"
    rng = random.Random(5)
    data = {}
    for parts, size in files.items():
        path = src.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        data[parts] = rng.randbytes(size)
        path.write_bytes(data[parts])
    entries = [Entry(parts, size) for parts, size in files.items()]
    total = sum(files.values())
    return src, FileStorage(src, entries, PIECE, total), data


def specs(files: dict[tuple[str, ...], int] = FILES) -> list[FileSpec]:
    return [FileSpec(i, parts, size) for i, (parts, size) in enumerate(files.items())]


def run(job: MoveJob) -> int:
    steps = 1
    while not job.step():
        steps += 1
    return steps


def whole_at(root: Path, data: dict) -> bool:
    return all(root.joinpath(*parts).read_bytes() == blob for parts, blob in data.items())


def stream(storage: FileStorage, data: dict) -> bytes:
    total = sum(len(b) for b in data.values())
    return b"".join(storage.read_piece(i) for i in range(storage.num_pieces) if i * PIECE < total)


def test_one_file_system_renames_every_file(tmp_path: Path) -> None:
    src, storage, data = make(tmp_path)
    before = stream(storage, data)
    dst = tmp_path / "new" / "deeper"
    job = MoveJob(plan_move(src, dst, specs()), storage)
    run(job)
    assert job.progress == 1.0
    assert job.commit() == os.stat(dst).st_dev
    assert whole_at(dst, data)
    assert not (src / "t").exists()  # the torrent's folders went with it
    assert src.is_dir()  # the save path itself stays
    assert storage.save_path == dst and stream(storage, data) == before


def exdev(src: str, dst: str) -> None:
    raise OSError(errno.EXDEV, "Invalid cross-device link")


def test_across_file_systems_copies_then_removes_the_sources_at_the_end(tmp_path: Path) -> None:
    src, storage, data = make(tmp_path)
    before = stream(storage, data)
    dst = tmp_path / "other"
    copied: list[int] = []

    def counting(sfd: int, dfd: int, offset: int, length: int) -> int:
        n = copy_chunk(sfd, dfd, offset, length)
        copied.append(n)
        return n

    job = MoveJob(plan_move(src, dst, specs()), storage, DiskOps(exdev, counting), CHUNK)
    assert not job.step()  # a step copies at most STEP_BYTES: the first file takes more
    assert job.progress > 0
    steps = 1 + run(job)
    assert steps >= 2 and sum(copied) == sum(FILES.values())
    assert whole_at(src, data)  # every source is still there until the commit
    assert stream(storage, data) == before  # read from the copies now
    assert storage.file_path(0) == dst / "t" / "a.bin"
    job.commit()
    assert whole_at(dst, data) and not (src / "t").exists()
    assert stream(storage, data) == before


def test_a_copy_keeps_holes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    size = 8 * CHUNK
    with open(src / "sparse.bin", "wb") as f:
        f.truncate(size)
        f.seek(3 * CHUNK)
        f.write(b"x" * 100)
    storage = FileStorage(src, [Entry(("sparse.bin",), size)], PIECE, size)
    job = MoveJob(
        plan_move(src, tmp_path / "dst", [FileSpec(0, ("sparse.bin",), size)]),
        storage,
        DiskOps(exdev),
    )
    run(job)
    job.commit()
    out = tmp_path / "dst" / "sparse.bin"
    assert out.stat().st_size == size
    assert out.read_bytes()[3 * CHUNK : 3 * CHUNK + 100] == b"x" * 100
    assert out.stat().st_blocks * 512 < size  # not written as zeros


def test_disk_full_half_way_through_a_copy_puts_everything_back(tmp_path: Path) -> None:
    src, storage, data = make(tmp_path)
    before = stream(storage, data)
    dst = tmp_path / "small"
    written = [0]

    def fills_up(sfd: int, dfd: int, offset: int, length: int) -> int:
        if written[0] > 4 * CHUNK:  # the second file's copy runs out of room
            raise OSError(errno.ENOSPC, "No space left on device")
        written[0] += length
        return copy_chunk(sfd, dfd, offset, length)

    job = MoveJob(plan_move(src, dst, specs()), storage, DiskOps(exdev, fills_up))
    with pytest.raises(MoveFailed, match="disk full"):
        run(job)
    assert job.rollback() == []
    assert whole_at(src, data)
    assert not dst.exists()  # partial and finished copies and the folders made: gone
    assert storage.save_path == src and stream(storage, data) == before


def test_a_failed_rename_undoes_the_renames_done(tmp_path: Path) -> None:
    src, storage, data = make(tmp_path)
    calls = []

    def second_fails(a: str, b: str) -> None:
        calls.append(a)
        if len(calls) == 2:
            raise PermissionError(errno.EACCES, "Permission denied")
        os.rename(a, b)

    dst = tmp_path / "dst"
    job = MoveJob(plan_move(src, dst, specs()), storage, DiskOps(second_fails))
    with pytest.raises(MoveFailed, match="Permission denied"):
        run(job)
    assert (dst / "t" / "a.bin").exists()  # the first one was moved
    assert job.rollback() == []
    assert whole_at(src, data) and not dst.exists()
    assert stream(storage, data)


def test_the_source_and_the_target_are_checked_before_anything_moves(tmp_path: Path) -> None:
    src, storage, data = make(tmp_path)
    with pytest.raises(MoveRefused, match="already"):
        plan_move(src, src, specs())
    with pytest.raises(MoveRefused, match="inside the torrent's own folder"):
        plan_move(src, src / "t" / "sub", specs())
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(MoveRefused, match="not a folder"):
        plan_move(src, tmp_path / "file", specs())


def test_a_symlink_at_the_source_is_refused(tmp_path: Path) -> None:
    src, storage, data = make(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "c.bin").write_bytes(b"not the torrent's")
    (src / "t" / "c.bin").unlink()
    (src / "t" / "c.bin").symlink_to(outside / "c.bin")
    with pytest.raises(MoveRefused, match="symlink"):
        plan_move(src, tmp_path / "dst", specs())
    (src / "t" / "c.bin").unlink()
    os.rename(src / "t" / "sub", outside / "sub")
    (src / "t" / "sub").symlink_to(outside / "sub")
    with pytest.raises(MoveRefused, match="symlink"):
        plan_move(src, tmp_path / "dst", specs())
    assert not (tmp_path / "dst").exists()


def test_a_symlink_in_the_target_is_refused(tmp_path: Path) -> None:
    src, storage, data = make(tmp_path)
    dst = tmp_path / "dst"
    (tmp_path / "elsewhere").mkdir()
    dst.mkdir()
    (dst / "t").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(MoveRefused, match="symlink"):
        plan_move(src, dst, specs())
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_other_files_of_the_same_name_in_the_target_are_not_overwritten(tmp_path: Path) -> None:
    src, storage, data = make(tmp_path)
    dst = tmp_path / "dst"
    (dst / "t" / "sub").mkdir(parents=True)
    (dst / "t" / "sub" / "b.bin").write_bytes(b"someone else's")
    with pytest.raises(MoveRefused, match="exists with other content"):
        plan_move(src, dst, specs())
    assert (dst / "t" / "sub" / "b.bin").read_bytes() == b"someone else's"
    assert whole_at(src, data)


def test_an_identical_file_in_the_target_is_used(tmp_path: Path) -> None:
    src, storage, data = make(tmp_path)
    dst = tmp_path / "dst"
    (dst / "t" / "sub").mkdir(parents=True)
    (dst / "t" / "sub" / "b.bin").write_bytes(data[("t", "sub", "b.bin")])
    job = MoveJob(plan_move(src, dst, specs()), storage)
    run(job)
    job.commit()
    assert whole_at(dst, data) and not (src / "t").exists()


def test_files_not_written_yet_are_created_in_the_new_place(tmp_path: Path) -> None:
    src, storage, data = make(tmp_path)
    (src / "t" / "c.bin").unlink()
    dst = tmp_path / "dst"
    job = MoveJob(plan_move(src, dst, specs()), storage)
    run(job)
    job.commit()
    assert not (dst / "t" / "c.bin").exists()
    storage.write_piece(storage.num_pieces - 1, bytes(storage.piece_size(storage.num_pieces - 1)))
    assert (dst / "t" / "c.bin").exists() and not (src / "t").exists()


def test_reads_during_a_move_find_each_file(tmp_path: Path) -> None:
    """Between steps (as the pool interleaves them) every piece reads back the same."""
    src, storage, data = make(tmp_path)
    before = stream(storage, data)
    reads: list[Any] = []
    job = MoveJob(plan_move(src, tmp_path / "dst", specs()), storage, DiskOps(exdev), CHUNK)
    while not job.step():
        reads.append(stream(storage, data) == before)
    job.commit()
    assert reads and all(reads)


def test_a_torrent_with_a_part_file_is_not_moved_yet(tmp_path: Path) -> None:
    """Its part file (pieces shared with skipped files) would be left behind: refused first."""
    src, storage, data = make(tmp_path)
    part = src / ".abc.parts"
    plan_move(src, tmp_path / "dst", specs(), part)  # no part file yet: fine
    part.write_bytes(b"x")
    with pytest.raises(MoveRefused) as info:
        plan_move(src, tmp_path / "dst", specs(), part)
    assert ".abc.parts" in str(info.value) and info.value.field == "info_hash"
    assert whole_at(src, data) and not (tmp_path / "dst").exists()

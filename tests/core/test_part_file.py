"""The part file, and FileStorage keeping skipped files' bytes in it."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from btd.core.errors import StorageError
from btd.core.part_file import PartFile
from btd.core.storage import FileStorage, MissingDataError


@dataclass(frozen=True)
class F:
    path: tuple[str, ...]
    length: int
    pad: bool = False


PL = 1000
# a = 0..2499 (pieces 0-2), b = 2500..3699 (pieces 2-3), c = 3700..5999 (pieces 3-5)
FILES = [F(("t", "a"), 2500), F(("t", "b"), 1200), F(("t", "c"), 2300)]
TOTAL = 6000
DATA = random.Random(3).randbytes(TOTAL)


def piece(i: int) -> bytes:
    return DATA[i * PL : (i + 1) * PL]


def storage(root: Path) -> FileStorage:
    return FileStorage(root, FILES, PL, TOTAL, part_name=".abc.parts")


def test_part_file_round_trip_and_slots_reused(tmp_path: Path) -> None:
    p = PartFile(tmp_path / "x.parts", 100, 50)
    assert p.read(3, 0, 10) is None and not p.path.exists()
    p.write(3, 10, b"hello")
    p.write(7, 0, b"world")
    assert p.read(3, 10, 5) == b"hello" and p.read(7, 0, 5) == b"world"
    assert p.read(3, 0, 10) == bytes(10)  # never written: zeros
    p.flush()
    p.close()
    again = PartFile(tmp_path / "x.parts", 100, 50)
    assert again.pieces == [3, 7] and again.read(7, 0, 5) == b"world"
    again.free(3)
    again.write(9, 0, b"reused")
    assert again.pieces == [7, 9]
    size = os.path.getsize(again.path)
    assert size <= again._data_start + 2 * 100  # two slots, no more
    with pytest.raises(StorageError, match="not this torrent"):
        PartFile(tmp_path / "x.parts", 200, 50).read(0, 0, 1)


def test_skipped_file_is_never_created_and_spanning_pieces_read_whole(tmp_path: Path) -> None:
    s = storage(tmp_path)
    s.skip_file(1)  # b: pieces 2 and 3 span it and a wanted file
    for i in (0, 1, 2, 3, 4, 5):
        s.write_piece(i, piece(i))
    s.flush()
    names = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert names == ["a", "c"]
    assert (tmp_path / ".abc.parts").exists()
    assert (tmp_path / "t" / "a").read_bytes() == DATA[:2500]
    assert (tmp_path / "t" / "c").read_bytes() == DATA[3700:]
    for i in range(6):  # reads for upload or a recheck assemble files + part file
        assert s.read_piece(i) == piece(i)
    check = s.check_files()
    assert check.files[1].in_part and check.files[1].ok and check.all_ok
    s.close()
    # a restart (new storage) reads the part file back
    s2 = storage(tmp_path)
    s2.skip_file(1)
    assert s2.read_piece(2) == piece(2) and s2.read_piece(3) == piece(3)


def test_wanting_a_skipped_file_moves_its_bytes_out(tmp_path: Path) -> None:
    s = storage(tmp_path)
    s.skip_file(1)
    s.write_piece(2, piece(2))  # bytes 2000..2499 to a, 2500..2999 to the part file
    s.write_piece(3, piece(3))
    s.want_file(1)
    s.flush()
    b = (tmp_path / "t" / "b").read_bytes()
    assert b[:1200] == DATA[2500:3700]  # pieces 2 and 3 cover all of b
    assert s.read_piece(2) == piece(2) and s.read_piece(3) == piece(3)
    assert not s.in_part(1)
    assert PartFile(tmp_path / ".abc.parts", PL, 6).pieces == []  # slots freed


def test_a_skipped_file_that_exists_keeps_being_used(tmp_path: Path) -> None:
    s = storage(tmp_path)
    s.write_piece(2, piece(2))  # b is created while wanted
    s.skip_file(1)
    s.write_piece(3, piece(3))
    assert (tmp_path / "t" / "b").read_bytes()[:1200] == DATA[2500:3700]
    assert not (tmp_path / ".abc.parts").exists()


def test_resume_trusts_pieces_whose_skipped_bytes_are_in_the_part_file(tmp_path: Path) -> None:
    from btd.core.bitfield import Bitfield
    from btd.core.resume import ResumeProgress, resume_plan

    s = storage(tmp_path)
    s.skip_file(1)
    for i in (0, 1, 2, 3):
        s.write_piece(i, piece(i))
    s.flush()
    have = Bitfield(6)
    for i in (0, 1, 2, 3):
        have.add(i)
    sizes = tuple(-1 if s.in_part(n) else f.length for n, f in enumerate(FILES))
    assert sizes == (2500, -1, 2300)  # as TorrentData.progress_of records them
    progress = ResumeProgress(have.to_bytes(), 6, 0, 0, sizes, None, 0.0)
    s.close()
    again = storage(tmp_path)  # a restart: the selection comes back from the options
    again.skip_file(1)
    plan = resume_plan(progress, again.check_files().files, 6)
    assert plan.recheck == [] and set(plan.trusted) == {0, 1, 2, 3}


def test_missing_part_data_is_missing_data(tmp_path: Path) -> None:
    s = storage(tmp_path)
    s.skip_file(1)
    s.write_piece(1, piece(1))
    with pytest.raises(MissingDataError):
        s.read_piece(2)


def test_delete_files_removes_the_part_file(tmp_path: Path) -> None:
    s = storage(tmp_path)
    s.skip_file(1)
    s.write_piece(2, piece(2))
    s.flush()
    s.delete_files()
    assert not (tmp_path / ".abc.parts").exists() and not (tmp_path / "t").exists()

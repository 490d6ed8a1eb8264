"""A Torrent with skipped files: only wanted pieces are asked for, skipped files never
appear on disk, completion means the wanted files are done, and wanting a file later
downloads it too (its bytes from the part file included)."""

from __future__ import annotations

from pathlib import Path

from torrent_harness import (
    CONTENT,
    FILE_SIZES,
    NUM_PIECES,
    PIECE_LENGTH,
    TORRENT_NAME,
    TOTAL_LENGTH,
    Conn,
    Swarm,
    requests_in,
)

from btd.core.bitfield import Bitfield
from btd.core.wire import messages as m

A_LEN = FILE_SIZES[0][1]  # a.bin: pieces 0..3; b.bin: pieces 3..9 (piece 3 spans both)


def download(seed: Conn, first: list[m.Message] | None = None) -> set[int]:
    """Answer our requests until we stop asking; the pieces asked for."""
    asked: set[int] = set()
    reqs = requests_in(seed.new() if first is None else first)
    while reqs:
        asked |= {r.index for r in reqs}
        seed.answer(reqs)
        reqs = requests_in(seed.new())
    return asked


def test_only_the_wanted_file_is_fetched_and_the_torrent_completes(tmp_path: Path) -> None:
    s = Swarm(tmp_path, files_skipped=(1,)).start()
    t = s.torrent
    assert t.book.wanted_bytes == 4 * PIECE_LENGTH  # pieces 0..3
    seed = s.seed_peer()
    asked = download(seed)
    assert asked == {0, 1, 2, 3}
    assert t.state == "seeding" and t.complete and not t.book.have.complete
    assert s.kinds.count("completed") == 1
    root = s.save_path / TORRENT_NAME
    assert sorted(p.name for p in root.iterdir()) == ["a.bin"]
    assert (root / "a.bin").read_bytes() == CONTENT[:A_LEN]
    assert (s.save_path / f".{t.hex}.parts").exists()
    assert not seed.closing  # a partial seed keeps the seed: it has what we may want later
    s.check()

    # the second file becomes wanted: downloading again, then complete with both files
    t.set_files([1], wanted=True)
    assert t.state == "downloading"
    sent = seed.new()
    assert m.INTERESTED_MSG in sent
    asked = download(seed, sent)
    assert asked == set(range(4, NUM_PIECES))  # piece 3 stays verified: its bytes moved
    assert t.state == "seeding" and t.book.have.complete
    assert s.kinds.count("completed") == 2
    assert (root / "b.bin").read_bytes() == CONTENT[A_LEN:TOTAL_LENGTH]
    s.check()


def test_interest_counts_only_wanted_pieces(tmp_path: Path) -> None:
    s = Swarm(tmp_path, files_skipped=(1,)).start()
    partial = s.peer()
    has = Bitfield(NUM_PIECES)
    for i in (5, 6):  # pieces of the skipped file only
        has.add(i)
    partial.send(m.Bitfield(has.to_bytes()))
    assert not partial.new_of(m.Interested)
    partial.send(m.Have(7))  # still only the skipped file
    assert not partial.new_of(m.Interested)
    partial.send(m.Have(2))
    assert partial.new_of(m.Interested)


def test_skipping_everything_left_completes_at_once(tmp_path: Path) -> None:
    s = Swarm(tmp_path, partial=True).start()  # a.bin present: pieces 0..2 had
    t = s.torrent
    assert t.state == "downloading"
    t.set_files([1], wanted=False)  # piece 3 spans a.bin: still wanted
    assert t.state == "downloading" and t.book.wanted_left == PIECE_LENGTH
    t.set_files([0], wanted=False)
    assert t.state == "seeding" and s.kinds.count("completed") == 1
    assert t.options.files_skipped == (0, 1)

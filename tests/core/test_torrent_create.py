"""btd.core.torrent_create: scanning, hashing, the .torrent, and libtorrent agreeing on it."""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from btdtest import import_libtorrent, write_files

from btd.core.bencode import decode
from btd.core.metainfo import parse_metainfo
from btd.core.torrent_create import (
    SourceFile,
    TorrentCreateError,
    auto_piece_size,
    check_piece_size,
    check_tracker,
    create_torrent,
    hash_pieces,
    parse_size,
    scan,
)

KiB = 1024
MiB = 1024 * KiB
# odd sizes so pieces straddle file boundaries; a hidden file, an empty one, nesting
TREE = {
    "album/.hidden": 5_000,
    "album/B/c.bin": 70_001,
    "album/a.bin": 40_000,
    "album/empty": 0,
    "album/sub/deeper/y.bin": 100_003,
    "album/sub/x.bin": 16_384,
    "album/Z.bin": 1,
}


def lt_info_hash(files: list[tuple[str, int, bool]], parent: Path, piece: int) -> str:
    """libtorrent's own v1 torrent for exactly these files (path, size, executable), in order."""
    lt = import_libtorrent()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = lt.file_storage()
        for path, size, executable in files:
            flags = lt.file_storage.flag_executable if executable else 0
            fs.add_file(path, size, flags)
        ct = lt.create_torrent(fs, piece, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, str(parent))
    return str(lt.torrent_info(lt.bencode(ct.generate())).info_hashes().v1)


def lt_add_files(path: Path) -> list[tuple[str, int]]:
    """What libtorrent's own directory walk (lt.add_files) finds: (path, size), its order."""
    lt = import_libtorrent()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = lt.file_storage()
        lt.add_files(fs, str(path))
        return [(fs.file_path(i), fs.file_size(i)) for i in range(fs.num_files())]


def naive_pieces(blob: bytes, piece: int) -> bytes:
    return b"".join(hashlib.sha1(blob[i : i + piece]).digest() for i in range(0, len(blob), piece))


# -- sizes and URLs -----------------------------------------------------------------------------


def test_parse_size() -> None:
    assert [parse_size(t) for t in ("16384", "256K", "256k", "1M", "1MiB", "2mb", "1G")] == [
        16384, 256 * KiB, 256 * KiB, MiB, MiB, 2 * MiB, 1024 * MiB,
    ]  # fmt: skip
    for bad in ("", "K", "1.5M", "-1M", "1T", "12 apples"):
        with pytest.raises(TorrentCreateError, match="bad size"):
            parse_size(bad)


def test_piece_size_must_be_a_power_of_two_in_range() -> None:
    assert check_piece_size(16 * KiB) == 16 * KiB and check_piece_size(16 * MiB) == 16 * MiB
    for bad in (8 * KiB, 48 * KiB, 32 * MiB, 0):
        with pytest.raises(TorrentCreateError, match="power of two"):
            check_piece_size(bad)


def test_auto_piece_size_matches_libtorrent() -> None:
    lt = import_libtorrent()
    sizes = [1, 16 * KiB, MiB, 2684355, 2684356, 10 * MiB, 100 * MiB, 700 * MiB, 4 * 2**30,
             50 * 2**30, 700 * 2**30, 2**42]  # fmt: skip
    for size in sizes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            fs = lt.file_storage()
            fs.add_file("x", size)
            expected = lt.create_torrent(fs, 0, flags=lt.create_torrent.v1_only).piece_length()
        assert auto_piece_size(size) == expected, size
    assert auto_piece_size(2**50) == 16 * MiB


def test_tracker_urls_are_checked() -> None:
    for good in ("http://t.example/announce", "https://t.example:8443/a?k=1", "udp://t:6969"):
        assert check_tracker(good) == good
    for bad in ("ftp://t.example/", "t.example/announce", "http://", "http://a b/", "udp:x"):
        with pytest.raises(TorrentCreateError, match="bad tracker URL"):
            check_tracker(bad)


# -- scanning -----------------------------------------------------------------------------------


def test_scan_sorts_includes_hidden_and_empty_skips_links(tmp_path: Path) -> None:
    write_files(tmp_path, TREE)
    album = tmp_path / "album"
    (album / "link").symlink_to("a.bin")
    (album / "dirlink").symlink_to("sub")
    os.mkfifo(album / "fifo")
    (album / "nothing-here").mkdir()
    found = scan(album)
    assert found.name == "album" and found.multi_file
    assert [f.rel for f in found.files] == [
        (".hidden",), ("B", "c.bin"), ("Z.bin",), ("a.bin",), ("empty",),
        ("sub", "deeper", "y.bin"), ("sub", "x.bin"),
    ]  # fmt: skip
    assert found.skipped == ("dirlink", "fifo", "link")
    assert found.total_length == sum(TREE.values())


def test_scan_finds_what_libtorrent_finds(tmp_path: Path) -> None:
    """Same files and sizes as lt.add_files (hidden and empty included); only the order
    differs: libtorrent keeps the directory-listing order, we sort."""
    write_files(tmp_path, TREE)
    ours = sorted(("/".join(("album", *f.rel)), f.length) for f in scan(tmp_path / "album").files)
    assert ours == sorted(lt_add_files(tmp_path / "album"))


def test_scan_refuses_what_cannot_be_shared(tmp_path: Path) -> None:
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "hollow" / "a").mkdir(parents=True)
    (tmp_path / "zeros").mkdir()
    (tmp_path / "zeros" / "e").write_bytes(b"")
    os.mkfifo(tmp_path / "fifo")
    cases = {
        tmp_path / "missing": "cannot read",
        tmp_path / "empty.bin": "empty",
        tmp_path / "hollow": "no files",
        tmp_path / "zeros": "every file is empty",
        tmp_path / "fifo": "not a regular file",
    }
    for path, message in cases.items():
        with pytest.raises(TorrentCreateError, match=message):
            scan(path)


def test_scan_refuses_names_that_are_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    try:
        with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "wb") as f:
            f.write(b"x")
    except OSError:
        pytest.skip("the file system refuses non-UTF-8 names")
    with pytest.raises(TorrentCreateError, match="not valid UTF-8"):
        scan(folder)


def test_scan_follows_a_symlinked_path_but_excludes_files(tmp_path: Path) -> None:
    write_files(tmp_path, {"real/a.bin": 10, "real/out.torrent": 5})
    (tmp_path / "alias").symlink_to("real")
    found = scan(tmp_path / "alias", exclude=[tmp_path / "real" / "out.torrent"])
    assert found.name == "alias" and [f.rel for f in found.files] == [("a.bin",)]
    assert found.skipped == ("out.torrent",)


# -- hashing ------------------------------------------------------------------------------------


def test_hash_pieces_matches_hashlib_across_files_any_workers(tmp_path: Path) -> None:
    write_files(tmp_path, TREE, seed=3)
    files = scan(tmp_path / "album").files
    blob = b"".join(f.path.read_bytes() for f in files)
    expected = naive_pieces(blob, 16 * KiB)
    for workers, read_size in ((1, 16 * KiB), (3, 16 * KiB), (2, 64 * KiB), (None, 8 * MiB)):
        seen: list[int] = []
        got = hash_pieces(files, 16 * KiB, workers=workers, read_size=read_size,
                          progress=seen.append)  # fmt: skip
        assert got == expected, (workers, read_size)
        assert seen == sorted(seen) and seen[-1] == len(blob)


def test_a_file_that_shrank_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 1000)
    lying = [SourceFile(path, ("a.bin",), 5000)]
    with pytest.raises(TorrentCreateError, match="shrank"):
        hash_pieces(lying, 16 * KiB)


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    gone = [SourceFile(tmp_path / "gone.bin", ("gone.bin",), 10)]
    with pytest.raises(TorrentCreateError, match="cannot read"):
        hash_pieces(gone, 16 * KiB)


# -- the .torrent, against libtorrent -------------------------------------------------------------


def test_single_file_info_hash_equals_libtorrent(tmp_path: Path) -> None:
    lt = import_libtorrent()
    write_files(tmp_path, {"movie.mkv": 3 * MiB + 12345}, seed=7)
    path = tmp_path / "movie.mkv"
    for piece in (16 * KiB, 256 * KiB, None):
        created = create_torrent(path, piece_length=piece)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            fs = lt.file_storage()
            lt.add_files(fs, str(path))
            ct = lt.create_torrent(fs, piece or 0, flags=lt.create_torrent.v1_only)
        lt.set_piece_hashes(ct, str(tmp_path))
        info = lt.torrent_info(lt.bencode(ct.generate()))
        assert created.hex == str(info.info_hashes().v1), piece
        assert created.piece_length == info.piece_length()
        assert created.num_pieces == info.num_pieces()


def test_folder_info_hash_equals_libtorrent(tmp_path: Path) -> None:
    write_files(tmp_path, TREE, seed=9)
    album = tmp_path / "album"
    (album / "sub" / "x.bin").chmod(0o755)  # executable: attr "x", as libtorrent writes it
    for piece in (16 * KiB, 32 * KiB):
        created = create_torrent(album, piece_length=piece)
        listing = [("/".join(("album", *f.rel)), f.length, f.executable) for f in created.files]
        assert [p for p, _, x in listing if x] == ["album/sub/x.bin"]
        assert created.hex == lt_info_hash(listing, tmp_path, piece)
    info = decode(create_torrent(album, piece_length=16 * KiB).data)[b"info"]
    assert not any(b"p" in f.get(b"attr", b"") for f in info[b"files"])  # no pad files


def test_a_folder_with_one_file_is_still_multi_file(tmp_path: Path) -> None:
    write_files(tmp_path, {"one/only.bin": 50_000})
    created = create_torrent(tmp_path / "one", piece_length=16 * KiB)
    meta = parse_metainfo(created.data)
    assert meta.multi_file and meta.name == "one"
    assert created.hex == lt_info_hash([("one/only.bin", 50_000, False)], tmp_path, 16 * KiB)


def test_metainfo_fields(tmp_path: Path) -> None:
    write_files(tmp_path, TREE)
    trackers = ["http://a.example/announce", "udp://b.example:6969", "http://a.example/announce"]
    before = int(time.time())
    created = create_torrent(
        tmp_path / "album", piece_length=32 * KiB, trackers=trackers, private=True,
        comment="made for tests", created_by="btd 9.9",
    )  # fmt: skip
    meta = parse_metainfo(created.data)
    assert meta.info_hash == created.info_hash and meta.name == "album"
    assert meta.private and meta.piece_length == 32 * KiB
    assert meta.total_length == created.total_length == sum(TREE.values())
    assert meta.num_pieces == created.num_pieces == -(-created.total_length // (32 * KiB))
    assert meta.announce_tiers == (("http://a.example/announce",), ("udp://b.example:6969",))
    assert meta.comment == "made for tests" and meta.created_by == "btd 9.9"
    assert before <= (meta.creation_date or 0) <= int(time.time())
    assert [f.path for f in meta.files][:2] == [("album", ".hidden"), ("album", "B", "c.bin")]
    top: dict[bytes, Any] = decode(created.data)
    assert top[b"announce"] == b"http://a.example/announce"


def test_minimal_metainfo_has_no_optional_keys(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"hello")
    top = decode(create_torrent(tmp_path / "a.txt", creation_date=1700000000).data)
    assert sorted(top) == [b"creation date", b"info"] and top[b"creation date"] == 1700000000
    assert sorted(top[b"info"]) == [b"length", b"name", b"piece length", b"pieces"]
    assert top[b"info"][b"pieces"] == hashlib.sha1(b"hello").digest()


def test_bad_tracker_fails_before_hashing(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "a.txt").write_bytes(b"hello")
    monkeypatch.setattr("btd.core.torrent_create.scan", lambda *a, **k: pytest.fail("scanned"))
    with pytest.raises(TorrentCreateError, match="bad tracker"):
        create_torrent(tmp_path / "a.txt", trackers=["gopher://x/"])

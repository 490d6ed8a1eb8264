"""Make a v1 .torrent from a file or a folder (what ``btctl create`` runs).

Pure (standard library only, no Twisted, no daemon) so it can be tested and reused without
btctl. The output matches what libtorrent's ``create_torrent(..., v1_only)`` makes for the
same files in the same order and piece size: same info dict keys, ``attr: "x"`` for
executable files, no pad files. Files in a folder are sorted by their path (libtorrent
keeps directory-listing order, which differs between file systems); hidden files are
included; symlinks and special files inside a folder are skipped, never followed.

Hashing reads the data once, sequentially, in large reads on the calling thread, and
hashes whole batches of pieces on a thread pool (hashlib releases the GIL on large
buffers), so every core works while the order of the piece hashes is kept.

Size: about 460 lines, because scanning, hashing and writing the file are one pipeline
whose rules (libtorrent's layout and piece sizes) the v2 maker reuses.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from btd.core.bencode import encode
from btd.core.errors import BtdError

__all__ = [
    "AUTO_MAX_PIECE",
    "MAX_PIECE",
    "MIN_PIECE",
    "CreatedTorrent",
    "FileList",
    "SourceFile",
    "TorrentCreateError",
    "auto_piece_size",
    "check_tracker",
    "create_torrent",
    "hash_pieces",
    "parse_size",
    "prepare",
    "scan",
]

MIN_PIECE = 16 * 1024
MAX_PIECE = 16 * 1024 * 1024
AUTO_MAX_PIECE = MAX_PIECE
READ_SIZE = 8 * 1024 * 1024  # bytes per read() and per hashing job (a whole number of pieces)
TRACKER_SCHEMES = ("http", "https", "udp")

# libtorrent's automatic piece size (create_torrent.cpp): the first table entry not below
# the total size picks 16 KiB << index; past the table, 16 MiB. This gives a .torrent whose
# hash list is about twice the square root of the total size (64 pieces for 1 MiB, 1024
# for 256 MiB, 4096 for 4 GiB).
_LT_SIZE_TABLE = (
    2684355, 10737418, 42949673, 171798692, 687194767, 2748779069, 10995116278,
    43980465111, 175921860444, 703687441777,
)  # fmt: skip


class TorrentCreateError(BtdError):
    """The torrent cannot be made: unreadable or empty input, a bad size or tracker URL."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file to put in the torrent: where it is on disk and its path inside the torrent
    (``rel`` excludes the torrent's name; empty for a single-file torrent)."""

    path: Path
    rel: tuple[str, ...]
    length: int
    executable: bool = False


@dataclass(frozen=True, slots=True)
class FileList:
    """What ``scan`` found: the torrent's name, its files in torrent order, what was skipped."""

    name: str
    files: tuple[SourceFile, ...]
    multi_file: bool
    skipped: tuple[str, ...] = ()

    @property
    def total_length(self) -> int:
        return sum(f.length for f in self.files)


@dataclass(frozen=True)
class CreatedTorrent:
    """A finished .torrent: its bytes and the facts a caller reports."""

    data: bytes = field(repr=False)
    info_hash: bytes
    name: str
    piece_length: int
    num_pieces: int
    total_length: int
    files: tuple[SourceFile, ...] = field(repr=False)
    skipped: tuple[str, ...] = ()
    info_hash_v2: bytes | None = None  # v2 and hybrid (core/torrent_create_v2.py)

    @property
    def hex(self) -> str:
        return self.info_hash.hex()


# -- inputs -----------------------------------------------------------------------------


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"256K"``, ``"1M"``, ``"1MiB"``, ``"16384"`` -> bytes (binary units)."""
    match = _SIZE.match(str(text))
    if not match:
        raise TorrentCreateError(f"bad size {text!r}: expected e.g. 256K, 1M or 16384")
    number, unit = int(match.group(1)), match.group(2).lower()
    return number * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]


def check_piece_size(size: int) -> int:
    """A piece size must be a power of two from 16 KiB to 16 MiB."""
    if size < MIN_PIECE or size > MAX_PIECE or size & (size - 1):
        raise TorrentCreateError(
            f"piece size {size} is not a power of two from 16 KiB to 16 MiB (16K, 32K, ..., 16M)"
        )
    return size


def auto_piece_size(total_length: int) -> int:
    """The piece size libtorrent chooses for ``total_length`` bytes (16 KiB .. 16 MiB)."""
    index = 0
    for limit in _LT_SIZE_TABLE:
        if limit >= total_length:
            break
        index += 1
    return MIN_PIECE << index


def check_tracker(url: str) -> str:
    """An announce URL must be http(s):// or udp:// with a host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host, parts = None, None
    if parts is None or parts.scheme.lower() not in TRACKER_SCHEMES or not host:
        raise TorrentCreateError(
            f"bad tracker URL {url!r}: expected http://, https:// or udp:// with a host"
        )
    if any(ord(ch) < 33 for ch in url):
        raise TorrentCreateError(f"bad tracker URL {url!r}: contains spaces or control characters")
    return url


def _utf8(name: str, where: Path) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise TorrentCreateError(f"{where}: the file name is not valid UTF-8") from None
    return name


def _is_executable(st: os.stat_result) -> bool:
    return bool(st.st_mode & stat.S_IXUSR)


def scan(path: str | os.PathLike[str], *, exclude: Iterable[Path] = ()) -> FileList:
    """The files of ``path``: one file, or every regular file under a folder, sorted.

    ``path`` itself may be a symlink (it is followed); inside a folder, symlinks and
    special files (FIFOs, sockets, devices) are skipped and listed in ``skipped``, and so
    are the ``exclude`` paths (e.g. the .torrent being written). Empty folders add nothing;
    empty files are kept (libtorrent keeps them too).
    """
    root = Path(os.path.abspath(os.fspath(path)))
    try:
        st = root.stat()
    except OSError as exc:
        raise TorrentCreateError(f"cannot read {path}: {exc.strerror or exc}") from None
    name = _utf8(root.name, root)
    if not name:
        raise TorrentCreateError(f"{path}: cannot make a torrent of the file system root")
    if stat.S_ISREG(st.st_mode):
        if st.st_size == 0:
            raise TorrentCreateError(f"{path}: the file is empty; nothing to share")
        return FileList(name, (SourceFile(root, (), st.st_size, _is_executable(st)),), False)
    if not stat.S_ISDIR(st.st_mode):
        raise TorrentCreateError(f"{path}: not a regular file or a folder")
    excluded: set[tuple[int, int]] = set()
    for other in exclude:
        try:
            other_st = os.stat(other)
        except OSError:
            continue
        excluded.add((other_st.st_dev, other_st.st_ino))
    files: list[SourceFile] = []
    skipped: list[str] = []
    _walk(root, (), files, skipped, excluded)
    if not files:
        raise TorrentCreateError(f"{path}: the folder holds no files; nothing to share")
    files.sort(key=lambda f: f.rel)
    if sum(f.length for f in files) == 0:
        raise TorrentCreateError(f"{path}: every file is empty; nothing to share")
    return FileList(name, tuple(files), True, tuple(sorted(skipped)))


def _walk(
    folder: Path,
    rel: tuple[str, ...],
    files: list[SourceFile],
    skipped: list[str],
    excluded: set[tuple[int, int]],
) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise TorrentCreateError(f"cannot list {folder}: {exc.strerror or exc}") from None
    for entry in entries:
        here = (*rel, _utf8(entry.name, Path(entry.path)))
        shown = "/".join(here)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            raise TorrentCreateError(f"cannot read {entry.path}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            _walk(Path(entry.path), here, files, skipped, excluded)
        elif (st.st_dev, st.st_ino) in excluded:
            skipped.append(shown)
        elif stat.S_ISREG(st.st_mode):
            files.append(SourceFile(Path(entry.path), here, st.st_size, _is_executable(st)))
        else:  # symlink, FIFO, socket, device: never followed or read
            skipped.append(shown)


# -- hashing ------------------------------------------------------------------------------


def _hash_batch(buffer: memoryview, piece_length: int) -> bytes:
    """SHA-1 of each piece in ``buffer`` (the last may be short), concatenated."""
    sha1 = hashlib.sha1
    return b"".join(
        sha1(buffer[i : i + piece_length]).digest() for i in range(0, len(buffer), piece_length)
    )


class _Reader:
    """The files as one stream, read in large sequential chunks into caller buffers."""

    def __init__(self, files: Sequence[SourceFile]) -> None:
        self._files = deque(files)
        self._current: Any = None
        self._left = 0  # bytes still expected from the open file

    def readinto(self, view: memoryview) -> int:
        filled = 0
        while filled < len(view):
            if self._current is None and not self._open_next():
                break
            want = min(len(view) - filled, self._left)
            got = self._current.readinto(view[filled : filled + want]) if want else 0
            if want and not got:
                raise TorrentCreateError(f"{self._current.name}: the file shrank while hashing")
            filled += got
            self._left -= got
            if self._left == 0:
                self._close()
        return filled

    def _open_next(self) -> bool:
        while self._files:
            source = self._files.popleft()
            try:
                self._current = open(source.path, "rb", buffering=0)  # noqa: SIM115
            except OSError as exc:
                raise TorrentCreateError(
                    f"cannot read {source.path}: {exc.strerror or exc}"
                ) from None
            self._left = source.length
            if self._left:
                return True
            self._close()
        return False

    def _close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None

    def close(self) -> None:
        self._close()
        self._files.clear()


def hash_pieces(
    files: Sequence[SourceFile],
    piece_length: int,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    read_size: int = READ_SIZE,
) -> bytes:
    """The concatenated SHA-1 piece hashes of ``files`` read as one stream.

    The calling thread reads ``read_size`` bytes at a time (rounded to whole pieces) and
    hands each chunk to a pool of ``workers`` threads (default: one per core); results
    are collected in order. ``progress(bytes_done)`` is called on the calling thread.
    Reading a file that changed size since ``scan`` raises TorrentCreateError.
    """
    check_piece_size(piece_length)
    total = sum(f.length for f in files)
    workers = max(1, workers or os.cpu_count() or 1)
    chunk = max(piece_length, read_size // piece_length * piece_length)
    in_flight_max = workers * 2
    spare: list[bytearray] = []
    pending: deque[tuple[Future[bytes], bytearray, int]] = deque()
    hashes: list[bytes] = []
    done = 0
    reader = _Reader(files)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="btd-hash")
    try:
        remaining = total
        while remaining or pending:
            while remaining and len(pending) < in_flight_max:
                buffer = spare.pop() if spare else bytearray(chunk)
                want = min(chunk, remaining)
                view = memoryview(buffer)[:want]
                if reader.readinto(view) != want:
                    raise TorrentCreateError("a file shrank while hashing; run create again")
                remaining -= want
                pending.append((pool.submit(_hash_batch, view, piece_length), buffer, want))
            future, buffer, size = pending.popleft()
            hashes.append(future.result())
            spare.append(buffer)
            done += size
            if progress is not None:
                progress(done)
    finally:
        reader.close()
        for future, _, _ in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    return b"".join(hashes)


# -- the .torrent ---------------------------------------------------------------------------


def build_info(
    files: FileList, piece_length: int, pieces: bytes, private: bool
) -> dict[bytes, Any]:
    """The info dictionary, shaped like libtorrent's v1 output."""
    info: dict[bytes, Any] = {
        b"name": files.name.encode(),
        b"piece length": piece_length,
        b"pieces": pieces,
    }
    if private:
        info[b"private"] = 1
    if files.multi_file:
        entries = []
        for f in files.files:
            entry: dict[bytes, Any] = {
                b"length": f.length,
                b"path": [part.encode() for part in f.rel],
            }
            if f.executable:
                entry[b"attr"] = b"x"
            entries.append(entry)
        info[b"files"] = entries
    else:
        only = files.files[0]
        info[b"length"] = only.length
        if only.executable:
            info[b"attr"] = b"x"
    return info


def build_metainfo(
    info: dict[bytes, Any],
    *,
    trackers: Sequence[str] = (),
    comment: str | None = None,
    created_by: str | None = None,
    creation_date: int | None = None,
    extra: dict[bytes, Any] | None = None,
) -> bytes:
    """The whole .torrent: each tracker its own tier, the first also as ``announce``;
    ``extra`` top-level keys (v2's ``piece layers``)."""
    top: dict[bytes, Any] = {b"info": info, **(extra or {})}
    urls = list(dict.fromkeys(check_tracker(url) for url in trackers))
    if urls:
        top[b"announce"] = urls[0].encode()
    if len(urls) > 1:
        top[b"announce-list"] = [[url.encode()] for url in urls]
    if comment:
        top[b"comment"] = comment.encode()
    if created_by:
        top[b"created by"] = created_by.encode()
    top[b"creation date"] = int(time.time()) if creation_date is None else int(creation_date)
    return encode(top)


def prepare(
    path: str | os.PathLike[str],
    piece_length: int | None,
    trackers: Sequence[str],
    exclude: Iterable[Path],
) -> tuple[FileList, int]:
    """Check the trackers, scan ``path``: its files and the piece size (given or chosen)."""
    for url in trackers:
        check_tracker(url)
    files = scan(path, exclude=exclude)
    total = files.total_length
    return files, check_piece_size(piece_length) if piece_length else auto_piece_size(total)


def create_torrent(
    path: str | os.PathLike[str],
    *,
    piece_length: int | None = None,
    trackers: Sequence[str] = (),
    private: bool = False,
    comment: str | None = None,
    created_by: str | None = None,
    creation_date: int | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    exclude: Iterable[Path] = (),
) -> CreatedTorrent:
    """Scan ``path``, hash it and return the .torrent (``progress(done, total)`` bytes)."""
    files, size = prepare(path, piece_length, trackers, exclude)
    total = files.total_length
    report = None if progress is None else (lambda done: progress(done, total))
    pieces = hash_pieces(files.files, size, workers=workers, progress=report)
    info = build_info(files, size, pieces, private)
    info_bytes = encode(info)
    data = build_metainfo(
        info, trackers=trackers, comment=comment, created_by=created_by,
        creation_date=creation_date,
    )  # fmt: skip
    return CreatedTorrent(
        data=data,
        info_hash=hashlib.sha1(info_bytes).digest(),
        name=files.name,
        piece_length=size,
        num_pieces=len(pieces) // 20,
        total_length=total,
        files=files.files,
        skipped=files.skipped,
    )

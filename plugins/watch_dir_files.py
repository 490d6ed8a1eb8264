"""The watch folder's file work (``watch_dir``): blocking, so it runs on the thread pool.

Which names are candidates, reading a .torrent or .magnet file safely (never through a
symlink, never more than a limit), and moving a file aside once it is added or found invalid.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from btd.core.magnet import MAX_MAGNET_LENGTH

MAX_TORRENT_SIZE = 10 * 1024 * 1024  # a .torrent larger than this is refused
MAX_MAGNET_SIZE = MAX_MAGNET_LENGTH + 4096  # a .magnet: one link and some whitespace
SUFFIXES = (".torrent", ".magnet")
ADDED_DIR = "added"

Signature = tuple[int, int, int]  # size, mtime_ns, inode: "unchanged" between two scans


class BadTorrentFile(Exception):
    """The file will never become a usable torrent: rename it aside."""


class NotACandidate(Exception):
    """Not ours to take after all (a symlink, a FIFO, an empty file): leave it alone."""


def wanted_name(name: str) -> bool:
    """``*.torrent`` and ``*.magnet``; hidden files (temporary names) are left alone."""
    return not name.startswith(".") and name.lower().endswith(SUFFIXES)


def is_magnet(name: str) -> bool:
    return name.lower().endswith(".magnet")


def list_candidates(folder: Path) -> tuple[dict[str, Signature], list[str]]:
    """(regular non-empty ``*.torrent``/``*.magnet`` files -> signature, symlinked names)."""
    found: dict[str, Signature] = {}
    links: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not wanted_name(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                links.append(entry.name)
            elif stat.S_ISREG(st.st_mode) and st.st_size > 0:
                found[entry.name] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return found, links


def read_torrent(folder: Path, name: str, limit: int | None = None) -> tuple[bytes, Signature]:
    """The file's bytes, never through a symlink, never more than ``limit`` (MAX_TORRENT_SIZE)."""
    limit = MAX_TORRENT_SIZE if limit is None else limit
    try:
        fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotACandidate("a symlink") from exc
        if exc.errno == errno.ENOENT:
            raise
        raise BadTorrentFile(f"unreadable: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            raise NotACandidate("not a regular non-empty file")
        if st.st_size > limit:
            raise BadTorrentFile(f"too large: {st.st_size} bytes (limit {limit})")
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise BadTorrentFile(f"too large: over {limit} bytes")
        return b"".join(chunks), (st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError as exc:
        raise BadTorrentFile(f"unreadable: {exc.strerror}") from exc
    finally:
        os.close(fd)


def magnet_text(data: bytes) -> str:
    """The one magnet link a ``.magnet`` file holds; BadTorrentFile if it holds anything else."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadTorrentFile("not a magnet link: the file is not UTF-8 text") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        what = "no text" if not lines else f"{len(lines)} lines"
        raise BadTorrentFile(f"not a magnet link: one link per .magnet file, found {what}")
    return lines[0]


def _free_name(folder: Path, stem: str, suffix: str) -> Path:
    """``stem+suffix``, else ``stem.1+suffix``, ``stem.2+suffix``... whichever is free."""
    candidate = folder / f"{stem}{suffix}"
    n = 0
    while os.path.lexists(candidate):
        n += 1
        candidate = folder / f"{stem}.{n}{suffix}"
    return candidate


def move_to_added(folder: Path, name: str) -> Path:
    """``<folder>/added/<name>``; a name already there gets ``.1``, ``.2``... before .torrent."""
    added = folder / ADDED_DIR
    added.mkdir(exist_ok=True)
    base, ext = os.path.splitext(name)
    target = _free_name(added, base, ext)
    os.rename(folder / name, target)
    return target


def delete_file(folder: Path, name: str) -> Path:
    os.unlink(folder / name)
    return folder / name


def mark_invalid(folder: Path, name: str, reason: str) -> Path:
    """Rename to ``<name>.invalid`` (free name) and write the reason next to it."""
    target = _free_name(folder, name, ".invalid")
    os.rename(folder / name, target)
    try:
        (folder / f"{target.name}.txt").write_text(f"{name}: {reason}\n")
    except OSError:
        pass  # the reason is in the log too
    return target

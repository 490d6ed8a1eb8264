"""Pieces mapped onto a torrent's files: blocking file I/O, called from worker threads only.

The torrent is one long byte string cut into pieces; its files are consecutive slices of that
string. A (piece, begin, length) span becomes one or more (file, offset, length) segments.
Raw fds with os.pread/os.pwrite let several worker threads share one handle without seek races.

Skipped files (core/file_selection.py) are not created: their bytes of pieces that span a
wanted file go to the torrent's part file (core/part_file.py). Each file has a mode: FILE
(its own file), PART (skipped, not on disk: the part file), or UNDECIDED (just skipped:
FILE if it exists, else PART, decided on the pool at its next I/O under both locks, so a
file is never both created and parted). Only files not in FILE mode take the part lock.

Size: about 710 lines: the file mapping, the handle cache shared by threads, the checks
that keep writes inside the save path (symlinks) and on its disk (``root_dev``, storage
missing), and which file or part file a byte goes to belong together; splitting them would
spread one invariant over modules.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from btd.core.durable import fsync_dir
from btd.core.errors import StorageError
from btd.core.part_file import PartFile

PREALLOCATE_MODES = ("sparse", "full")
FILE, PART, UNDECIDED = 0, 1, 2  # where a file's bytes go (see the module docstring)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
WRITE_CHUNK = 32 * 1024
"""Bytes per pwrite: a 1 MiB write makes the kernel allocate large page-cache folios,
which on the benchmark VM cost 3-4x the system time per GiB of 32 KiB writes (1.3 against
0.34 s, medians of 5: folios up to 32 KiB come from the per-CPU free lists, larger ones
from the buddy allocator's cold blocks); libtorrent writes 16 KiB blocks. 32 writes per
1 MiB piece cost ~0.05 s per GiB more in syscalls."""


class MissingDataError(StorageError):
    """A read touched a file (or a part of it) that is not on disk yet: the piece is not had."""


class _UsePart(Exception):
    """A write was about to create a file that was skipped meanwhile: it goes to the part file."""


STORAGE_MISSING = "storage missing"
"""How every storage-missing message begins (the RPC ``error``/``state_detail`` text)."""


class StorageMissingError(StorageError):
    """The save path a torrent's data lives in is gone (or is another, empty disk): nothing
    is created there; see btd.core.storage_guard. ``probe``: what was found, if probed."""

    def __init__(self, message: str, probe: RootProbe | None = None) -> None:
        super().__init__(message)
        self.probe = probe


@dataclass(frozen=True, slots=True)
class RootProbe:
    """What one stat (and one directory entry) says about a save path now."""

    exists: bool
    is_dir: bool = False
    dev: int | None = None
    empty: bool = False
    mtime_ns: int = 0  # changes when entries are added or removed (a retry looks again)
    error: str | None = None  # the stat failed for another reason than "not there"


def probe_root(path: Path, *, look_inside: bool = True) -> RootProbe:
    """Blocking: stat ``path`` and (``look_inside``) look for a first entry in it (never
    lists it all; in a folder of 10,000 downloads even that first read costs: a caller that
    found files there already knows it is not empty)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return RootProbe(False)
    except NotADirectoryError:
        return RootProbe(False, error="a part of the path is not a directory")
    except OSError as exc:
        return RootProbe(False, error=_describe(exc))
    if not stat.S_ISDIR(st.st_mode):
        return RootProbe(True, False, st.st_dev, mtime_ns=st.st_mtime_ns)
    if not look_inside:
        return RootProbe(True, True, st.st_dev, False, st.st_mtime_ns)
    try:
        with os.scandir(path) as entries:
            empty = next(entries, None) is None
    except OSError as exc:
        return RootProbe(True, True, st.st_dev, False, st.st_mtime_ns, _describe(exc))
    return RootProbe(True, True, st.st_dev, empty, st.st_mtime_ns)


class FileEntryLike(Protocol):
    """What storage needs of metainfo's FileEntry."""

    @property
    def path(self) -> tuple[str, ...]: ...
    @property
    def length(self) -> int: ...
    @property
    def pad(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class FileStatus:
    """One file as found on disk; ``pieces`` are the pieces that touch it."""

    index: int
    path: Path
    length: int
    exists: bool
    size: int  # -1 when missing
    pad: bool
    pieces: range
    in_part: bool = False  # skipped and not on disk: its bytes (if any) are in the part file

    @property
    def ok(self) -> bool:
        """Present with the expected size (pad files are never on disk and always ok, nor
        are skipped files kept in the part file)."""
        return self.pad or self.in_part or (self.exists and self.size == self.length)


@dataclass(frozen=True, slots=True)
class FileCheck:
    """Result of ``check_files``: lets the coordinator skip or narrow a recheck."""

    files: tuple[FileStatus, ...]
    root: RootProbe | None = None  # the save path itself, probed before the files

    @property
    def all_ok(self) -> bool:
        return all(f.ok for f in self.files)

    @property
    def bad_files(self) -> tuple[int, ...]:
        """Indices of files that are missing or have the wrong size."""
        return tuple(f.index for f in self.files if not f.ok)

    def bad_pieces(self) -> set[int]:
        """Pieces touching a missing or wrong-sized file."""
        out: set[int] = set()
        for f in self.files:
            if not f.ok:
                out.update(f.pieces)
        return out


class Storage(Protocol):
    """Blocking piece I/O. Never call from the reactor thread; see btd.core.verify."""

    def read(self, piece: int, begin: int, length: int) -> bytes: ...
    def write_piece(self, piece: int, data: bytes) -> None: ...
    def read_piece(self, piece: int) -> bytes: ...
    def flush(self) -> None: ...
    def check_files(self, real_dirs: dict[str, str] | None = None) -> FileCheck: ...
    def pieces_of_file(self, index: int) -> range: ...
    def delete_files(self) -> None: ...
    def close(self) -> None: ...


class _Handle:
    """An open fd shared by threads; closed when evicted and no longer in use."""

    __slots__ = ("fd", "writable", "refs", "evicted")

    def __init__(self, fd: int, writable: bool) -> None:
        self.fd = fd
        self.writable = writable
        self.refs = 0
        self.evicted = False


def _real_dir(cache: dict[str, str], path: str) -> str:
    real = cache.get(path)
    if real is None:
        real = cache[path] = os.path.realpath(path)
    return real


def _strictly_inside(root: str, real: str) -> bool:
    """``real`` is under ``root`` and not ``root`` itself (both absolute and resolved):
    ``os.path.commonpath`` said the same at ten times the cost, once per file checked."""
    prefix = root if root.endswith(os.sep) else root + os.sep
    return real.startswith(prefix) and real != root


def _describe(exc: OSError) -> str:
    return exc.strerror or os.strerror(exc.errno or 0) or str(exc)


class FileStorage(Storage):
    """Storage on plain files under ``save_path``; files created lazily, sparse by default."""

    def __init__(
        self,
        save_path: Path,
        files: Sequence[FileEntryLike],
        piece_length: int,
        total_length: int,
        *,
        preallocate: str = "sparse",
        max_open_files: int = 32,
        part_name: str | None = None,
    ) -> None:
        if piece_length <= 0:
            raise StorageError(f"bad piece length {piece_length}")
        if preallocate not in PREALLOCATE_MODES:
            raise StorageError(f"unknown preallocate mode {preallocate!r}")
        self._save_path = save_path if isinstance(save_path, Path) else Path(save_path)
        self._files = tuple(files)
        self._piece_length = piece_length
        self._total_length = total_length
        self._preallocate = preallocate
        self._max_open = max(1, max_open_files)
        self._num_pieces = -(-total_length // piece_length)
        starts: list[int] = []
        pos = 0
        for entry in self._files:
            if entry.length < 0:
                raise StorageError(f"negative file length in {'/'.join(entry.path)}")
            starts.append(pos)
            pos += entry.length
        if pos != total_length:
            raise StorageError(f"file lengths add up to {pos}, not the total length {total_length}")
        self._starts = tuple(starts)
        # Only non-empty files take part in the mapping (empty ones share a start offset).
        self._data_files = tuple(i for i, e in enumerate(self._files) if e.length > 0)
        self._data_starts = tuple(starts[i] for i in self._data_files)
        self._lock = threading.Lock()
        self._handles: OrderedDict[int, _Handle] = OrderedDict()
        # dicts used as sets: an empty set is 216 bytes, an empty dict 64 (x 10,000 torrents)
        self._dirty: dict[int, None] = {}
        self._new_dirs: dict[str, None] = {}  # parents of files created since the last flush
        self._empty_created = False
        self._closed = False
        self._mode = bytearray(len(self._files))  # FILE, PART or UNDECIDED per file
        self._part_lock = threading.Lock()  # part file I/O and mode changes
        self._part_name = part_name or ".parts"
        self._part: PartFile | None = None
        self._roots: dict[int, Path] = {}  # files living elsewhere than save_path (a move)
        # The device the save path must be on before a file is created in it; None: not
        # known yet (a fresh torrent), and a missing save path is created as before.
        self.root_dev: int | None = None

    # ----- geometry -------------------------------------------------------------------------

    @property
    def num_pieces(self) -> int:
        return self._num_pieces

    def piece_size(self, piece: int) -> int:
        if not 0 <= piece < self._num_pieces:
            raise StorageError(f"piece {piece} out of range (0..{self._num_pieces - 1})")
        return min(self._piece_length, self._total_length - piece * self._piece_length)

    def pieces_of_file(self, index: int) -> range:
        """The pieces that hold some byte of file ``index`` (empty for zero-length files)."""
        length = self._files[index].length
        if length == 0:
            return range(0)
        start = self._starts[index]
        return range(start // self._piece_length, (start + length - 1) // self._piece_length + 1)

    def file_path(self, index: int) -> Path:
        return self._roots.get(index, self._save_path).joinpath(*self._files[index].path)

    def segments(self, piece: int, begin: int, length: int) -> list[tuple[int, int, int]]:
        """(file index, offset in file, length) pieces of a span, in order."""
        size = self.piece_size(piece)
        if begin < 0 or length < 0 or begin + length > size:
            raise StorageError(f"span {begin}+{length} outside piece {piece} of {size} bytes")
        pos = piece * self._piece_length + begin
        end = pos + length
        out: list[tuple[int, int, int]] = []
        k = bisect_right(self._data_starts, pos) - 1
        while pos < end:
            index = self._data_files[k]
            file_start = self._data_starts[k]
            take = min(end, file_start + self._files[index].length) - pos
            out.append((index, pos - file_start, take))
            pos += take
            k += 1
        return out

    # ----- I/O ------------------------------------------------------------------------------

    def read(self, piece: int, begin: int, length: int) -> bytes:
        parts = [self._read_segment(i, off, n) for i, off, n in self.segments(piece, begin, length)]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_piece(self, piece: int) -> bytes:
        return self.read(piece, 0, self.piece_size(piece))

    def write_piece(self, piece: int, data: bytes) -> None:
        size = self.piece_size(piece)
        if len(data) != size:
            raise StorageError(f"piece {piece} is {size} bytes, got {len(data)}")
        if not self._empty_created:
            self._create_empty_files()
        view = memoryview(data)
        pos = 0
        for index, offset, n in self.segments(piece, 0, size):
            if not self._files[index].pad:
                self._write_segment(index, offset, view[pos : pos + n])
            pos += n

    def flush(self) -> None:
        """fsync every file written since the last flush (and folders that gained files),
        and the part file with its slot table."""
        if self._part is not None:
            with self._part_lock:
                self._part.flush()
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            dirs, self._new_dirs = self._new_dirs, {}
        try:
            for index in sorted(dirty):
                handle = self._acquire(index, write=True)
                try:
                    os.fsync(handle.fd)
                except OSError as exc:
                    raise self._error(exc, "flushing", index) from exc
                finally:
                    self._release(handle)
            for d in sorted(dirs):
                self._fsync_dir(d)
        except BaseException:
            with self._lock:  # not durable: try again on the next flush
                self._dirty |= dirty
                self._new_dirs |= dirs
            raise

    def close_handles(self) -> None:
        """Close the cached file descriptors; the next read or write opens what it needs.
        A check reads every file: without this, 10,000 checked torrents kept 10,000 files
        open (and their handles in memory) while paused or seeding to nobody."""
        with self._lock:
            for index in list(self._handles):
                self._evict(index)

    def close(self) -> None:
        if self._part is not None:
            with self._part_lock:
                self._part.close()
        with self._lock:
            self._closed = True
            for handle in self._handles.values():
                handle.evicted = True
                if handle.refs == 0:
                    os.close(handle.fd)
            self._handles.clear()

    # ----- files on disk --------------------------------------------------------------------

    @property
    def save_path(self) -> Path:
        return self._save_path

    def check_files(self, real_dirs: dict[str, str] | None = None) -> FileCheck:
        """``real_dirs``: folders' real paths shared by the checks of one pass over many
        torrents (a save round: 10,000 torrents in one download folder resolve it once)."""
        root = probe_root(self._save_path, look_inside=False)
        real_dirs = {} if real_dirs is None else real_dirs
        out = []
        for index, entry in enumerate(self._files):
            path = self.file_path(index)
            exists, size = False, -1
            in_part = False
            if self._mode[index] and root.is_dir:
                with self._part_lock:
                    in_part = self._resolve(index) == PART
            if not entry.pad and not in_part:
                try:
                    real = self._safe_path(index, real_dirs)
                    st = os.stat(real)
                    if stat.S_ISREG(st.st_mode):
                        exists, size = True, st.st_size
                except (FileNotFoundError, NotADirectoryError, StorageError):
                    pass  # missing (or a symlink out of the save path): its pieces are not had
                except OSError as exc:  # EIO, EACCES: the file may be whole; keep its pieces
                    raise self._error(exc, "checking", index) from exc
            out.append(
                FileStatus(
                    index,
                    path,
                    entry.length,
                    exists,
                    size,
                    entry.pad,
                    self.pieces_of_file(index),
                    in_part,
                )
            )
        if root.is_dir and not any(f.exists for f in out):  # is it an empty mount point?
            root = probe_root(self._save_path)
        return FileCheck(tuple(out), root)

    def delete_files(self) -> None:
        """Remove this torrent's files, then the folders under save_path that are left empty.

        Never follows a symlink: a file or folder reached through one is left alone.
        """
        self.close()
        root = Path(os.path.realpath(self._save_path))
        folders: set[Path] = set()
        errors: list[str] = []
        for entry in self._files:
            if entry.pad:
                continue
            path = root.joinpath(*entry.path)
            if os.path.realpath(path.parent) != str(path.parent):
                continue  # some folder on the way is a symlink (or does not exist)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                st = None
            except OSError as exc:
                errors.append(f"{path}: {_describe(exc)}")
                st = None
            if st is not None and stat.S_ISREG(st.st_mode):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    errors.append(f"{path}: {_describe(exc)}")
            parent = path.parent
            while parent != root and root in parent.parents:
                folders.add(parent)
                parent = parent.parent
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            try:
                if stat.S_ISDIR(os.lstat(folder).st_mode):
                    os.rmdir(folder)  # fails (harmlessly) when not empty
            except OSError:
                pass
        try:
            self._part_file().delete()
        except StorageError as exc:
            errors.append(str(exc))
        if errors:
            raise StorageError("could not delete: " + "; ".join(errors))

    # ----- skipped files and the part file --------------------------------------------------

    @property
    def part_path(self) -> Path:
        """The part file (``.<info hash>.parts`` in the save path; there only when used)."""
        return self._save_path / self._part_name

    def skip_file(self, index: int) -> None:
        """File ``index`` is skipped: not created from now on (call from any thread; its
        mode is decided on the pool at its next I/O, by whether it exists then)."""
        if self._mode[index] == FILE:
            self._mode[index] = UNDECIDED

    def in_part(self, index: int) -> bool:
        """The file's bytes live in the part file (skipped and not on disk)."""
        return self._mode[index] == PART

    def want_file(self, index: int) -> None:
        """File ``index`` is wanted again (blocking, on the pool): its bytes move out of the
        part file into the file, which is created now if the part file had any of them."""
        if not self._mode[index]:
            return
        with self._part_lock:
            if self._resolve(index) == FILE:
                return
            part = self._part_file()
            length = self._files[index].length
            start = self._starts[index]
            plen = self._piece_length
            moved = []
            for piece in self.pieces_of_file(index):
                if not part.has(piece):
                    continue
                lo = max(start, piece * plen)
                hi = min(start + length, piece * plen + self.piece_size(piece))
                data = part.read(piece, lo - piece * plen, hi - lo)
                if data is not None:
                    self._write_segment(index, lo - start, memoryview(data), force=True)
                moved.append(piece)
            with self._lock:
                self._mode[index] = FILE
            for piece in moved:  # free the slots no other parted file still uses
                if not any(
                    self._mode[i] == PART
                    for i, _, _ in self.segments(piece, 0, self.piece_size(piece))
                ):
                    part.free(piece)

    def _part_file(self) -> PartFile:
        if self._part is None:
            self._part = PartFile(self.part_path, self._piece_length, self._num_pieces)
        return self._part

    def _resolve(self, index: int) -> int:
        """Decide an UNDECIDED file's mode (part lock held): FILE if it exists or is open."""
        mode = self._mode[index]
        if mode != UNDECIDED:
            return mode
        with self._lock:
            exists = index in self._handles or os.path.lexists(self.file_path(index))
            self._mode[index] = FILE if exists else PART
            return self._mode[index]

    def _piece_span(self, index: int, offset: int) -> tuple[int, int]:
        """(piece, offset in piece) of byte ``offset`` of file ``index``."""
        return divmod(self._starts[index] + offset, self._piece_length)

    def _read_part(self, index: int, offset: int, length: int) -> bytes:
        piece, at = self._piece_span(index, offset)
        data = self._part_file().read(piece, at, length)
        if data is None:
            raise MissingDataError(f"not in the part file: {self.file_path(index)}")
        return data

    def _write_part(self, index: int, offset: int, data: memoryview) -> None:
        piece, at = self._piece_span(index, offset)
        if not os.path.isdir(self._save_path):
            self._check_root()
        self._part_file().write(piece, at, data)

    # ----- where the files are (btd.core.mover) ---------------------------------------------

    def relocate_file(self, index: int, root: Path, do: Callable[[], None] | None = None) -> None:
        """File ``index`` lives under ``root`` from now on (a move in progress). ``do`` (the
        rename) runs under the lock first, so no read opens the file between the two; an
        open handle is closed when its current reads end."""
        with self._lock:
            if do is not None:
                do()
            if index in self._handles:
                self._evict(index)
            if Path(root) == self._save_path:
                self._roots.pop(index, None)
            else:
                self._roots[index] = Path(root)

    def set_root(self, root: Path) -> None:
        """Every file lives under ``root`` (a finished or undone move; where the data was
        found): it becomes the save path the files are created in."""
        with self._lock:
            for index in list(self._handles):
                self._evict(index)
            self._save_path = Path(root)
            self._roots.clear()

    # ----- internals ------------------------------------------------------------------------

    def _error(self, exc: OSError, action: str, index: int) -> StorageError:
        path = self.file_path(index)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageError(f"disk full while {action} {path}")
        return StorageError(f"error {action} {path}: {_describe(exc)}")

    def _safe_path(self, index: int, real_dirs: dict[str, str] | None = None) -> str:
        """The file's real path, refused when a symlink leads it out of the save path.
        ``real_dirs`` keeps the real paths of folders over one pass of many files (a check
        of 100,000 files in a few folders resolves each folder once, not each file)."""
        base = self._roots.get(index, self._save_path)
        path = self.file_path(index)
        if real_dirs is None:
            root, real = os.path.realpath(base), os.path.realpath(path)
        else:
            root = _real_dir(real_dirs, str(base))
            real = os.path.join(_real_dir(real_dirs, str(path.parent)), path.name)
            if os.path.islink(real):  # the file itself is a symlink: where it leads
                real = os.path.realpath(real)
        if not _strictly_inside(root, real):
            raise StorageError(
                f"refusing to write through a symlink outside the save path: {self.file_path(index)}"
            )
        return real

    def _check_root(self) -> None:
        """Before a file or folder is created: the save path must be the one the data was
        on (``root_dev``), never re-made on whatever disk is under an unmounted one. With
        no device known yet, the save path is created as needed and its device pinned."""
        dev = self.root_dev
        try:
            st = os.stat(self._save_path)
        except (FileNotFoundError, NotADirectoryError):
            if dev is None:
                try:  # a fresh torrent: as before
                    os.makedirs(self._save_path, exist_ok=True)
                    self.root_dev = os.stat(self._save_path).st_dev
                except OSError as exc:
                    raise StorageError(
                        f"cannot create {self._save_path}: {_describe(exc)}"
                    ) from exc
                return
            raise StorageMissingError(
                f"{STORAGE_MISSING}: {self._save_path} is not there"
            ) from None
        except OSError as exc:  # EIO, EACCES, ...: a disk error, not a missing disk
            raise StorageError(f"cannot check {self._save_path}: {_describe(exc)}") from exc
        if dev is None:
            self.root_dev = st.st_dev
        elif not stat.S_ISDIR(st.st_mode):
            raise StorageMissingError(f"{STORAGE_MISSING}: {self._save_path} is not a directory")
        elif st.st_dev != dev:
            raise StorageMissingError(
                f"{STORAGE_MISSING}: {self._save_path} is on another device than its data was"
                " (not mounted?)"
            )

    def _create_empty_files(self) -> None:
        for index, entry in enumerate(self._files):
            if entry.length == 0 and not entry.pad and not self._mode[index]:
                self._release(self._acquire(index, write=True))
        self._empty_created = True

    def _acquire(self, index: int, *, write: bool, force: bool = False) -> _Handle:
        with self._lock:
            if self._closed:
                raise StorageError(f"storage closed: {self._save_path}")
            handle = self._handles.get(index)
            if handle is not None and (handle.writable or not write):
                self._handles.move_to_end(index)
                handle.refs += 1
                return handle
            if handle is not None:  # read-only handle, a write needs a new one
                self._evict(index)
            handle = _Handle(self._open(index, write, force), write)
            self._handles[index] = handle
            handle.refs += 1
            while len(self._handles) > self._max_open:
                self._evict(next(iter(self._handles)))
            return handle

    def _release(self, handle: _Handle) -> None:
        with self._lock:
            handle.refs -= 1
            if handle.evicted and handle.refs == 0:
                os.close(handle.fd)

    def _evict(self, index: int) -> None:
        handle = self._handles.pop(index)
        handle.evicted = True
        if handle.refs == 0:
            os.close(handle.fd)

    def _open(self, index: int, write: bool, force: bool = False) -> int:
        """Open (and for writes create and size) file ``index``; called with the lock held.

        A file not in FILE mode is created only when ``force`` (its bytes move out of the
        part file); otherwise _UsePart sends the write to the part file."""
        real = self._safe_path(index)
        length = self._files[index].length
        try:
            if not write:
                return os.open(real, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
            parent = os.path.dirname(real)
            if not os.path.isdir(parent):
                self._check_root()
                os.makedirs(parent, exist_ok=True)
                real = self._safe_path(index)  # the folders just made must not have moved out
            created = not os.path.lexists(real)
            if created and self._mode[index] and not force:
                raise _UsePart
            if created:
                self._check_root()
            fd = os.open(real, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC, 0o666)
            if created:
                self._new_dirs[parent] = None
        except FileNotFoundError as exc:
            if not write:
                raise MissingDataError(f"file missing: {self.file_path(index)}") from exc
            raise self._error(exc, "opening", index) from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StorageError(
                    f"refusing to write through a symlink: {self.file_path(index)}"
                ) from exc
            raise self._error(exc, "opening" if not write else "creating", index) from exc
        try:
            size = os.fstat(fd).st_size
            if size != length:
                if size > length or self._preallocate == "sparse":
                    os.ftruncate(fd, length)
                if self._preallocate == "full" and length > 0:
                    os.posix_fallocate(fd, 0, length)
        except OSError as exc:
            os.close(fd)
            raise self._error(exc, "allocating", index) from exc
        return fd

    def _read_segment(self, index: int, offset: int, length: int) -> bytes:
        if self._files[index].pad:
            return bytes(length)
        if self._mode[index]:
            with self._part_lock:
                if self._resolve(index) == PART:
                    return self._read_part(index, offset, length)
        handle = self._acquire(index, write=False)
        try:
            data = os.pread(handle.fd, length, offset)
            while len(data) < length:
                more = os.pread(handle.fd, length - len(data), offset + len(data))
                if not more:
                    raise MissingDataError(f"file too short: {self.file_path(index)}")
                data += more
            return data
        except OSError as exc:
            raise self._error(exc, "reading", index) from exc
        finally:
            self._release(handle)

    def _write_segment(
        self, index: int, offset: int, data: memoryview, *, force: bool = False
    ) -> None:
        if self._mode[index] and not force:
            with self._part_lock:
                if self._resolve(index) == PART:
                    self._write_part(index, offset, data)
                    return
        try:
            handle = self._acquire(index, write=True, force=force)
        except _UsePart:  # skipped while this write was on its way: resolve, retry
            self._write_segment(index, offset, data)
            return
        try:
            while data:
                n = os.pwrite(handle.fd, data[:WRITE_CHUNK], offset)
                data = data[n:]
                offset += n
        except OSError as exc:
            raise self._error(exc, "writing", index) from exc
        finally:
            self._release(handle)
        with self._lock:
            self._dirty[index] = None

    def _fsync_dir(self, path: str) -> None:
        fsync_dir(path, strict=False)  # some file systems refuse it; the files are synced

"""Pieces mapped onto a torrent's files: blocking file I/O, called from worker threads only.

The torrent is one long byte string cut into pieces; its files are consecutive slices of that
string. A (piece, begin, length) span becomes one or more (file, offset, length) segments.
Raw fds with os.pread/os.pwrite let several worker threads share one handle without seek races.

Size: about 530 lines: the file mapping, the handle cache shared by threads, and the checks
that keep writes inside the save path (symlinks) and on its disk (``root_dev``, storage
missing) belong together; splitting them would spread one invariant over modules.
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

from btd.core.errors import StorageError

PREALLOCATE_MODES = ("sparse", "full")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class MissingDataError(StorageError):
    """A read touched a file (or a part of it) that is not on disk yet: the piece is not had."""


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


def probe_root(path: Path) -> RootProbe:
    """Blocking: stat ``path`` and look for a first entry in it (never lists it all)."""
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

    @property
    def ok(self) -> bool:
        """Present with the expected size (pad files are never on disk and always ok)."""
        return self.pad or (self.exists and self.size == self.length)


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
    def check_files(self) -> FileCheck: ...
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
    ) -> None:
        if piece_length <= 0:
            raise StorageError(f"bad piece length {piece_length}")
        if preallocate not in PREALLOCATE_MODES:
            raise StorageError(f"unknown preallocate mode {preallocate!r}")
        self._save_path = Path(save_path)
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
        self._dirty: set[int] = set()
        self._new_dirs: set[str] = set()  # parents of files created since the last flush
        self._empty_created = False
        self._closed = False
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
        """fsync every file written since the last flush (and folders that gained files)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            dirs, self._new_dirs = self._new_dirs, set()
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

    def close(self) -> None:
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

    def check_files(self) -> FileCheck:
        root = probe_root(self._save_path)
        out = []
        for index, entry in enumerate(self._files):
            path = self.file_path(index)
            exists, size = False, -1
            if not entry.pad:
                try:
                    real = self._safe_path(index)
                    st = os.stat(real)
                    if stat.S_ISREG(st.st_mode):
                        exists, size = True, st.st_size
                except (OSError, StorageError):
                    pass
            out.append(
                FileStatus(
                    index, path, entry.length, exists, size, entry.pad, self.pieces_of_file(index)
                )
            )
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
        if errors:
            raise StorageError("could not delete: " + "; ".join(errors))

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

    def _safe_path(self, index: int) -> str:
        """The file's real path, refused when a symlink leads it out of the save path."""
        root = os.path.realpath(self._roots.get(index, self._save_path))
        real = os.path.realpath(self.file_path(index))
        if os.path.commonpath([root, real]) != root or real == root:
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
        except OSError:
            if dev is None:
                os.makedirs(self._save_path, exist_ok=True)  # a fresh torrent: as before
                self.root_dev = os.stat(self._save_path).st_dev
                return
            raise StorageMissingError(
                f"{STORAGE_MISSING}: {self._save_path} is not there"
            ) from None
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
            if entry.length == 0 and not entry.pad:
                self._release(self._acquire(index, write=True))
        self._empty_created = True

    def _acquire(self, index: int, *, write: bool) -> _Handle:
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
            handle = _Handle(self._open(index, write), write)
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

    def _open(self, index: int, write: bool) -> int:
        """Open (and for writes create and size) file ``index``; called with the lock held."""
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
            if created:
                self._check_root()
            fd = os.open(real, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC, 0o666)
            if created:
                self._new_dirs.add(parent)
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

    def _write_segment(self, index: int, offset: int, data: memoryview) -> None:
        handle = self._acquire(index, write=True)
        try:
            while data:
                n = os.pwrite(handle.fd, data, offset)
                data = data[n:]
                offset += n
        except OSError as exc:
            raise self._error(exc, "writing", index) from exc
        finally:
            self._release(handle)
        with self._lock:
            self._dirty.add(index)

    def _fsync_dir(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some filesystems refuse fsync on folders; the files themselves are synced
        finally:
            os.close(fd)

"""Moving a torrent's files, blocking (run on the disk pool by btd.core.mover).

``plan_move`` refuses before anything moves: the target is where the data is, or inside
the torrent's own folder; a symlink on the way to any of its files, at the source or in
the target (never followed out of the save path); a file of the same name already in the
target with other content (never overwritten). ``MoveJob`` then moves file by file in
bounded steps (a few renames, or up to ``STEP_BYTES`` of a copy per ``step``), so piece
reads of this and other torrents interleave with it on the pool:

- on one file system, ``os.rename``, done under the storage's lock together with the
  switch of the file's location (``FileStorage.relocate_file``), so no read finds the
  file in neither place;
- across file systems (EXDEV), a copy in chunks (holes kept), fsynced, after which the
  file is read from its copy. The sources of copies are removed only once every file is
  at the target (``commit``), so a failure (``rollback``: renames undone, copies
  deleted) leaves every file whole in one place, the source.

Only the torrent's own files, and the folders they leave empty, are moved. No Twisted.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from btd.core.durable import fsync_dir
from btd.core.errors import StorageError

STEP_BYTES = 8 * 1024 * 1024  # copied per pool job at most (reads of others interleave)
STEP_RENAMES = 64  # renames per pool job at most
CHUNK = 1024 * 1024  # one read/write of a copy
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class MoveRefused(StorageError):
    """The move did not start (target, symlink, state): nothing changed. ``field``: the
    parameter at fault (``path`` or ``info_hash``)."""

    def __init__(self, message: str, field: str = "path") -> None:
        super().__init__(message)
        self.field = field


class MoveFailed(StorageError):
    """A move failed part-way; ``undone`` tells whether the rollback put every file back."""


def describe(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full (no space left on the target)"
    return exc.strerror or os.strerror(exc.errno or 0) or str(exc)


# -- the disk operations (tests inject failing or cross-device ones) ----------------------------
def copy_chunk(src_fd: int, dst_fd: int, offset: int, length: int) -> int:
    """Copy up to ``length`` bytes at ``offset``; a chunk of zeros is skipped (the target
    file is sized at the end, so holes stay holes). Returns the bytes done (0: end)."""
    data = os.pread(src_fd, length, offset)
    if data and data != bytes(len(data)):
        view = memoryview(data)
        pos = 0
        while pos < len(data):
            pos += os.pwrite(dst_fd, view[pos:], offset + pos)
    return len(data)


@dataclass(frozen=True)
class DiskOps:
    """What a move does to the disk; ``rename`` raising EXDEV means "copy it instead"."""

    rename: Callable[[str, str], None] = os.rename
    copy_chunk: Callable[[int, int, int, int], int] = copy_chunk


# -- the plan -----------------------------------------------------------------------------------
@dataclass
class FileMove:
    """One file of the torrent and what happened to it so far."""

    index: int
    parts: tuple[str, ...]
    length: int
    kind: str = "pending"  # absent | same | pending -> renamed | copying -> copied
    copied: int = 0
    fds: tuple[int, int] | None = None  # (source, copy) while copying


@dataclass
class MovePlan:
    source: Path
    target: Path
    files: list[FileMove]
    total: int  # bytes of the files on disk (what progress counts)


@dataclass(frozen=True)
class FileSpec:
    """What the mover needs of a metainfo file entry."""

    index: int
    parts: tuple[str, ...]
    length: int


def file_specs(files: Sequence[Any]) -> list[FileSpec]:
    """The torrent's real files (pad files are never on disk)."""
    return [FileSpec(i, tuple(f.path), f.length) for i, f in enumerate(files) if not f.pad]


def _kind(path: Path) -> str:
    """``missing``, ``link``, ``dir``, ``file`` or ``other`` (lstat: links not followed)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        return "other"
    if stat.S_ISLNK(mode):
        return "link"
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def _walk(root: Path, parts: tuple[str, ...], where: str) -> str:
    """The kind of ``root/parts``; MoveRefused when a folder on the way is a symlink or a
    file (a file of the torrent that is a symlink is refused too)."""
    path = root
    for name in parts[:-1]:
        path = path / name
        kind = _kind(path)
        if kind == "missing":
            return "missing"
        if kind == "link":
            raise MoveRefused(f"{path} is a symlink: refusing to move through it ({where})")
        if kind != "dir":
            raise MoveRefused(f"{path} is not a folder ({where})")
    kind = _kind(root.joinpath(*parts))
    if kind == "link":
        raise MoveRefused(f"{root.joinpath(*parts)} is a symlink: refusing to move it ({where})")
    if kind in ("dir", "other"):
        raise MoveRefused(f"{root.joinpath(*parts)} is not a regular file ({where})")
    return kind


def same_content(a: Path, b: Path) -> bool:
    """The two files hold the same bytes (sizes first, then chunk by chunk)."""
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(CHUNK), fb.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


def plan_move(
    source: Path, target: Path, specs: Sequence[FileSpec], part_file: Path | None = None
) -> MovePlan:
    """Blocking: look at every file at both ends; MoveRefused if the move must not start.
    A torrent whose skipped files share pieces kept in a part file (``part_file`` exists) is
    not moved yet: the part file is open for its reads and would be left behind."""
    source, target = Path(source), Path(target)
    if part_file is not None and os.path.lexists(part_file):
        raise MoveRefused(
            f"it keeps pieces of skipped files in {part_file}, which a move does not take along"
            " yet: want those files (torrent.set_files) first",
            "info_hash",
        )
    real_src, real_dst = os.path.realpath(source), os.path.realpath(target)
    if real_src == real_dst:
        raise MoveRefused(f"the data is in {target} already")
    for top in {spec.parts[0] for spec in specs if len(spec.parts) > 1}:
        inside = os.path.join(real_src, top)
        if os.path.commonpath([inside, real_dst]) == inside:
            raise MoveRefused(f"{target} is inside the torrent's own folder {source / top}")
    if _kind(target) not in ("dir", "missing", "link") or (
        _kind(target) == "link" and not os.path.isdir(target)
    ):
        raise MoveRefused(f"{target} is not a folder")
    files, total = [], 0
    for spec in specs:
        at_source = _walk(source, spec.parts, "at the source")
        at_target = _walk(target, spec.parts, "in the target")
        move = FileMove(spec.index, spec.parts, spec.length)
        if at_source == "missing":
            move.kind = "absent"  # not written yet: created in the new place when it is
            if at_target != "missing":
                raise MoveRefused(f"{target.joinpath(*spec.parts)} exists: not overwritten")
        else:
            size = os.lstat(source.joinpath(*spec.parts)).st_size
            total += size
            move.length = size
            if at_target != "missing":
                if not same_content(source.joinpath(*spec.parts), target.joinpath(*spec.parts)):
                    raise MoveRefused(
                        f"{target.joinpath(*spec.parts)} exists with other content: not overwritten"
                    )
                move.kind = "same"  # an identical copy is there: use it
        files.append(move)
    return MovePlan(source, target, files, total)


# -- the job ------------------------------------------------------------------------------------
class MoveJob:
    """A planned move done in bounded steps (each on a pool thread, one at a time).

    ``storage`` is the torrent's FileStorage (``relocate_file``, ``set_root``)."""

    def __init__(
        self, plan: MovePlan, storage: Any, ops: DiskOps | None = None, step_bytes: int = STEP_BYTES
    ) -> None:
        self.plan = plan
        self.storage = storage
        self.ops = ops or DiskOps()
        self.step_bytes = step_bytes
        self.done_bytes = 0  # read by the reactor for progress (an int: atomic under the GIL)
        self._next = 0
        self._made: list[Path] = []  # folders created in the target, in creation order
        self.warnings: list[str] = []  # what commit could not tidy (a source left behind)

    @property
    def progress(self) -> float:
        total = self.plan.total
        return 1.0 if total == 0 else min(1.0, self.done_bytes / total)

    def _make_parents(self, parts: tuple[str, ...]) -> None:
        """Create the file's folder in the target (and the target), remembering each one."""
        folder = self.plan.target.joinpath(*parts[:-1])
        missing = []
        while not os.path.isdir(folder):
            if os.path.lexists(folder):
                raise MoveFailed(f"{folder} is not a folder")
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            try:
                os.mkdir(folder)
                self._made.append(folder)
            except FileExistsError:
                pass
            except OSError as exc:
                raise self._failed(exc, "creating", folder) from None

    def step(self) -> bool:
        """Move some more; True once every file is at the target (then ``commit``)."""
        plan, budget, renames = self.plan, self.step_bytes, STEP_RENAMES
        while self._next < len(plan.files) and budget > 0 and renames > 0:
            f = plan.files[self._next]
            src = plan.source.joinpath(*f.parts)
            dst = plan.target.joinpath(*f.parts)
            if f.kind in ("absent", "same"):
                self._make_parents(f.parts)
                self.storage.relocate_file(f.index, plan.target)
                self.done_bytes += f.length if f.kind == "same" else 0
            elif f.kind == "pending":
                self._make_parents(f.parts)
                renames -= 1
                try:
                    self.storage.relocate_file(
                        f.index, plan.target, lambda s=str(src), d=str(dst): self._rename(s, d)
                    )
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise self._failed(exc, "moving", src) from None
                    f.kind = "copying"
                    continue
                f.kind = "renamed"
                self.done_bytes += f.length
            elif f.kind == "copying":
                budget -= self._copy(f, src, dst, budget)
                if f.kind == "copying":
                    return False
            self._next += 1
        return self._next >= len(plan.files)

    def _rename(self, src: str, dst: str) -> None:
        if os.path.lexists(dst):  # appeared since the plan: never overwritten
            raise OSError(errno.EEXIST, "a file of that name appeared in the target", dst)
        self.ops.rename(src, dst)

    def _failed(self, exc: OSError, action: str, path: Path) -> MoveFailed:
        return MoveFailed(f"{action} {path}: {describe(exc)}")

    def _copy(self, f: FileMove, src: Path, dst: Path, budget: int) -> int:
        """Copy up to ``budget`` bytes of ``f``; returns the bytes done."""
        try:
            if f.fds is None:
                sfd = os.open(src, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
                try:
                    mode = os.fstat(sfd).st_mode & 0o7777
                    dfd = os.open(
                        dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, mode
                    )
                except BaseException:
                    os.close(sfd)
                    raise
                f.fds = (sfd, dfd)
            sfd, dfd = f.fds
            done = 0
            while done < budget and f.copied < f.length:
                n = self.ops.copy_chunk(sfd, dfd, f.copied, min(CHUNK, f.length - f.copied))
                if n <= 0:
                    break  # the source is shorter than it was: copy what there is
                f.copied += n
                done += n
                self.done_bytes += n
            if f.copied >= f.length or done < budget:
                os.ftruncate(dfd, f.copied)
                st = os.fstat(sfd)
                os.fsync(dfd)
                os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
                self._close(f)
                self.storage.relocate_file(f.index, self.plan.target)  # read from the copy
                f.kind = "copied"
            return max(done, 1)
        except OSError as exc:
            raise self._failed(exc, "copying to", dst) from None

    @staticmethod
    def _close(f: FileMove) -> None:
        if f.fds is not None:
            for fd in f.fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            f.fds = None

    def commit(self) -> int:
        """Every file is at the target: remove the sources of copies, sync the folders,
        remove the source folders left empty. Returns the target's device."""
        plan = self.plan
        self.storage.set_root(plan.target)
        folders: set[Path] = set()
        for f in plan.files:
            if f.kind in ("copied", "same"):
                try:
                    os.unlink(plan.source.joinpath(*f.parts))
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    self.warnings.append(
                        f"could not remove {plan.source.joinpath(*f.parts)}: {describe(exc)}"
                    )
            for n in range(1, len(f.parts)):
                folders.add(Path(*f.parts[:n]))
        for rel in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            try:
                os.rmdir(plan.source / rel)  # fails harmlessly when not empty
            except OSError:
                pass
        for d in {plan.target.joinpath(*f.parts[:-1]) for f in plan.files} | {plan.source}:
            _fsync_dir(d)
        return os.stat(plan.target).st_dev

    def rollback(self) -> list[str]:
        """Put every file back at the source (renames undone, copies deleted) and remove
        the folders the move made. Returns what could not be undone (empty: all is back)."""
        plan, problems = self.plan, []
        for f in reversed(plan.files):
            src = plan.source.joinpath(*f.parts)
            dst = plan.target.joinpath(*f.parts)
            try:
                if f.kind == "renamed":
                    self.storage.relocate_file(
                        f.index, plan.source, lambda s=str(src), d=str(dst): self.ops.rename(d, s)
                    )
                    f.kind = "pending"
                elif f.kind in ("copying", "copied"):
                    self._close(f)
                    self.storage.relocate_file(f.index, plan.source)
                    if os.path.lexists(dst):
                        os.unlink(dst)
                    f.kind = "pending"
                else:
                    self.storage.relocate_file(f.index, plan.source)
            except OSError as exc:
                problems.append(f"{dst}: {describe(exc)}")
        for folder in reversed(self._made):
            try:
                os.rmdir(folder)
            except OSError:
                pass
        if not problems:
            self.storage.set_root(plan.source)
        _fsync_dir(plan.source)
        return problems


def _fsync_dir(path: Path) -> None:
    fsync_dir(path, strict=False)

"""One torrent's data on disk: checks, piece writes and reads, through the Verifier.

Every call returns a Deferred: hashing and file I/O run on the Verifier's thread pool,
never on the reactor thread. The first check after an add hashes only pieces of files
that exist; a check with saved progress (``ResumeProgress``) trusts its pieces except those
touching a file whose size changed since the save (``btd.core.resume.resume_plan``);
``torrent.verify`` hashes every piece.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from btd.core.bitfield import Bitfield
from btd.core.errors import ConfigError, StorageError
from btd.core.metainfo import Metainfo
from btd.core.resume import ResumeProgress, progress_problem, resume_plan
from btd.core.storage import FileCheck, FileStorage, StorageMissingError
from btd.core.storage_guard import had_files, storage_problem

_log = Logger(namespace="btd.core.torrent")


class TorrentData:
    """One torrent's files: checks (with the progress of the current one, 0..1), writes
    of verified pieces and reads for uploading. ``verifier`` is read per call (live)."""

    def __init__(
        self,
        meta: Metainfo,
        storage: FileStorage,
        verifier: Callable[[], Any],
        save_path: Callable[[], Path] | None = None,
    ) -> None:
        self.meta = meta
        self.storage = storage
        self.verifier = verifier
        self.save_path = save_path  # where the data belongs (the storage may be elsewhere)
        self.progress = 0.0

    def piece_size(self, index: int) -> int:
        return self.meta.piece_size(index)

    def verify_and_write(self, index: int, data: bytes) -> defer.Deferred[bool]:
        """Hash a complete piece and write it if it is good; False if the hash failed."""
        d: defer.Deferred[bool] = self.verifier().verify_and_write(
            self.storage, index, data, self.meta.piece_check(index)
        )
        return d

    def read_block(self, index: int, begin: int, length: int) -> defer.Deferred[bytes]:
        d: defer.Deferred[bytes] = self.verifier().read_block(self.storage, index, begin, length)
        return d

    def read_pieces(self, indices: list[int]) -> defer.Deferred[list[bytes]]:
        """Whole pieces, read in one pool job."""
        spans = [(index, 0, self.meta.piece_size(index)) for index in indices]
        d: defer.Deferred[list[bytes]] = self.verifier().read_blocks(self.storage, spans)
        return d

    def want_files(self, indices: list[int]) -> defer.Deferred[None]:
        """Skipped files became wanted: their bytes leave the part file (on the pool)."""
        d: defer.Deferred[None] = self.verifier().want_files(self.storage, indices)
        return d

    def usable_resume(self, resume: ResumeProgress, name: str) -> bool:
        """Saved progress that fits this torrent (else it is ignored, with a warning)."""
        problem = progress_problem(resume, self.meta.num_pieces, len(self.meta.files))
        if problem is not None:
            _log.warn("resume data of {name} ignored: {problem}", name=name, problem=problem)
        return problem is None

    def check(
        self,
        *,
        full: bool,
        resume: ResumeProgress | None,
        should_stop: Callable[[], bool],
        had_pieces: bool = False,
    ) -> defer.Deferred[Bitfield]:
        """The pieces found good (hashed, or trusted from ``resume``).

        A torrent with progress (``resume`` says files were written, or ``had_pieces``)
        whose save path is gone fails it with StorageMissingError before anything is
        hashed or created (btd.core.storage_guard)."""
        self.progress = 0.0
        d: defer.Deferred[FileCheck] = self.verifier().check_files(self.storage)
        if resume is None and not had_pieces:
            d.addCallback(self._look_in_save_path)
        d.addCallback(self._check_storage, resume, had_pieces)
        return d.addCallback(self._check_pieces, full, resume, should_stop)

    def _look_in_save_path(self, files: FileCheck) -> defer.Deferred[FileCheck] | FileCheck:
        """A first check in the incomplete_dir that finds nothing there looks in the save
        path: data added from where it already is is checked (and seeded) there."""
        final = self.save_path() if self.save_path is not None else None
        storage = self.storage
        if final is None or final == storage.save_path or any(f.exists for f in files.files):
            return files
        meta = self.meta
        there = FileStorage(final, meta.files, meta.piece_length, meta.total_length)
        d: defer.Deferred[FileCheck] = self.verifier().check_files(there)

        def found(check: FileCheck) -> FileCheck:
            if not any(f.exists for f in check.files if not f.pad):
                return files
            storage.set_root(final)
            return check

        return d.addCallback(found)

    def _check_storage(
        self, files: FileCheck, resume: ResumeProgress | None, had_pieces: bool
    ) -> FileCheck:
        root = files.root
        if root is None:  # a Storage that does not probe its root
            return files
        had = had_pieces or (
            resume is not None
            and had_files(
                resume.file_sizes, Bitfield.from_bytes(resume.have, self.meta.num_pieces).count
            )
        )
        found = any(f.exists for f in files.files if not f.pad)
        storage = self.storage
        problem = storage_problem(
            storage.save_path, storage.root_dev, root, had_files=had, files_found=found
        )
        if problem is not None:
            raise StorageMissingError(problem, root)
        storage.root_dev = root.dev if root.is_dir else None  # None: made when first written
        return files

    def _check_pieces(
        self,
        files: FileCheck,
        full: bool,
        resume: ResumeProgress | None,
        should_stop: Callable[[], bool],
    ) -> defer.Deferred[Bitfield] | Bitfield:
        meta = self.meta
        trusted = Bitfield(meta.num_pieces)
        if full:
            pieces = None
        elif resume is not None:
            plan = resume_plan(resume, files.files, meta.num_pieces)
            trusted, pieces = plan.trusted, plan.recheck
        else:
            existing = [f for f in files.files if f.exists and f.size > 0 and not f.pad]
            pieces = sorted({i for f in existing for i in f.pieces})
        if pieces == []:
            return trusted

        def progress(done: int, total: int) -> None:
            self.progress = done / total if total else 1.0

        d: defer.Deferred[Bitfield] = self.verifier().recheck(
            self.storage,
            meta.piece_ok if meta.v2 is not None else meta.piece_hashes,
            meta.piece_length,
            meta.total_length,
            pieces=pieces,
            on_progress=progress,
            should_stop=should_stop,
        )

        def found(have: Bitfield) -> Bitfield:
            for index in trusted:
                have.add(index)
            return have

        return d.addCallback(found)

    def progress_of(
        self, have: Bitfield, uploaded: int, downloaded: int, completed_at: float | None
    ) -> ResumeProgress:
        """``have`` as resume data would record it: a file that holds a piece had is whole
        on disk (files are sized when created), the others are not counted."""
        pieces_of = self.storage.pieces_of_file
        in_part = self.storage.in_part  # a skipped file kept in the part file is not on disk
        sizes = tuple(
            entry.length if not in_part(n) and any(i in have for i in pieces_of(n)) else -1
            for n, entry in enumerate(self.meta.files)
        )
        return ResumeProgress(
            have.to_bytes(), self.meta.num_pieces, uploaded, downloaded, sizes, completed_at, 0.0
        )


class SavePathError(StorageError):
    """A torrent's save path cannot be created or written (refused at add time)."""


def check_save_path(path: Path) -> None:
    """Create ``path`` if needed and make sure we may write there (blocking: run it off
    the reactor thread); SavePathError with the reason otherwise."""
    try:
        if path.exists() and not path.is_dir():
            raise SavePathError(f"cannot write to {path}: not a directory")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SavePathError(f"cannot write to {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SavePathError(f"cannot write to {path}: Permission denied")


DOWNLOAD_DIR_KEY = "session.download_dir"


def check_download_dir(path: Path) -> None:
    """The default download folder must be a folder (``btd --check-config`` and start):
    ConfigError when it, or a part of its path, is something else (blocking: a stat)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return  # created at start, in a parent that exists (``make_download_dir``)
    except OSError as exc:  # NotADirectoryError: a part of the path is a file
        raise ConfigError(f"{path}: {exc.strerror or exc}", DOWNLOAD_DIR_KEY) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path} is not a directory", DOWNLOAD_DIR_KEY)


def make_download_dir(path: Path) -> None:
    """At start: create a missing default download folder, but only in a parent that
    exists (never a whole tree on the wrong disk); ConfigError otherwise."""
    check_download_dir(path)
    if path.is_dir():
        return
    if not path.parent.is_dir():
        raise ConfigError(
            f"{path} does not exist, nor does its parent {path.parent}", DOWNLOAD_DIR_KEY
        )
    try:
        path.mkdir()
    except FileExistsError:
        check_download_dir(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot create {path}: {exc.strerror or exc}", DOWNLOAD_DIR_KEY
        ) from None

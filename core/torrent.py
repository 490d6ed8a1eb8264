"""Torrent: one torrent's coordinator and state machine.

Size: about 800 lines, because besides its own jobs it implements four narrow host
contracts (PeerHost, DownloadHost, UploadHost and Swarm), mostly one-line forwards to the
parts it composes, the storage-missing moves of its state machine, the moves a file
selection makes (``set_files``; the selection itself is core/file_selection.py) and its
side of the queue (``queued``: core/queue.py decides).

States (core/torrent_state.py): ``checking`` (hashing existing data) -> ``downloading`` |
``seeding``; ``paused``; ``stopped``; ``error`` (a disk error; other torrents are
unaffected). ``Torrent._enter`` is the one place the state changes and does what entering
a state means. The Torrent owns the piece bookkeeping (PieceBook), the swarm view, the
announcer and its peers; it composes the Downloader (core/download.py), the Uploader
(core/upload.py) and its extension traffic (core/torrent_extensions.py), hands disk work
to the Verifier (thread pool) and never blocks the reactor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.availability import Availability, TorrentSwarm
from btd.core.bandwidth import Bandwidth
from btd.core.bitfield import Bitfield
from btd.core.download import Downloader
from btd.core.extensions import Extensions
from btd.core.file_selection import FileSelection
from btd.core.hash_serve import HashServer
from btd.core.limits import PEER_SILENCE_TIMEOUT
from btd.core.metainfo import Metainfo
from btd.core.peer import Peer
from btd.core.peer_slots import (
    INACTIVE_REASON,
    REPLACED_REASON,
    inactive_for,
    note_interest,
    requestable,
    spare_key,
)
from btd.core.picking import NORMAL
from btd.core.pieces import PieceBook
from btd.core.resume import ResumeProgress
from btd.core.scheduler import Scheduler, Ticker
from btd.core.seeding_goals import SeedClock
from btd.core.storage import STORAGE_MISSING, FileStorage, RootProbe, StorageMissingError
from btd.core.storage_guard import had_files, storage_problem
from btd.core.swarm import swarm_ids
from btd.core.swarm_peers import PeerCandidates
from btd.core.torrent_data import TorrentData
from btd.core.torrent_env import TorrentEnv, TorrentOptions
from btd.core.torrent_extensions import TorrentExtensions
from btd.core.torrent_state import ACTIVE, TorrentState, check_transition
from btd.core.tracker.announcer import Announcer
from btd.core.tracker.codec import AnnounceRequest
from btd.core.types import BlockRef, PeerAddress, format_address, torrent_label
from btd.core.upload import Uploader
from btd.core.wire import messages as m

_log = Logger(namespace="btd.core.torrent")

TICK = 1.0
RECHOKE_EVERY = 10  # ticks
REQUEST_TIMEOUT = 60.0
IDLE_TIMEOUT = PEER_SILENCE_TIMEOUT  # nothing heard at all (core/limits.py)
KEEPALIVE_AFTER = 90.0


S = TorrentState


class _Counted:
    """A torrent attribute whose every assignment counts as a change of its list row
    (``Torrent.row_changed``: core/rpc/list_rows.py). For attributes written seldom:
    reading one costs a Python call. The value is kept in a plain attribute (``_row_NAME``),
    not through ``__dict__``, which would give every torrent a dict of its own."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_row_{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj, self.slot)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj, self.slot, value)
        obj.row_changed()


class Torrent:
    """Coordinates pieces, picker, peers, trackers and storage for one torrent.

    It implements the ``PeerHost`` its peers call, the ``DownloadHost`` and the
    ``UploadHost``, and the ``Swarm`` the connection layer and the session see.
    """

    # Its ~45 attributes are past what an instance dict shares keys for (30): each torrent
    # had a dict of its own, 1.6 KB; slots are 8 bytes each (16 MB less at 10,000).
    # ``__dict__`` stays for what a test sets on one. The _Counted ones below keep their
    # values in ``_row_NAME`` slots.
    __slots__ = tuple(
        """
        _checked _completed_while_inactive _picker _resume _spare _ticker _ticks added_at
        announcer availability banned book candidates clock data downloaded
        downloader env extension_traffic hash_server hex
        info_hash limits meta num_pieces peers scheduler
        selection sources state status_changes storage stored_options stored_root_dev
        uploaded uploader view __dict__ __weakref__
        _row_options _row_error _row_storage_problem _row_hold_reason _row_move_task
        _row_completed_at _row_seed_clock _row_have_changes
        """.split()
    )

    # What a torrent's list row is made of, besides its state and its peers (row_changed
    # is called for those) and what never changes: each assignment is a change of the row.
    options = _Counted()  # replaced, never changed in place (a frozen dataclass)
    error = _Counted()
    storage_problem = _Counted()  # "storage missing: ..." while in error
    hold_reason = _Counted()  # paused by the session (core/disk_space.py)
    move_task = _Counted()  # a move of its files in progress (core/mover.py)
    completed_at = _Counted()
    seed_clock = _Counted()  # seeding and idle time (core/seeding_goals.py)
    have_changes = _Counted()  # bumped whenever the set of pieces had changes (resume saves)

    def __init__(self, meta: Metainfo, options: TorrentOptions, env: TorrentEnv) -> None:
        self.status_changes = 0  # changes of its list row (row_changed)
        self.env = env
        self.meta = meta
        self.info_hash = meta.info_hash
        self.hex = meta.info_hash.hex()  # kept: every list row names it (10,000 per call)
        self.num_pieces = meta.num_pieces
        self.options = options
        self.stored_options: TorrentOptions | None = None  # as the resume store has them
        self.stored_root_dev: int | None = None  # the storage device the store has
        self.clock = env.clock
        self.state = S.PAUSED if options.paused else S.STOPPED
        self.error: str | None = None
        self.storage_problem: str | None = None
        self.hold_reason: str | None = None
        self.move_task: Any = None
        # Where its files are: the incomplete_dir while it downloads, if one is set (the
        # session puts a stored torrent's back where they were; core/mover.py moves them).
        self.storage = FileStorage(
            env.incomplete_dir() or options.save_path,
            meta.files,
            meta.piece_length,
            meta.total_length,
            part_name=f".{meta.hex}.parts",
        )
        # wanted files and priorities (FileSelectionError, a ValueError, if bad)
        self.selection = FileSelection(meta.files, meta.piece_length, meta.total_length)
        self.selection.load_options(
            {
                "files_skipped": list(options.files_skipped),
                "file_priorities": {str(i): name for i, name in options.file_priorities},
            }
        )
        for index in self.selection.skipped():
            self.storage.skip_file(index)
        self.peers: dict[Peer, None] = {}
        self._spare: list[Peer] = []  # peers a newcomer may replace, least useful first (tick)
        self.candidates = PeerCandidates(self.clock.seconds, rng=env.rng, totals=env.disconnects)
        # bound methods, not lambdas: a closure and its cell are ~200 bytes per torrent
        self.data = TorrentData(meta, self.storage, self._verifier, self._save_path)
        self.uploader = Uploader(self, self.data, self.clock, env.upload_slots, env.rng)
        self.downloader = Downloader(self, self.data, self.clock)
        self.extension_traffic = TorrentExtensions(self, env, meta.info_bytes, meta.private)
        self.hash_server: HashServer | None = None  # BEP 52, made at the first hash message
        self.added_at = self.clock.seconds()
        self.completed_at: float | None = None
        self.seed_clock = SeedClock()
        self.uploaded = 0
        self.downloaded = 0
        self.sources: dict[str, int] = {}  # "host:port" -> payload bytes received (all time)
        self.banned: list[str] = []
        self.have_changes = 0
        self._checked = False
        self._resume: ResumeProgress | None = None
        self._completed_while_inactive = False  # the last piece was verified while paused
        self._ticks = 0
        # "is None", not "or": an empty Scheduler is falsy (len 0) and must still be shared
        self.scheduler: Scheduler = (
            env.scheduler if env.scheduler is not None else Scheduler(self.clock)
        )
        self._ticker = Ticker(
            self.scheduler, self._tick, TICK
        )  # armed while there are peers or dials
        bandwidth = env.bandwidth if env.bandwidth is not None else Bandwidth(self.scheduler)
        self.limits = bandwidth.torrent()  # its speed limits (core/bandwidth.py)
        self.limits.set(options.download_limit, options.upload_limit)
        self._build_book(Bitfield(self.num_pieces))
        if options.strategy not in env.known_strategies:  # ValueError now if unknown
            self._make_picker(options.strategy)
            env.known_strategies.add(options.strategy)
        self.announcer = Announcer(
            self.clock,
            meta.announce_tiers,
            env.tracker_client_for,
            self._announce_request,
            self.add_peers,
            extra_ids=self.swarm_ids[1:],  # a hybrid announces its v2 swarm too (BEP 52)
            rng=env.rng,
            scheduler=self.scheduler,
            health=env.tracker_health,
            allow_local=self._allow_local_trackers,
        )

    def _verifier(self) -> Any:
        return self.env.verifier

    def _save_path(self) -> Path:
        return self.options.save_path

    def _allow_local_trackers(self) -> bool:
        return self.options.allow_local_trackers

    # -- setup --------------------------------------------------------------------------
    def _build_book(self, have: Bitfield) -> None:
        meta = self.meta
        self.book = PieceBook(meta.num_pieces, meta.piece_length, meta.total_length)
        for index in have:
            self.book.mark_have(index)
        self.have_changes += 1
        self.availability = Availability(meta.num_pieces)
        prios = None if self.selection.default else self.selection.piece_priorities()
        self.view = TorrentSwarm(self.book, self.availability, prios)
        self._picker: Any = None  # made when first asked for (a seed never picks)

    def _make_picker(self, strategy: str) -> Any:
        picker = self.env.picker_for(strategy, self.view)
        if picker is None:
            raise ValueError(f"no piece strategy called {strategy!r} (enable its plugin)")
        return picker

    @property
    def picker(self) -> Any:
        if self._picker is None:
            self._picker = self._make_picker(self.options.strategy)
        return self._picker

    def set_strategy(self, strategy: str) -> None:
        self._picker = self._make_picker(strategy)
        self.options = replace(self.options, strategy=strategy)

    def set_rate_limits(self, down: int | None = None, up: int | None = None) -> None:
        """Per-torrent limits in bytes/s (0 = unlimited; None: unchanged), live."""
        self.limits.set(down, up)
        self.options = replace(
            self.options, download_limit=self.limits.down.rate, upload_limit=self.limits.up.rate
        )

    @property
    def swarm_ids(self) -> tuple[bytes, ...]:
        """The info hashes it is found, announced and dialled under: a hybrid's v1 hash and
        its truncated v2 hash (BEP 52), else its one ``info_hash``."""
        return swarm_ids(self.info_hash, self.meta.info_hash_v2)

    @property
    def v2(self) -> bool:
        """It has v2 hashes (v2-only or hybrid): our handshakes carry BEP 52's bit."""
        return self.meta.info_hash_v2 is not None

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def label(self) -> str:
        """``1a2b3c4d "name"`` for log lines."""
        return torrent_label(self.info_hash, self.name)

    @property
    def complete(self) -> bool:
        """Every wanted piece is had: complete for the user (it seeds what it has)."""
        return self.book.wanted_done

    def set_files(
        self, indices: Sequence[int], *, wanted: bool | None = None, priority: int | None = None
    ) -> defer.Deferred[None]:
        """Want or skip files, or change their priority (``torrent.set_files``).

        The picker sees the new piece priorities at once; a torrent whose wanted pieces
        are all had becomes ``seeding`` (``completed``), one that lacks some again
        ``downloading``. Files wanted again get their bytes back from the part file on
        the pool (the Deferred fires when they are there); pieces had stay had.
        """
        sel = self.selection
        more = [i for i in indices if wanted and not sel.wanted[i]]
        if wanted is False:
            for index in indices:
                self.storage.skip_file(index)
        changed = sel.set(indices, wanted=wanted, priority=priority)
        self.options = replace(
            self.options,
            files_skipped=tuple(sel.skipped()),
            file_priorities=tuple(
                (i, sel.priority_name(i)) for i in range(sel.num_files) if sel.priority[i] != NORMAL
            ),
        )
        if changed:
            self._apply_selection()
        if not more:
            return defer.succeed(None)
        d = self.data.want_files(more)

        def failed(failure: Failure) -> None:
            if self.active:
                self.fail(f"moving data out of the part file failed: {failure.getErrorMessage()}")

        return d.addErrback(failed)

    def _apply_selection(self) -> None:
        self.view.set_priorities(self.selection.piece_priorities())
        self.have_changes += 1
        if self.state is S.DOWNLOADING and self.complete:
            self._enter(S.SEEDING)
        elif self.state is S.SEEDING and not self.complete:
            self._enter(S.DOWNLOADING)
        if self.active:
            for peer in list(self.peers):
                self.downloader.update_interest(peer, None)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def private(self) -> bool:
        """BEP 27: peers only from the torrent's trackers (no DHT, no PEX)."""
        return self.meta.private

    @property
    def encryption(self) -> str | None:
        return self.options.encryption

    @property
    def extensions(self) -> Extensions:
        return self.env.extensions

    @property
    def wasted(self) -> int:
        return self.downloader.wasted

    @property
    def check_progress(self) -> float:
        """How far the running (or last) check got, 0..1."""
        return self.data.progress

    @property
    def checked(self) -> bool:
        """The piece set reflects the disk (the first check finished): worth saving."""
        return self._checked

    def progress_key(self) -> tuple[int, int, int]:
        """Changes whenever what resume data records changes (pieces had, totals)."""
        return (self.have_changes, self.uploaded, self.downloaded)

    def row_changed(self) -> None:
        """Something its list row is made of changed (core/status_log.py)."""
        self.status_changes += 1
        self.env.row_changed(self)

    # -- the state machine ------------------------------------------------------------------
    def _enter(self, new: TorrentState) -> defer.Deferred[None]:
        """Move to ``new`` (see core/torrent_state.py) and do what entering it means.

        Leaving downloading/seeding closes the peers and tells the trackers ``stopped``
        (the Deferred fires when they answered, bounded); entering them starts the tick
        loop and the announcer; downloading -> seeding is the completion. Entering the
        current state does nothing; a move the table does not allow raises
        IllegalTransition.
        """
        old = self.state
        if new == old:
            return defer.succeed(None)
        check_transition(old, new)
        self.state = new
        self.row_changed()
        if self.storage_problem is not None:  # leaving a storage-missing error
            self._storage_wait(False)
            self.storage_problem = self.error = None
        if old is S.PAUSED:
            self.hold_reason = None
        self.env.state_changed(self, old, new)
        if old in ACTIVE and new not in ACTIVE:
            return self._deactivate(self.env.shutdown_timeout)
        if new in ACTIVE and old not in ACTIVE:
            self._activated()
        elif new is S.SEEDING:
            self._completed()
        return defer.succeed(None)

    def _activated(self) -> None:
        self.options = replace(self.options, paused=False)
        self.announcer.start(delay=self.env.announce_delay())
        self.env.emit(self, "started", {"state": self.state})
        if self._completed_while_inactive and self.complete:
            self._completed()  # finished while paused: tell trackers and listeners now
        self._connect_more()

    def _completed(self) -> None:
        self._completed_while_inactive = False
        self.completed_at = self.clock.seconds()
        _log.info("completed {label}", label=self.label)
        self.announcer.completed()
        self.env.emit(self, "completed", {"downloaded": self.downloaded, "uploaded": self.uploaded})
        seed = self.book.have.complete  # else a partial seed: a seed may have more we want
        for peer in list(self.peers):
            peer.set_interested(False)
            if seed and peer.has.complete:
                peer.link.close("both seeding")

    def _deactivate(self, timeout: float) -> defer.Deferred[None]:
        self._ticker.cancel()
        self._spare = []
        self.env.spare_slots.withdraw(self)
        for peer in list(self.peers):
            peer.link.close("torrent stopped")
            # Forget it now, not when its connectionLost arrives (which a peer that never
            # reads could delay): a recheck may rebuild the book and the availability.
            self.peer_gone(peer, "torrent stopped")
        self.uploader.clear_cache()
        return self.announcer.stop(timeout)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, resume: ResumeProgress | None = None) -> defer.Deferred[None]:
        """Check existing data once, then download or seed.

        With ``resume`` (saved progress), its totals come back and its pieces are trusted
        without hashing, except those touching a file whose size changed since the save
        (see ``btd.core.resume.resume_plan``); pieces it does not list are not hashed.
        """
        self.error = None
        if self._checked:
            return self._run()
        if resume is not None:
            self.uploaded, self.downloaded = resume.uploaded, resume.downloaded
            self.completed_at = resume.completed_at
            if self.data.usable_resume(resume, self.name):
                self._resume = resume
        if self._resume is not None and self.state is S.PAUSED:
            # Nothing reads its files while it is paused: show the saved pieces and check
            # the files (sizes against the saved ones) when it is resumed; only its save
            # path is probed now (shared with the other torrents there).
            self._build_book(Bitfield.from_bytes(self._resume.have, self.num_pieces))
            self._probe_paused(self._resume)
            return defer.succeed(None)
        return self._check(full=False)

    def _probe_paused(self, resume: ResumeProgress) -> None:
        guard = self.env.storage_guard
        if guard is None or not had_files(resume.file_sizes, self.book.have.count):
            return
        root = self.storage.save_path

        def answer(probe: RootProbe) -> None:
            if self.state is S.PAUSED and not self._checked:
                dev = self.storage.root_dev
                problem = storage_problem(root, dev, probe, had_files=True, files_found=None)
                if problem is not None:
                    self.fail(problem, probe)

        guard.probe(root, answer)

    def retry_storage(self) -> None:
        """The storage guard saw the save path change: look again, and go back to the
        state the torrent had (paused, or checking its files' sizes, then transferring)."""
        if self.state is not S.ERROR or self.storage_problem is None:
            return
        _log.info("the save path of {label} changed: checking it again", label=self.label)
        self._enter(S.STOPPED)
        if self.options.paused:
            self._enter(S.PAUSED)
        d = self.start()
        d.addErrback(lambda f: _log.failure("retrying {label} failed", f, label=self.label))

    def _storage_wait(self, waiting: bool, probe: RootProbe | None = None) -> None:
        guard = self.env.storage_guard
        if guard is not None:
            if waiting:
                guard.wait(self, self.storage.save_path, probe)
            else:
                guard.forget(self, self.storage.save_path)

    @property
    def state_detail(self) -> str | None:
        """Why the torrent is in its state when the state alone does not say (its save
        path is missing, no room on its disk, its files are being moved)."""
        if self.storage_problem or self.hold_reason:
            return self.storage_problem or self.hold_reason
        return None if self.move_task is None else self.move_task.detail

    def hold(self, reason: str) -> None:
        """Pause a download for the session (no room: core/disk_space.py), not for the
        user: its ``paused`` option stays false and ``state_detail`` says ``reason``."""
        if self.state is S.DOWNLOADING:
            _log.info("paused {label}: {reason}", label=self.label, reason=reason)
            self._enter(S.PAUSED)
            self.hold_reason = reason

    def _check(self, *, full: bool) -> defer.Deferred[None]:
        had_pieces = self.book.have.count > 0  # a verify of a torrent with progress
        self._enter(S.CHECKING)
        resume = self._resume

        def should_stop() -> bool:
            return self.state is not S.CHECKING

        def start() -> defer.Deferred[Bitfield]:
            return self.data.check(
                full=full, resume=resume, should_stop=should_stop, had_pieces=had_pieces
            )

        gate = self.env.check_gate  # a few checks at once, session-wide (core/check_gate.py)
        d = start() if gate is None else gate.run(start, should_stop)
        d.addCallback(self._checked_result)
        d.addErrback(self._check_failed)
        return d

    def _checked_result(self, have: Bitfield) -> defer.Deferred[None]:
        if self.state is not S.CHECKING:
            return defer.succeed(None)
        self._build_book(have)
        self._checked = True
        self._resume = None  # used once: a later check (torrent.verify) reads the disk
        self.data.progress = 1.0
        self.env.emit(self, "verified", {"pieces": have.count})
        if self.options.paused:
            return self._enter(S.PAUSED)
        return self._run()

    # -- the queue (core/queue.py) ------------------------------------------------------------
    def _run(self) -> defer.Deferred[None]:
        """Download or seed, or wait ``queued`` if the session's queue has no slot now."""
        queue = self.env.queue
        if queue is not None and not queue.admit(self):
            return self.enqueue()
        return self._enter(S.SEEDING if self.complete else S.DOWNLOADING)

    def enqueue(self) -> defer.Deferred[None]:
        """Wait in the queue: peers closed, trackers told ``stopped`` if they were told
        ``started`` (the queue calls it for a running torrent beyond the limits)."""
        d = self._enter(S.QUEUED)
        _log.info("queued {label}", label=self.label)
        self.env.emit(self, "queued", {})
        return d

    def dequeue(self) -> defer.Deferred[None]:
        """The queue has a slot for it: download or seed now."""
        if self.state is not S.QUEUED:
            return defer.succeed(None)
        return self._enter(S.SEEDING if self.complete else S.DOWNLOADING)

    def queue_move(self, where: str | int) -> int:
        """Move it in the session's queue (``top``, ``up``, ``down``, ``bottom`` or a
        position); its new position. ValueError: a bad move, or no queue."""
        if self.env.queue is None:
            raise ValueError("this torrent is in no queue")
        return int(self.env.queue.move(self, where))

    @property
    def queue_position(self) -> int | None:
        queue = self.env.queue
        return None if queue is None else queue.position(self)

    def set_force_start(self, force: bool) -> None:
        """Run whatever the queue's limits (not counted in them either)."""
        self.options = replace(self.options, force_start=force)
        if self.env.queue is not None:
            self.env.queue.changed(self)
        if force and self.state is S.QUEUED:
            self.dequeue()

    def goals_changed(self) -> None:
        """Its seeding goals changed: look at them again."""
        if self.env.seeding_goals is not None:
            self.env.seeding_goals.changed(self)

    def _check_failed(self, failure: Failure) -> None:
        if failure.check(defer.CancelledError) or self.state is not S.CHECKING:
            return None  # stopped, paused or removed meanwhile (storage closed): not an error
        if failure.check(StorageMissingError):
            self.fail(failure.getErrorMessage(), failure.value.probe)
            return None
        self.fail(f"checking failed: {failure.getErrorMessage()}")
        return None

    def pause(self) -> defer.Deferred[None]:
        if self.state is S.PAUSED:
            if self.hold_reason is not None:  # held for room: now the user's pause
                self.hold_reason = None
                self.options = replace(self.options, paused=True)
                self.env.emit(self, "paused", {})
            return defer.succeed(None)
        self.options = replace(self.options, paused=True)
        _log.info("paused {label}", label=self.label)
        d = self._enter(S.PAUSED)
        self.env.emit(self, "paused", {})
        return d

    def resume(self) -> defer.Deferred[None]:
        if self.state is S.CHECKING and self.options.paused:  # the check then transfers
            self.options = replace(self.options, paused=False)
            return defer.succeed(None)
        if self.state not in (S.PAUSED, S.ERROR, S.STOPPED):
            return defer.succeed(None)
        if self.move_task is not None and not self.complete:  # writes wait for the move
            self.options = replace(self.options, paused=False)
            self.move_task.resume_after = True
            return defer.succeed(None)
        _log.info("resumed {label}", label=self.label)
        self.options = replace(self.options, paused=False)
        self._enter(S.STOPPED)
        return self.start()

    def stop(self, *, close_storage: bool = True) -> defer.Deferred[None]:
        """Shutdown: tell trackers ``stopped`` (bounded) and close peers cleanly."""
        if self.storage_problem is not None:
            self._storage_wait(False)  # removed or shut down: the guard forgets it
        d = self._enter(S.STOPPED) if self.state is not S.ERROR else defer.succeed(None)
        if close_storage:
            self.storage.close()
        return d

    def verify(self) -> defer.Deferred[None]:
        """Recheck every piece from disk (``torrent.verify``)."""
        if self.state is S.CHECKING:
            return defer.succeed(None)  # a check is running already
        resume_after = not self.options.paused and self.state is not S.PAUSED
        d = self._enter(S.CHECKING)  # from now on: no new peers, no requests
        self.options = replace(self.options, paused=not resume_after)

        def run(_: object) -> defer.Deferred[None]:
            if self.state is not S.CHECKING:
                return defer.succeed(None)  # paused, stopped or removed meanwhile
            return self._check(full=True)

        return d.addCallback(run)

    def fail(self, message: str, probe: RootProbe | None = None) -> None:
        """A disk error: this torrent stops (state ``error``); the others go on.

        A ``storage missing`` one (its save path is gone) keeps the torrent's progress as
        it is and waits on the session's storage guard for the save path to come back;
        ``probe`` is what the save path looked like."""
        missing = message.startswith(STORAGE_MISSING)
        if missing and self._checked:  # lost while running: check its sizes when back
            self._resume = self.data.progress_of(
                self.book.have, self.uploaded, self.downloaded, self.completed_at
            )
            self._checked = False  # the saver keeps the stored progress meanwhile
        elif missing and self._resume is not None and not self.book.have.count:
            self._build_book(Bitfield.from_bytes(self._resume.have, self.num_pieces))
        self._enter(S.ERROR)  # IllegalTransition if it was not checking or active (a bug)
        self.error = message
        _log.error("error in {label}: {message}", label=self.label, message=message)
        if missing:
            self.storage_problem = message
            self._storage_wait(True, probe)
        self.env.emit(self, "error", {"error": message})

    # -- what the Downloader and the Uploader report ------------------------------------------
    def count_download(self, size: int) -> None:
        self.downloaded += size

    def count_upload(self, size: int) -> None:
        self.uploaded += size

    def pieces_changed(self) -> None:
        self.have_changes += 1
        self.env.progress_changed(self)

    def download_complete(self) -> None:
        if self.active:
            self._enter(S.SEEDING)
        else:
            self._completed_while_inactive = True  # announced on resume

    def ban(self, peer: Peer, reason: str) -> None:
        address = format_address(peer.link.address)
        self.candidates.ban(peer.link.address, reason, peer_id=peer.peer_id)
        self.banned.append(address)
        self.env.emit(self, "peer_banned", {"address": address, "reason": reason})
        peer.link.close(f"sent {reason}", error=True)

    def have_piece(self, index: int) -> bool:
        return index in self.book.have

    # -- trackers and peer candidates -----------------------------------------------------
    def _announce_request(self, event: str) -> AnnounceRequest:
        return AnnounceRequest(
            info_hash=self.info_hash,
            peer_id=self.env.peer_id,
            port=self.env.listen_port(),
            uploaded=self.uploaded,
            downloaded=self.downloaded,
            left=self.book.bytes_left,
            event=event,
            numwant=50,
        )

    def add_peers(
        self,
        addresses: Sequence[PeerAddress],
        *,
        retry: bool = False,
        swarm_id: bytes | None = None,
    ) -> int:
        """Peers from trackers, PEX, DHT or ``torrent.add_peer`` (``retry``: even one that is
        backing off); returns how many can be dialled now that could not before.
        ``swarm_id``: the info hash they were found under (a hybrid's v2 swarm: they are
        dialled with it); None or ``info_hash``: the primary swarm."""
        if swarm_id == self.info_hash or swarm_id not in self.swarm_ids:
            swarm_id = None  # only another of our own ids tags a peer
        added = self.candidates.add(addresses, retry=retry, swarm_id=swarm_id)
        if added and self.active:
            self._connect_more()
        return added

    def _connect_more(self) -> None:
        if not self.active:
            return
        if len(self.candidates):
            self._wake()  # candidates to dial now or after their back-off: keep ticking
            connected = {p.link.address for p in self.peers}
            while len(self.peers) + self.candidates.connecting < self.env.max_peers():
                if not self.env.can_connect():
                    return
                address = self.candidates.next(exclude=connected)
                if address is None:
                    return
                swarm_id = self.candidates.swarm_id(address)
                if swarm_id is None:
                    self.env.connect(self, address)
                else:  # heard in a hybrid's v2 swarm: the handshake names its v2 hash
                    self.env.connect(self, address, swarm_id=swarm_id)

    def connection_failed(self, address: PeerAddress, reason: str) -> None:
        _log.debug("connection to {address} failed: {reason}", address=address, reason=reason)
        self.candidates.failed(address, count=self.active)  # inactive: we dropped it

    def found_self(self, address: PeerAddress) -> None:
        self.candidates.ban(address, "ourselves")

    # -- peers (PeerHost) -------------------------------------------------------------------
    def attach(self, link: Any, hs: m.Handshake) -> Peer | None:
        """A handshake completed: accept the peer or refuse (limits, duplicates, state).

        At the torrent's limit, or over the session's (``link.over_limit``), it takes the
        place of a spare peer (core/peer_slots.py) or is refused.
        """
        if not self.active:
            return None
        if link.address in self.candidates.banned or hs.peer_id in self.candidates.banned_peer_ids:
            return None
        if any(p.peer_id == hs.peer_id for p in self.peers):
            return None
        if len(self.peers) >= self.env.max_peers():
            if not self.release_spare():  # frees a session slot as well
                return None
            link.over_limit = False
        elif getattr(link, "over_limit", False):
            if not (self.release_spare() or self.env.spare_slots.take()):
                return None
            link.over_limit = False
        peer = Peer(self, link, hs, self.clock.seconds, fast=True, extensions=True)
        self.limits.attach(peer, link, lambda: self.peer_writable(peer))
        self.peers[peer] = None
        self.row_changed()
        self._wake()
        if link.outgoing:
            self.candidates.connected(link.address)
        self.extension_traffic.greet(peer, hs.supports_dht)
        have = self.book.have
        if peer.fast and have.complete:
            peer.write(m.HAVE_ALL_MSG)
        elif peer.fast and have.count == 0:
            peer.write(m.HAVE_NONE_MSG)
        elif have.count:
            peer.write(m.Bitfield(have.to_bytes()))
        self.uploader.maybe_unchoke(peer)
        return peer

    def peer_gone(self, peer: Peer, reason: str) -> None:
        if peer not in self.peers:
            return
        del self.peers[peer]
        self.row_changed()
        self.limits.detach(peer)
        self.extension_traffic.peer_gone(peer)
        if peer.payload_in:
            key = format_address(peer.link.address)
            self.sources[key] = self.sources.get(key, 0) + peer.payload_in
        why = self.candidates.disconnected(peer.link.address, peer.listen_port, reason)
        _log.debug("peer {a} gone ({why}): {reason}", a=peer.link.address, why=why, reason=reason)
        self.book.peer_gone(peer)
        self.peer_pieces_reset(peer)
        self.downloader.refill_all()

    def peer_pieces_reset(self, peer: Peer) -> None:
        """Take the peer's pieces out of the availability counts (it left, or resent them)."""
        if peer.counted_as_seed:
            self.availability.remove_all()
            peer.counted_as_seed = False
        elif peer.has.count:
            self.availability.remove_bitfield(peer.has)

    def peer_has_changed(self, peer: Peer, index: int | None) -> None:
        if index is None:
            if peer.has.complete:
                self.availability.add_all()
                peer.counted_as_seed = True  # a peer complete through HAVEs is not
            elif peer.has.count:
                self.availability.add_bitfield(peer.has)
        else:
            self.availability.add_have(index)
        self.downloader.update_interest(peer, index)

    def peer_interest_changed(self, peer: Peer) -> None:
        if peer.peer_interested:
            self.uploader.maybe_unchoke(peer)

    def peer_unchoked_us(self, peer: Peer) -> None:
        self.downloader.fill(peer)

    def peer_choked_us(self, peer: Peer) -> None:
        self.downloader.peer_choked_us(peer)

    def blocks_received(self, peer: Peer, pieces: list[m.Piece]) -> None:
        self.downloader.blocks_received(peer, pieces)

    def block_rejected(self, peer: Peer, ref: BlockRef) -> None:
        self.downloader.block_rejected(peer, ref)

    def serve_requests(self, peer: Peer, refs: list[BlockRef]) -> None:
        self.uploader.serve_requests(peer, refs)

    def peer_writable(self, peer: Peer) -> None:
        """The peer's send buffer drained: serve its queue again."""
        self.uploader.pump(peer)

    def peer_dht_port(self, peer: Peer, port: int) -> None:
        self.extension_traffic.peer_dht_port(peer, port)

    def extensions_ready(self, peer: Peer) -> None:
        self.extension_traffic.ready(peer)

    def extension_message(self, peer: Peer, name: str, payload: bytes) -> None:
        self.extension_traffic.message(peer, name, payload)

    def hash_message(self, peer: Peer, msg: Any) -> None:
        """BEP 52 hash request/hashes/hash reject (core/hash_serve.py)."""
        server = self.hash_server
        if server is None:
            server = self.hash_server = HashServer(self.meta.hash_layers, self.clock.seconds)
        before = server.answered
        server.message(peer, msg)
        if before == 0 and server.answered:
            _log.info(
                "{label}: answering hash requests (BEP 52) for its piece layers", label=self.label
            )

    def release_spare(self) -> bool:
        """Close the least useful spare peer (still spare now) for a newcomer; False if none."""
        now = self.clock.seconds()
        grace = self.env.slot_policy().replace_grace
        while self._spare:
            peer = self._spare.pop(0)
            if peer not in self.peers or peer.link.closed or requestable(peer):
                continue
            if inactive_for(peer, now) >= grace:
                peer.link.close(REPLACED_REASON, error=True)
                self.peer_gone(peer, REPLACED_REASON)  # its slot is free now
                return True
        return False

    # -- timers ---------------------------------------------------------------------------------
    def _busy(self) -> bool:
        """Peers to look after or connections to make: the one-second duties have work."""
        return bool(self.peers) or self.candidates.connecting > 0 or len(self.candidates) > 0

    def _wake(self) -> None:
        """Run the one-second duties (on the session's scheduler) while there is work."""
        if not self.active:
            return
        self._ticker.wake()

    @property
    def ticking(self) -> bool:
        """A tick is scheduled (false for an active torrent with nothing to do)."""
        return self._ticker.active

    def _tick(self) -> None:
        self._ticks += 1
        self.env.progress_changed(self)  # totals move only while there are peers (ticking)
        now = self.clock.seconds()
        policy = self.env.slot_policy()
        wanted = (  # the slots are wanted: inactive peers go (core/peer_slots.py)
            len(self.peers) + self.candidates.connecting >= self.env.max_peers()
            or not self.env.can_connect()
        )
        spare = []
        for peer in list(self.peers):
            link = peer.link
            if link.heard:
                link.heard = False
                link.last_heard = now
            elif now - link.last_heard > IDLE_TIMEOUT:
                link.close("idle for 120 s", error=True)  # a flush could wait forever
                continue
            note_interest(peer, now)
            idle = inactive_for(peer, now)
            if idle >= policy.inactivity_timeout and wanted:
                link.close(INACTIVE_REASON.format(seconds=round(idle)), error=True)
                continue
            if idle >= policy.replace_grace:
                spare.append(peer)
            self.downloader.check_timeout(peer, now, REQUEST_TIMEOUT)
            if now - peer.last_sent_at > KEEPALIVE_AFTER:
                peer.write(m.KEEP_ALIVE)
            peer.update_depth()
        spare.sort(key=spare_key)
        self._spare = spare
        if spare:
            self.env.spare_slots.offer(self)
        else:
            self.env.spare_slots.withdraw(self)
        if self._ticks % RECHOKE_EVERY == 0:
            self.uploader.rechoke()
        self._connect_more()
        if self.active and self._busy():
            self._wake()

    # -- reporting -------------------------------------------------------------------------------
    def download_rate(self) -> float:
        return sum(p.download.rate() for p in self.peers)

    def upload_rate(self) -> float:
        return sum(p.upload.rate() for p in self.peers)

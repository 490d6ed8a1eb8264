"""Torrent: one torrent's coordinator and state machine.

States: ``checking`` (hashing existing data) -> ``downloading`` | ``seeding``; ``paused``;
``error`` (a disk error; other torrents are unaffected). The Torrent owns the piece
bookkeeping (PieceBook), the swarm view, the choker, the announcer and its peers; it
hands disk work to the Verifier (thread pool) and never blocks the reactor.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.availability import Availability, TorrentSwarm
from btd.core.bitfield import Bitfield
from btd.core.download import DownloadSide
from btd.core.errors import ProtocolError
from btd.core.extensions import Extensions
from btd.core.metainfo import Metainfo
from btd.core.peer import Peer
from btd.core.pieces import PieceBook
from btd.core.resume import ResumeProgress, progress_problem, resume_plan
from btd.core.storage import FileStorage
from btd.core.swarm_peers import PeerCandidates
from btd.core.tracker.announcer import Announcer
from btd.core.tracker.codec import AnnounceRequest
from btd.core.types import BlockRef, PeerAddress, format_address
from btd.core.upload import Uploader
from btd.core.wire import messages as m
from btd.core.wire import metadata as ut_metadata
from btd.core.wire.extension import ExtensionHandshake, encode_extension_handshake

_log = Logger(namespace="btd.core.torrent")

TICK = 1.0
RECHOKE_EVERY = 10  # ticks
REQUEST_TIMEOUT = 60.0
IDLE_TIMEOUT = 120.0
KEEPALIVE_AFTER = 90.0


@dataclass(frozen=True)
class TorrentOptions:
    """What ``torrent.add`` may set per torrent."""

    save_path: Path
    paused: bool = False
    strategy: str = "rarest-first"


@dataclass
class TorrentEnv:
    """The session services a torrent uses (narrow on purpose)."""

    clock: Any
    verifier: Any
    peer_id: bytes
    listen_port: Callable[[], int]
    picker_for: Callable[[str, Any], Any]
    tracker_client_for: Callable[[str], Any]
    connect: Callable[[Any, PeerAddress], None]
    can_connect: Callable[[], bool]
    emit: Callable[[Any, str, dict[str, Any]], None]
    max_peers: Callable[[], int]
    upload_slots: Callable[[], int]
    shutdown_timeout: float = 10.0
    client_name: str = "btd"
    rng: random.Random | None = None
    extensions: Extensions = field(default_factory=Extensions)
    dht_port: Callable[[], int | None] = lambda: None
    dht_node_seen: Callable[[str, int], None] = lambda host, port: None


class Torrent(DownloadSide):
    """Coordinates pieces, picker, peers, trackers and storage for one torrent.

    The download side (requests, blocks, hash checks, bans) is in core/download.py and the
    upload side (serving, choking) in core/upload.py; this module keeps the state machine,
    the peers' lifecycle and the timers.
    """

    def __init__(self, meta: Metainfo, options: TorrentOptions, env: TorrentEnv) -> None:
        self.meta = meta
        self.info_hash = meta.info_hash
        self.num_pieces = meta.num_pieces
        self.options = options
        self.env = env
        self.clock = env.clock
        self.state = "paused" if options.paused else "stopped"
        self.error: str | None = None
        self.storage = FileStorage(
            options.save_path, meta.files, meta.piece_length, meta.total_length
        )
        self.peers: dict[Peer, None] = {}
        self.candidates = PeerCandidates(self.clock.seconds, rng=env.rng)
        self.uploader = Uploader(self)
        self.added_at = self.clock.seconds()
        self.completed_at: float | None = None
        self.uploaded = 0
        self.downloaded = 0
        self.wasted = 0
        self.sources: dict[str, int] = {}  # "host:port" -> payload bytes received (all time)
        self.banned: list[str] = []
        self.check_progress = 0.0
        self.have_changes = 0  # bumped whenever the set of pieces had changes (resume saves)
        self._checked = False
        self._resume: ResumeProgress | None = None
        self._ticks = 0
        self._write_backlog = 0
        self._loop: LoopingCall | None = None
        self._build_book(Bitfield(self.num_pieces))
        self.announcer = Announcer(
            self.clock,
            meta.announce_tiers,
            env.tracker_client_for,
            self._announce_request,
            self.add_peers,
            rng=env.rng,
        )

    # -- setup --------------------------------------------------------------------------
    def _build_book(self, have: Bitfield) -> None:
        meta = self.meta
        self.book = PieceBook(meta.num_pieces, meta.piece_length, meta.total_length)
        for index in have:
            self.book.mark_have(index)
        self.have_changes += 1
        self.availability = Availability(meta.num_pieces)
        self.view = TorrentSwarm(self.book, self.availability)
        self.picker = self._make_picker(self.options.strategy)

    def _make_picker(self, strategy: str) -> Any:
        picker = self.env.picker_for(strategy, self.view)
        if picker is None:
            raise ValueError(f"no piece strategy called {strategy!r} (enable its plugin)")
        return picker

    def set_strategy(self, strategy: str) -> None:
        self.picker = self._make_picker(strategy)
        self.options = replace(self.options, strategy=strategy)

    @property
    def hex(self) -> str:
        return self.info_hash.hex()

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def complete(self) -> bool:
        return self.book.have.complete

    @property
    def active(self) -> bool:
        return self.state in ("downloading", "seeding")

    @property
    def checked(self) -> bool:
        """The piece set reflects the disk (the first check finished): worth saving."""
        return self._checked

    def progress_key(self) -> tuple[int, int, int]:
        """Changes whenever what resume data records changes (pieces had, totals)."""
        return (self.have_changes, self.uploaded, self.downloaded)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, resume: ResumeProgress | None = None) -> defer.Deferred[None]:
        """Check existing data once, then download or seed.

        With ``resume`` (saved progress), its totals come back and its pieces are trusted
        without hashing, except those touching a file whose size changed since the save
        (see ``btd.core.resume.resume_plan``); pieces it does not list are not hashed.
        """
        self.error = None
        if self._checked:
            self._activate()
            return defer.succeed(None)
        if resume is not None:
            self.uploaded, self.downloaded = resume.uploaded, resume.downloaded
            self.completed_at = resume.completed_at
            problem = progress_problem(resume, self.num_pieces, len(self.meta.files))
            if problem is None:
                self._resume = resume
            else:
                _log.warn(
                    "resume data of {name} ignored: {problem}", name=self.name, problem=problem
                )
        return self._check(full=False)

    def _check(self, *, full: bool) -> defer.Deferred[None]:
        self.state = "checking"
        self.check_progress = 0.0
        files = self.storage.check_files()
        trusted = Bitfield(self.num_pieces)
        if full:
            pieces = None
        elif self._resume is not None:
            plan = resume_plan(self._resume, files.files, self.num_pieces)
            trusted, pieces = plan.trusted, plan.recheck
        else:
            existing = [f for f in files.files if f.exists and f.size > 0 and not f.pad]
            pieces = sorted({i for f in existing for i in f.pieces})
        if pieces == []:
            return self._checked_result(trusted)

        def progress(done: int, total: int) -> None:
            self.check_progress = done / total if total else 1.0

        d = self.env.verifier.recheck(
            self.storage,
            self.meta.piece_hashes,
            self.meta.piece_length,
            self.meta.total_length,
            pieces=pieces,
            on_progress=progress,
            should_stop=lambda: self.state != "checking",
        )

        def found(have: Bitfield) -> defer.Deferred[None]:
            for index in trusted:
                have.add(index)
            return self._checked_result(have)

        d.addCallback(found)
        d.addErrback(self._check_failed)
        return d

    def _checked_result(self, have: Bitfield) -> defer.Deferred[None]:
        if self.state != "checking":
            return defer.succeed(None)
        self._build_book(have)
        self._checked = True
        self._resume = None  # used once: a later check (torrent.verify) reads the disk
        self.check_progress = 1.0
        self.env.emit(self, "verified", {"pieces": have.count})
        if self.options.paused:
            self.state = "paused"
        else:
            self._activate()
        return defer.succeed(None)

    def _check_failed(self, failure: Failure) -> None:
        if failure.check(defer.CancelledError) or self.state != "checking":
            return None  # stopped, paused or removed meanwhile (storage closed): not an error
        self._fail(f"checking failed: {failure.getErrorMessage()}")
        return None

    def _activate(self) -> None:
        self.state = "seeding" if self.complete else "downloading"
        self.options = replace(self.options, paused=False)
        if self._loop is None or not self._loop.running:
            self._loop = LoopingCall(self._tick)
            self._loop.clock = self.clock
            self._loop.start(TICK, now=False)
        self.announcer.start()
        self.env.emit(self, "started", {"state": self.state})
        if self.completed_while_inactive and self.complete:
            self._completed()  # finished while paused: tell trackers and listeners now
        self._connect_more()

    def _deactivate(self, timeout: float) -> defer.Deferred[None]:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        for peer in list(self.peers):
            peer.link.close("torrent stopped")
            # Forget it now, not when its connectionLost arrives (which a peer that never
            # reads could delay): a recheck may rebuild the book and the availability.
            self.peer_gone(peer, "torrent stopped")
        self.uploader.cache.clear()
        return self.announcer.stop(timeout)

    def pause(self) -> defer.Deferred[None]:
        if self.state == "paused":
            return defer.succeed(None)
        was = self.state
        self.state = "paused"
        self.options = replace(self.options, paused=True)
        self.env.emit(self, "paused", {})
        if was in ("downloading", "seeding"):
            return self._deactivate(self.env.shutdown_timeout)
        return defer.succeed(None)

    def resume(self) -> defer.Deferred[None]:
        if self.state not in ("paused", "error", "stopped"):
            return defer.succeed(None)
        self.options = replace(self.options, paused=False)
        self.state = "stopped"
        return self.start()

    def stop(self, *, close_storage: bool = True) -> defer.Deferred[None]:
        """Shutdown: tell trackers ``stopped`` (bounded) and close peers cleanly."""
        was = self.state
        if was == "checking":
            self.state = "stopped"
        d = (
            self._deactivate(self.env.shutdown_timeout)
            if was in ("downloading", "seeding")
            else None
        )
        self.state = "stopped" if was != "error" else was
        if close_storage:
            self.storage.close()
        return d or defer.succeed(None)

    def verify(self) -> defer.Deferred[None]:
        """Recheck every piece from disk (``torrent.verify``)."""
        if self.state == "checking":
            return defer.succeed(None)  # a check is running already
        resume_after = not self.options.paused and self.state != "paused"
        was_active = self.active
        self.state = "checking"  # from now on: no new peers, no requests
        d = self._deactivate(self.env.shutdown_timeout) if was_active else defer.succeed(None)
        self.options = replace(self.options, paused=not resume_after)

        def run(_: object) -> defer.Deferred[None]:
            if self.state != "checking":
                return defer.succeed(None)  # paused, stopped or removed meanwhile
            return self._check(full=True)

        return d.addCallback(run)

    def _fail(self, message: str) -> None:
        _log.error("torrent {name} stopped: {message}", name=self.name, message=message)
        was_active = self.active
        self.state = "error"
        self.error = message
        if was_active:
            self._deactivate(self.env.shutdown_timeout)
        self.env.emit(self, "error", {"error": message})

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

    def add_peers(self, addresses: Sequence[PeerAddress]) -> int:
        """Peers from trackers, PEX, DHT or ``torrent.add_peer``; returns how many were new."""
        added = self.candidates.add(addresses)
        if added and self.active:
            self._connect_more()
        return added

    def _connect_more(self) -> None:
        if not self.active or (self.complete and not self._peers_may_want()):
            return
        connected = {p.link.address for p in self.peers}
        while len(self.peers) + self.candidates.connecting < self.env.max_peers():
            if not self.env.can_connect():
                return
            address = self.candidates.next(exclude=connected)
            if address is None:
                return
            self.env.connect(self, address)

    def _peers_may_want(self) -> bool:
        return True

    def connection_failed(self, address: PeerAddress, reason: str) -> None:
        _log.debug("connection to {address} failed: {reason}", address=address, reason=reason)
        self.candidates.failed(address)

    def found_self(self, address: PeerAddress) -> None:
        self.candidates.ban(address, "ourselves")

    # -- peers ----------------------------------------------------------------------------
    def attach(self, link: Any, hs: m.Handshake) -> Peer | None:
        """A handshake completed: accept the peer or refuse (limits, duplicates, state)."""
        if not self.active or len(self.peers) >= self.env.max_peers():
            return None
        if link.address in self.candidates.banned or hs.peer_id in self.candidates.banned_peer_ids:
            return None
        if any(p.peer_id == hs.peer_id for p in self.peers):
            return None
        peer = Peer(self, link, hs, self.clock.seconds, fast=True, extensions=True)
        self.peers[peer] = None
        if link.outgoing:
            self.candidates.connected(link.address)
        if peer.extensions:
            peer.write(
                encode_extension_handshake(
                    ExtensionHandshake(
                        m=self.extensions.advertised(private=self.private),
                        v=self.env.client_name,
                        p=self.env.listen_port() or None,
                        reqq=2000,
                        metadata_size=len(self.meta.info_bytes),
                    )
                )
            )
        if hs.supports_dht and not self.private:
            dht_port = self.env.dht_port()
            if dht_port:
                peer.write(m.Port(dht_port))  # BEP 5: our node, for the peer's routing table
        have = self.book.have
        if peer.fast and have.complete:
            peer.write(m.HAVE_ALL_MSG)
        elif peer.fast and have.count == 0:
            peer.write(m.HAVE_NONE_MSG)
        elif have.count:
            peer.write(m.Bitfield(have.to_bytes()))
        self._maybe_unchoke(peer)
        return peer

    def peer_gone(self, peer: Peer, reason: str) -> None:
        if peer not in self.peers:
            return
        del self.peers[peer]
        for handler in self.extensions.handlers.values():
            try:
                handler.peer_gone(self, peer)
            except Exception:
                _log.failure("extension handler failed on peer_gone")
        if peer.payload_in:
            key = format_address(peer.link.address)
            self.sources[key] = self.sources.get(key, 0) + peer.payload_in
        self.candidates.disconnected(peer.link.address, peer.listen_port)
        self.book.peer_gone(peer)
        if peer.counted_as_seed:
            self.availability.remove_all()
        elif peer.has.count:
            self.availability.remove_bitfield(peer.has)
        self._refill_all()

    def peer_has_changed(self, peer: Peer, index: int | None) -> None:
        if index is None:
            if peer.has.complete:
                self.availability.add_all()
                peer.counted_as_seed = True  # a peer complete through HAVEs is not
            elif peer.has.count:
                self.availability.add_bitfield(peer.has)
        else:
            self.availability.add_have(index)
        self._update_interest(peer, index)

    def am_interested_in(self, peer: Peer) -> bool:
        have = self.book.have
        if have.complete or not peer.has.count:
            return False
        if peer.has.complete:
            return True
        return any(i not in have for i in peer.has)

    def _update_interest(self, peer: Peer, index: int | None) -> None:
        if index is not None:  # a HAVE only adds: no scan of the peer's pieces
            interested = peer.am_interested or (
                index not in self.book.have and not self.book.have.complete
            )
        else:
            interested = self.am_interested_in(peer)
        peer.set_interested(interested)
        if interested:
            self._fill(peer)

    def peer_interest_changed(self, peer: Peer) -> None:
        if peer.peer_interested:
            self._maybe_unchoke(peer)

    def peer_unchoked_us(self, peer: Peer) -> None:
        self._fill(peer)

    def peer_choked_us(self, peer: Peer) -> None:
        if peer.fast:  # BEP 6: it rejects each request; blocks it still sends are welcome
            self.book.drop_requests(peer)
        else:
            self.book.peer_choked(peer)
        self._refill_all(skip=peer)

    @property
    def extensions(self) -> Extensions:
        return self.env.extensions

    @property
    def private(self) -> bool:
        """BEP 27: peers only from the torrent's trackers (no DHT, no PEX)."""
        return self.meta.private

    def peer_dht_port(self, peer: Peer, port: int) -> None:
        """BEP 5 ``port``: the peer runs a DHT node (not used for private torrents)."""
        if not self.private and 0 < port < 65536:
            self.env.dht_node_seen(peer.link.address[0], port)

    def extensions_ready(self, peer: Peer) -> None:
        for name, handler in self.extensions.handlers.items():
            try:
                handler.peer_ready(self, peer)
            except Exception:
                _log.failure("extension {name} failed", name=name)

    def extension_message(self, peer: Peer, name: str, payload: bytes) -> None:
        """BEP 9 requests are served here; plugin extensions go to their handlers."""
        if name == ut_metadata.EXTENSION_NAME:
            self._serve_metadata(peer, payload)
            return
        handler = self.extensions.handlers.get(name)
        if handler is None:
            return
        try:
            handler.message(self, peer, payload)
        except ProtocolError:
            raise
        except Exception:
            _log.failure("extension {name} failed", name=name)

    def _serve_metadata(self, peer: Peer, payload: bytes) -> None:
        msg = ut_metadata.decode_message(payload)
        if msg.msg_type != ut_metadata.REQUEST:
            return  # data or reject for us: we asked nothing, we have the metadata
        if peer.link.write_paused:
            return  # it does not read what we send: no 16 KiB answers to pile up
        info = self.meta.info_bytes
        if msg.piece >= ut_metadata.num_pieces(len(info)):
            peer.send_extended(ut_metadata.EXTENSION_NAME, ut_metadata.encode_reject(msg.piece))
            return
        peer.send_extended(ut_metadata.EXTENSION_NAME, ut_metadata.encode_data(msg.piece, info))

    # -- uploading (see core/upload.py) ----------------------------------------------------------
    def serve_request(self, peer: Peer, ref: BlockRef) -> None:
        self.uploader.serve_request(peer, ref)

    def peer_writable(self, peer: Peer) -> None:
        """The peer's send buffer drained: serve its queue again."""
        self.uploader.pump(peer)

    def _maybe_unchoke(self, peer: Peer) -> None:
        self.uploader.maybe_unchoke(peer)

    # -- timers ---------------------------------------------------------------------------------
    def _tick(self) -> None:
        self._ticks += 1
        now = self.clock.seconds()
        for peer in list(self.peers):
            link = peer.link
            if link.heard:
                link.heard = False
                link.last_heard = now
            elif now - link.last_heard > IDLE_TIMEOUT:
                link.close("idle for 120 s", error=True)  # a flush could wait forever
                continue
            if self.book.pending_count(peer) and now - peer.last_block_at > REQUEST_TIMEOUT:
                peer.snubbed = True
                for ref in self.book.drop_requests(peer):
                    peer.cancel(ref)
                peer.last_block_at = now
                self._refill_all(skip=peer)
            if now - peer.last_sent_at > KEEPALIVE_AFTER:
                peer.write(m.KEEP_ALIVE)
            peer.update_depth()
        if self._ticks % RECHOKE_EVERY == 0:
            self.uploader.rechoke()
        self._connect_more()

    # -- reporting -------------------------------------------------------------------------------
    def all_sources(self) -> dict[str, int]:
        """Payload bytes received per peer address, past and present connections."""
        sources = dict(self.sources)
        for peer in self.peers:
            if peer.payload_in:
                key = format_address(peer.link.address)
                sources[key] = sources.get(key, 0) + peer.payload_in
        return sources

    def download_rate(self) -> float:
        return sum(p.download.rate() for p in self.peers)

    def upload_rate(self) -> float:
        return sum(p.upload.rate() for p in self.peers)

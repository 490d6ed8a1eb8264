"""A magnet link waiting for its metadata: find peers, fetch the info dictionary (BEP 9).

``MetadataFetch`` stands in for a Torrent while only the info hash is known. It uses the
magnet's trackers and peers (and DHT/PEX through ``add_peers``), speaks just enough of the
wire protocol to run ``ut_metadata``, checks the assembled dictionary against the info hash
and hands it to the session, which turns it into a Torrent. A peer whose pieces make a
dictionary that fails the hash, or that sends pieces of the wrong size or out of range, is
dropped and never asked again. When pieces from several peers make a dictionary that fails
the hash, nobody is banned at once: from then on one peer at a time serves every piece, so
the next failure has a single source (an honest peer is never banned for a liar's piece).
A v2 magnet's dictionary is checked by SHA-256 against its btmh hash; then the same peers
are asked for its piece layers by BEP 52 hash requests (the bookkeeping is
core/layer_fetch.py; a reply that does not prove itself bans its sender).

Size: about 590 lines, because the fetch is one state machine (peers, metadata and hash
requests and their timeouts, the one-source retry after a hash failure, its timer) over
shared peer and piece state; split, each part would reach into the others.

Its one-second duties (timeouts, asking, dialling) run on the session's Scheduler and only
while there are peers, dials or candidates: a magnet waiting with nothing to do holds no
timer entry, only its announcer's next announce.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.logger import Logger

from btd.core.errors import MetainfoError, ProtocolError
from btd.core.extensions import Extensions
from btd.core.hash_layers import LayerWant
from btd.core.layer_fetch import BadHashes, LayerFetch
from btd.core.magnet import Magnet
from btd.core.rate import RateMeter
from btd.core.scheduler import Scheduler, Ticker
from btd.core.swarm import swarm_ids
from btd.core.swarm_peers import DisconnectCounts, PeerCandidates
from btd.core.torrent_state import TorrentState
from btd.core.tracker.announcer import Announcer
from btd.core.tracker.codec import AnnounceRequest
from btd.core.types import PeerAddress, format_address
from btd.core.wire import messages as m
from btd.core.wire import metadata as ut
from btd.core.wire.codec import encode
from btd.core.wire.extension import (
    ExtensionHandshake,
    decode_extension_handshake,
    encode_extension_handshake,
)

_log = Logger()

TICK = 1.0
REQUESTS_PER_PEER = 4
REQUEST_TIMEOUT = 30.0
IDLE_TIMEOUT = 120.0
LEFT_UNKNOWN = 16 * 1024  # what we tell trackers before we know the size (not a seed)


class MetadataPeer:
    """One connection used only to fetch metadata; other messages are accepted and ignored."""

    def __init__(self, fetch: MetadataFetch, link: Any, hs: m.Handshake) -> None:
        self.fetch = fetch
        self.link = link
        self.peer_id = hs.peer_id
        self.ext_ids: dict[str, int] = {}
        self.metadata_size: int | None = None
        self.listen_port: int | None = None
        self.asked: dict[int, float] = {}  # piece -> when we asked
        self.expired: set[int] = set()  # asked, timed out: a late answer is still welcome
        self.rested_until = 0.0  # it rejected a request: not asked again before then
        self.extensions = hs.supports_extensions
        self.fast = hs.supports_fast
        self.payload_in = 0
        self.download = RateMeter(fetch.clock.seconds)
        self.last_heard = fetch.clock.seconds()

    def on_messages(self, msgs: list[Any]) -> None:
        """One read's messages, in order (the link's call, as for ``btd.core.peer.Peer``)."""
        for msg in msgs:
            self.on_message(msg)
            if self.link.closed:
                return

    def on_message(self, msg: Any) -> None:
        if isinstance(msg, m.Extended):
            if not self.extensions:
                raise ProtocolError("extended message without the extension protocol")
            self.fetch.extended(self, msg)
        elif (
            isinstance(msg, (m.HaveAll, m.HaveNone, m.SuggestPiece, m.RejectRequest, m.AllowedFast))
            and not self.fast
        ):
            raise ProtocolError(f"{type(msg).__name__} without the fast extension")
        elif isinstance(msg, m.Request):
            if self.fast:  # we have nothing to give yet
                self.write(m.RejectRequest(msg.index, msg.begin, msg.length))
        elif isinstance(msg, (m.HashRequest, m.Hashes, m.HashReject)):
            self.fetch.hash_message(self, msg)

    def write(self, msg: Any) -> None:
        if not self.link.closed:
            self.link.write(encode(msg))

    def send_extended(self, name: str, payload: bytes) -> bool:
        ext_id = self.ext_ids.get(name)
        if ext_id is None:
            return False
        self.write(m.Extended(ext_id, payload))
        return True


class MetadataFetch:
    """The session's stand-in for a torrent whose info dictionary is not known yet."""

    state = TorrentState.METADATA
    num_pieces = None  # unknown: the wire decoder checks no bitfield shapes
    private = False  # unknown until the metadata says; trackers, DHT and PEX may all help

    def __init__(
        self,
        magnet: Magnet,
        options: Any,
        *,
        clock: Any,
        peer_id: bytes,
        listen_port: Callable[[], int],
        tracker_client_for: Callable[[str], Any],
        connect: Callable[..., None],  # (swarm, address, *, swarm_id=None)
        can_connect: Callable[[], bool],
        max_peers: Callable[[], int],
        on_metadata: Callable[[MetadataFetch, bytes], None],
        client_name: str = "btd",
        extensions: Extensions | None = None,
        on_ban: Callable[[MetadataFetch, str, str], None] | None = None,
        dht_running: Callable[[], bool] | None = None,
        disconnects: DisconnectCounts | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.magnet = magnet
        self.info_hash = magnet.info_hash
        self.options = options
        self.clock = clock
        self.peer_id = peer_id
        self.listen_port = listen_port
        self.connect = connect
        self.can_connect = can_connect
        self.max_peers = max_peers
        self.on_metadata = on_metadata
        self.on_ban = on_ban
        self.dht_running = dht_running  # None: unknown (no state detail about it)
        self.client_name = client_name
        self.extensions = extensions or Extensions()
        self.peers: dict[MetadataPeer, None] = {}
        self.candidates = PeerCandidates(clock.seconds, totals=disconnects)
        self.assembler: ut.MetadataAssembler | None = None
        # A v2 magnet (btmh): the verified info dictionary, then its piece layers (BEP 52)
        self.info: bytes | None = None
        self.layer_fetch: LayerFetch | None = None
        self.layers: dict[bytes, bytes] | None = None  # every file's layer, once verified
        self.added_at = clock.seconds()
        self.banned: list[str] = []
        self.error: str | None = None
        self.active = False
        self._solo = False  # after a shared hash failure: one source per attempt
        self._solo_peer: MetadataPeer | None = None
        self.scheduler = scheduler if scheduler is not None else Scheduler(clock)
        self._ticker = Ticker(self.scheduler, self._tick, TICK)  # armed while there is work
        self.announcer = Announcer(
            clock,
            [[url] for url in magnet.trackers],
            tracker_client_for,
            self._announce_request,
            self.add_peers,
            extra_ids=self.swarm_ids[1:],  # a hybrid's magnet: its v2 swarm too
            scheduler=self.scheduler,
            allow_local=lambda: bool(getattr(self.options, "allow_local_trackers", False)),
        )
        self.candidates.add(magnet.peers)

    @property
    def hex(self) -> str:
        return self.info_hash.hex()

    @property
    def swarm_ids(self) -> tuple[bytes, ...]:
        """Its swarms: the one its hash names, and for a hybrid's magnet (``btih`` and
        ``btmh``) the v2 swarm too (BEP 52: the btmh hash's first 20 bytes)."""
        return swarm_ids(self.info_hash, self.magnet.info_hash_v2)

    @property
    def v2(self) -> bool:
        """A btmh magnet: our handshakes carry BEP 52's bit."""
        return self.magnet.info_hash_v2 is not None

    @property
    def name(self) -> str:
        return self.magnet.name or self.hex

    @property
    def encryption(self) -> str | None:
        return getattr(self.options, "encryption", None)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self.active:
            return
        self.active = True
        self.announcer.start()
        self._connect_more()

    def stop(self, timeout: float = 10.0) -> Any:
        self.active = False
        self._ticker.cancel()
        for peer in list(self.peers):
            peer.link.close("metadata fetch stopped")
        return self.announcer.stop(timeout)

    def _announce_request(self, event: str) -> AnnounceRequest:
        return AnnounceRequest(
            info_hash=self.info_hash,
            peer_id=self.peer_id,
            port=self.listen_port(),
            uploaded=0,
            downloaded=0,
            left=LEFT_UNKNOWN,
            event=event,
        )

    # -- peers ------------------------------------------------------------------------------
    def add_peers(
        self,
        addresses: Sequence[PeerAddress],
        *,
        retry: bool = False,
        swarm_id: bytes | None = None,
    ) -> int:
        """``swarm_id``: as ``Torrent.add_peers`` (a hybrid magnet's v2 swarm)."""
        if swarm_id == self.info_hash or swarm_id not in self.swarm_ids:
            swarm_id = None
        added = self.candidates.add(addresses, retry=retry, swarm_id=swarm_id)
        if added and self.active:
            self._connect_more()
        return added

    def known_peers(self) -> list[PeerAddress]:
        """Every address worth handing to the real torrent once the metadata is here."""
        live = [p for p in self.peers if not p.link.closed]
        found = {p.link.address for p in live if p.link.outgoing}
        found |= {(p.link.address[0], p.listen_port) for p in live if p.listen_port}
        found |= set(self.candidates.addresses())
        return sorted(a for a in found if a not in self.candidates.banned)

    def _connect_more(self) -> None:
        connected = {p.link.address for p in self.peers}
        while self.active and len(self.peers) + self.candidates.connecting < self.max_peers():
            if not self.can_connect():
                break
            address = self.candidates.next(exclude=connected)
            if address is None:
                break
            swarm_id = self.candidates.swarm_id(address)
            if swarm_id is None:
                self.connect(self, address)
            else:  # heard in a hybrid magnet's v2 swarm
                self.connect(self, address, swarm_id=swarm_id)
        self._wake()

    def connection_failed(self, address: PeerAddress, reason: str) -> None:
        _log.debug("connection to {address} failed: {reason}", address=address, reason=reason)
        self.candidates.failed(address, count=self.active)  # inactive: we dropped it

    def found_self(self, address: PeerAddress) -> None:
        self.candidates.ban(address, "ourselves")

    def attach(self, link: Any, hs: m.Handshake) -> MetadataPeer | None:
        if not self.active or len(self.peers) >= self.max_peers():
            return None
        if getattr(link, "over_limit", False):
            return None  # over the session's limit: a magnet's peers are never spare
        if link.address in self.candidates.banned or hs.peer_id in self.candidates.banned_peer_ids:
            return None
        if not hs.supports_extensions:
            return None  # it could never give us the metadata
        if any(p.peer_id == hs.peer_id for p in self.peers):
            return None
        peer = MetadataPeer(self, link, hs)
        self.peers[peer] = None
        if link.outgoing:
            self.candidates.connected(link.address)
        peer.write(
            encode_extension_handshake(
                ExtensionHandshake(
                    # Only what a fetch speaks: plugin extensions run on real torrents.
                    m={ut.EXTENSION_NAME: self.extensions.ids[ut.EXTENSION_NAME]},
                    v=self.client_name,
                    p=self.listen_port() or None,
                )
            )
        )
        if peer.fast:
            peer.write(m.HAVE_NONE_MSG)
        self._wake()
        return peer

    def peer_gone(self, peer: MetadataPeer, reason: str) -> None:
        if peer not in self.peers:
            return
        del self.peers[peer]
        key = self.candidates.disconnected(peer.link.address, peer.listen_port, reason)
        if self.layer_fetch is not None:
            self.layer_fetch.forget(peer)
        _log.debug(
            "peer {address} gone ({key}): {reason}",
            address=peer.link.address,
            key=key,
            reason=reason,
        )
        self._ask_all()  # its unanswered requests go to the others

    def peer_writable(self, peer: MetadataPeer) -> None:
        """Nothing queued to send: metadata requests are tiny."""

    # -- ut_metadata ---------------------------------------------------------------------------
    def extended(self, peer: MetadataPeer, msg: m.Extended) -> None:
        if msg.ext_id == m.EXTENDED_HANDSHAKE_ID:
            hs = decode_extension_handshake(msg.payload)
            for name, ext_id in hs.m.items():
                if ext_id:
                    peer.ext_ids[name] = ext_id
                else:
                    peer.ext_ids.pop(name, None)
            if hs.p:
                peer.listen_port = hs.p
            if hs.metadata_size is not None:
                if not 0 < hs.metadata_size <= ut.MAX_METADATA_SIZE:
                    raise ProtocolError(f"metadata_size {hs.metadata_size} out of range")
                peer.metadata_size = hs.metadata_size
            if ut.EXTENSION_NAME not in peer.ext_ids:
                peer.link.close("it does not serve metadata (no ut_metadata)")
                return
            self._ask(peer)
            return
        if self.extensions.names.get(msg.ext_id) != ut.EXTENSION_NAME:
            return
        reply = ut.decode_message(msg.payload)
        if reply.msg_type == ut.REQUEST:
            peer.send_extended(ut.EXTENSION_NAME, ut.encode_reject(reply.piece))
            return
        if reply.piece in peer.asked:
            del peer.asked[reply.piece]
        elif reply.piece in peer.expired:  # late, not hostile
            peer.expired.discard(reply.piece)
        else:
            raise ProtocolError(f"ut_metadata piece {reply.piece} was never requested")
        if reply.msg_type == ut.REJECT:  # busy, or no metadata yet: rest, ask the others
            peer.rested_until = self.clock.seconds() + REQUEST_TIMEOUT
            if peer is self._solo_peer:
                self._solo_peer = None  # the next peer starts the dictionary afresh
            self._ask_all(skip=peer)
            return
        assembler = self.assembler
        if assembler is None or (self._solo and peer is not self._solo_peer):
            return  # already complete, or not this attempt's single source
        peer.payload_in += len(reply.data)
        peer.download.add(len(reply.data))
        if assembler.add(peer, reply):
            self._complete(assembler)
        else:
            self._ask(peer)

    def _ask(self, peer: MetadataPeer) -> None:
        if self.info is not None:  # the dictionary is here: only layers are asked for
            if self.layer_fetch is not None:
                self._ask_layers(peer)
            return
        size = peer.metadata_size
        if not self.active or size is None or ut.EXTENSION_NAME not in peer.ext_ids:
            return
        if peer.link.closed or self.clock.seconds() < peer.rested_until:
            return
        if self._solo:
            owner = self._solo_peer
            if owner not in (None, peer) and owner in self.peers and not owner.link.closed:
                return  # this attempt has its single source already
            if owner is not peer:  # take over: start afresh, so every piece is from one peer
                self._solo_peer = peer
                self.assembler = None
        taken = {piece for p in self.peers if not p.link.closed for piece in p.asked}
        if self.assembler is not None and self.assembler.size != size:
            if taken or len(self.assembler.missing()) < self.assembler.count:
                return  # it disagrees with the size we started with: ask the others
            self.assembler = None  # nothing came of that size (a liar's?): try this one
        if self.assembler is None:
            self.assembler = ut.MetadataAssembler(self.magnet.metadata_hash, size)
        for piece in self.assembler.missing():
            if len(peer.asked) >= REQUESTS_PER_PEER:
                break
            if piece in taken:
                continue
            peer.asked[piece] = self.clock.seconds()
            peer.send_extended(ut.EXTENSION_NAME, ut.encode_request(piece))

    def _ask_all(self, skip: MetadataPeer | None = None) -> None:
        for peer in list(self.peers):
            if peer is not skip:
                self._ask(peer)

    def _complete(self, assembler: ut.MetadataAssembler) -> None:
        try:
            info = assembler.result()
        except MetainfoError:
            sources = {
                p for p in getattr(assembler, "bad_sources", set()) if isinstance(p, MetadataPeer)
            }
            if len(sources) == 1:  # a single source: it lied
                for bad in sources:
                    if bad in self.peers:
                        self._ban(bad, "sent metadata that does not match the info hash")
            else:  # which of them lied? ask one peer at a time from now on
                _log.info(
                    "{name}: metadata from {n} peers failed the hash; asking one peer at a time",
                    name=self.name,
                    n=len(sources),
                )
                self._solo = True
            self._solo_peer = None
            self.assembler = None
            self._ask_all()
            return
        self.assembler = None
        self.info = info
        self.on_metadata(self, info)

    def _ban(self, peer: MetadataPeer, reason: str) -> None:
        address = format_address(peer.link.address)
        _log.warn("dropping {address}: {reason}", address=address, reason=reason)
        self.banned.append(address)
        self.candidates.ban(peer.link.address, reason, peer_id=peer.peer_id)
        peer.link.close(reason, error=True)
        if self.on_ban is not None:
            self.on_ban(self, address, reason)

    # -- BEP 52 ----------------------------------------------------------------------------------
    def fetch_layers(self, piece_length: int, wants: list[LayerWant]) -> None:
        """The verified v2 dictionary names files longer than a piece: ask for their piece
        layers (the session's call, after reading the dictionary off the reactor)."""
        self.layer_fetch = LayerFetch(piece_length, wants)
        self._ask_all()

    def _ask_layers(self, peer: MetadataPeer) -> None:
        fetch = self.layer_fetch
        if fetch is None or not self.active or peer.link.closed:
            return
        now = self.clock.seconds()
        if now < peer.rested_until:
            return
        for req in fetch.next_for(peer, now):
            peer.write(req)

    def hash_message(self, peer: MetadataPeer, msg: Any) -> None:
        """Hash requests are rejected (we hold nothing yet); replies to ours are checked
        against the file's root before anything is kept (a lie bans the peer)."""
        t = type(msg)
        if t is m.HashRequest:
            peer.write(
                m.HashReject(
                    msg.pieces_root, msg.base_layer, msg.index, msg.length, msg.proof_layers
                )
            )
            return
        fetch = self.layer_fetch
        if fetch is None or fetch.done:
            return
        if t is m.HashReject:
            if fetch.reject(peer, msg):
                peer.rested_until = self.clock.seconds() + REQUEST_TIMEOUT
                self._ask_all(skip=peer)
            return
        try:
            fetch.reply(peer, msg)
        except BadHashes as exc:
            fetch.forget(peer)
            self._ban(peer, f"sent piece hashes that are not the torrent's ({exc})")
            self._ask_all()
            return
        peer.payload_in += len(msg.hashes)
        if fetch.done:
            self.layers = fetch.layers()
            self.layer_fetch = None
            assert self.info is not None
            self.on_metadata(self, self.info)
        else:
            self._ask_layers(peer)

    # -- timers ---------------------------------------------------------------------------------
    def _busy(self) -> bool:
        """Peers to look after or connections to make: the one-second duties have work."""
        return bool(self.peers) or self.candidates.connecting > 0 or len(self.candidates) > 0

    def _wake(self) -> None:
        """Arm the next tick (on the session's scheduler) while there is work."""
        if not self.active or not self._busy():
            return
        self._ticker.wake()

    @property
    def ticking(self) -> bool:
        """A tick is scheduled (false for a magnet with nothing to do)."""
        return self._ticker.active

    def _tick(self) -> None:
        now = self.clock.seconds()
        for peer in list(self.peers):
            link = peer.link
            if getattr(link, "heard", True):
                link.heard = False
                peer.last_heard = now
            elif now - peer.last_heard > IDLE_TIMEOUT:
                link.close("idle for 120 s", error=True)
                continue
            expired = [p for p, t in peer.asked.items() if now - t > REQUEST_TIMEOUT]
            for piece in expired:
                del peer.asked[piece]
                peer.expired.add(piece)
            if expired:  # the others get those pieces first
                peer.rested_until = now + REQUEST_TIMEOUT
                if peer is self._solo_peer:
                    self._solo_peer = None
        if self.layer_fetch is not None:
            for peer in self.layer_fetch.expire(now, REQUEST_TIMEOUT):
                peer.rested_until = now + REQUEST_TIMEOUT
        self._ask_all()  # also whoever rested after a reject, and idle peers
        self._connect_more()

    def state_detail(self) -> str | None:
        """Why it may wait for ever: no tracker, no DHT and no peer to ask (else None)."""
        if self.magnet.trackers or self.dht_running is None or self.dht_running():
            return None
        if self.peers or len(self.candidates):
            return None
        return "no trackers and the DHT is disabled: add a tracker or a peer"

    def summary(self) -> dict[str, Any]:
        """The ``torrent.list`` record of a torrent still waiting for its metadata."""
        got = 0.0 if self.info is None else 1.0  # 1.0: a v2 torrent's layers may follow
        if self.assembler is not None:
            got = 1 - len(self.assembler.missing()) / self.assembler.count
        return {
            "info_hash": self.hex,
            "name": self.name,
            "state": self.state,
            "state_detail": self.state_detail(),
            "progress": 0.0,
            "metadata_progress": round(got, 4),
            "size": None,
            "left": None,
            "downloaded": 0,
            "uploaded": 0,
            "ratio": 0.0,
            "download_rate": round(sum(p.download.rate() for p in self.peers)),
            "upload_rate": 0,
            "peers": len(self.peers),
            "seeds": 0,
            "eta": None,
            "save_path": str(self.options.save_path),
            "strategy": self.options.strategy,
            "download_limit": self.options.download_limit,
            "upload_limit": self.options.upload_limit,
            "error": self.error,
            "pieces": None,
            "pieces_have": 0,
            "piece_length": None,
            "private": False,
            "info_hash_v2": None,
            "added_at": self.added_at,
            "completed_at": None,
            "check_progress": 0.0,
            "labels": list(self.options.labels),
            "queue_position": None,  # joins the queue (at the bottom) as a torrent
            "force_start": self.options.force_start,
            "ratio_limit": self.options.ratio_limit,
            "seeding_time_limit": self.options.seeding_time_limit,
            "idle_seeding_limit": self.options.idle_seeding_limit,
            "seeding_time": 0,
        }

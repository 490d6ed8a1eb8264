"""A deterministic swarm around one real Torrent, for the peer and coordinator tests.

Everything is synchronous: the clock is a MemoryReactorClock, the verifier does its
work at once on a real FileStorage (or holds it back when a test asks), and each peer
is a real PeerProtocol on a StringTransport, fed bytes built by the wire codec. What
we wrote to a peer is decoded back so tests assert on messages, not bytes. When our
side closes a transport, ``settle`` delivers connectionLost the way a reactor would.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from btd.core.bencode import encode as bencode
from btd.core.bitfield import Bitfield
from btd.core.metainfo import Metainfo, parse_metainfo
from btd.core.net.peer import PeerProtocol
from btd.core.pieces import PieceState
from btd.core.storage import MissingDataError
from btd.core.torrent import Torrent, TorrentEnv, TorrentOptions
from btd.core.types import BLOCK_SIZE
from btd.core.wire import messages as m
from btd.core.wire.codec import WireDecoder, encode, encode_handshake
from btd.core.wire.mse import req2_key
from btd.plugins.rarest_first import NAME as RAREST_FIRST
from btd.plugins.rarest_first import RarestFirst

PIECE_LENGTH = 32 * 1024
NUM_PIECES = 10  # not a multiple of 8: the bitfield has spare bits
TOTAL_LENGTH = PIECE_LENGTH * (NUM_PIECES - 1) + 20_000  # a short last piece
FILE_SIZES = (("a.bin", 100_000), ("b.bin", TOTAL_LENGTH - 100_000))  # piece 3 spans both
CONTENT = random.Random(7).randbytes(TOTAL_LENGTH)
OUR_PEER_ID = b"-BT0100-ourselves123"
TORRENT_NAME = "harness"


def piece_data(index: int) -> bytes:
    return CONTENT[index * PIECE_LENGTH : (index + 1) * PIECE_LENGTH]


def make_metainfo(private: bool = False) -> Metainfo:
    hashes = b"".join(hashlib.sha1(piece_data(i)).digest() for i in range(NUM_PIECES))
    info: dict[bytes, Any] = {b"private": 1} if private else {}
    info |= {
        b"name": TORRENT_NAME.encode(),
        b"piece length": PIECE_LENGTH,
        b"pieces": hashes,
        b"files": [{b"length": size, b"path": [name.encode()]} for name, size in FILE_SIZES],
    }
    return parse_metainfo(bencode({b"info": info}))


PARTIAL_HAVE = (0, 1, 2)  # what a ``Swarm(partial=True)`` has after its check


def write_content(save_path: Path) -> None:
    root = save_path / TORRENT_NAME
    root.mkdir(parents=True, exist_ok=True)
    pos = 0
    for name, size in FILE_SIZES:
        (root / name).write_bytes(CONTENT[pos : pos + size])
        pos += size


class SyncVerifier:
    """The Verifier's interface, doing the real work at once (or when released)."""

    def __init__(self) -> None:
        self.hold_reads = False
        self.hold_verify = False
        self.held: list[tuple[defer.Deferred[Any], Callable[[], Any]]] = []
        self.reads: list[tuple[int, int, int]] = []
        self.verified: list[tuple[int, bool]] = []
        self.rechecks = 0

    def _run(self, hold: bool, work: Callable[[], Any]) -> defer.Deferred[Any]:
        if hold:
            d: defer.Deferred[Any] = defer.Deferred()
            self.held.append((d, work))
            return d
        return defer.maybeDeferred(work)

    def release(self) -> None:
        """Finish every held job, in order (jobs queued meanwhile included)."""
        while self.held:
            d, work = self.held.pop(0)
            try:
                result = work()
            except Exception:
                d.errback(Failure())
            else:
                d.callback(result)

    def hash_piece(self, data: bytes, expected: bytes) -> defer.Deferred[bool]:
        return defer.succeed(hashlib.sha1(data).digest() == expected)

    def verify_and_write(
        self, storage: Any, index: int, data: bytes, expected: bytes
    ) -> defer.Deferred[bool]:
        def work() -> bool:
            ok = hashlib.sha1(data).digest() == expected
            self.verified.append((index, ok))
            if ok:
                storage.write_piece(index, bytes(data))
            return ok

        return self._run(self.hold_verify, work)

    def read_blocks(
        self, storage: Any, spans: list[tuple[int, int, int]]
    ) -> defer.Deferred[list[bytes]]:
        def work() -> list[bytes]:
            self.reads.extend(spans)
            return [storage.read(*span) for span in spans]

        return self._run(self.hold_reads, work)

    def read_block(
        self, storage: Any, index: int, begin: int, length: int
    ) -> defer.Deferred[bytes]:
        def work() -> bytes:
            self.reads.append((index, begin, length))
            return storage.read(index, begin, length)

        return self._run(self.hold_reads, work)

    def flush(self, storage: Any) -> defer.Deferred[None]:
        return defer.succeed(None)

    def want_files(self, storage: Any, indices: list[int]) -> defer.Deferred[None]:
        def work() -> None:
            for index in indices:
                storage.want_file(index)
            storage.flush()

        return self._run(False, work)

    def check_files(self, storage: Any) -> defer.Deferred[Any]:
        return defer.maybeDeferred(storage.check_files)

    def recheck(
        self,
        storage: Any,
        piece_hashes: bytes,
        piece_length: int,
        total_length: int,
        *,
        pieces: Iterable[int] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> defer.Deferred[Bitfield]:
        self.rechecks += 1
        n = -(-total_length // piece_length)
        have = Bitfield(n)
        wanted = list(range(n) if pieces is None else pieces)
        for done, index in enumerate(wanted, 1):
            try:
                data = storage.read_piece(index)
            except MissingDataError:
                continue
            if hashlib.sha1(data).digest() == piece_hashes[index * 20 : index * 20 + 20]:
                have.add(index)
            if on_progress is not None:
                on_progress(done, len(wanted))
        return defer.succeed(have)


class FakeRouter:
    """The session's side of PeerProtocol: routes inbound handshakes by info hash."""

    def __init__(self, peer_id: bytes = OUR_PEER_ID, encryption: str = "prefer") -> None:
        self.peer_id = peer_id
        self.reserved = m.make_reserved(extensions=True, fast=True)
        self.torrents: dict[bytes, Any] = {}
        self.encryption = encryption
        self.plain_retries: list[tuple[Any, Any]] = []
        self.plain_retry_ids: list[bytes | None] = []  # the swarm id each retry names

    def route(self, info_hash: bytes) -> Any | None:
        return self.torrents.get(info_hash)

    def policy_for(self, swarm: Any) -> str:
        return getattr(swarm, "encryption", None) or self.encryption

    def mse_lookup(self, req2: bytes) -> bytes | None:
        return {req2_key(h): h for h in self.torrents}.get(req2)

    def retry_plain(self, swarm: Any, address: Any, swarm_id: bytes | None = None) -> bool:
        if self.policy_for(swarm) == "require":
            return False
        self.plain_retries.append((swarm, address))
        self.plain_retry_ids.append(swarm_id)
        return True


class Conn:
    """One remote peer: what it sends goes through the real protocol; we read our replies."""

    def __init__(self, swarm: RemotePeers, proto: PeerProtocol, transport: StringTransport) -> None:
        self.swarm = swarm
        self.proto = proto
        self.transport = transport
        self.lost = False
        self._decoder = WireDecoder(expect_handshake=True)
        self._read = 0
        self.inbox: list[Any] = []  # everything we sent it, decoded
        self._seen = 0

    # -- the remote side talks ------------------------------------------------------------
    def send(self, *msgs: Any) -> Conn:
        return self.send_raw(b"".join(encode(msg) for msg in msgs))

    def send_raw(self, data: bytes) -> Conn:
        self.proto.dataReceived(data)
        self.swarm.settle()
        return self

    def handshake(
        self,
        info_hash: bytes | None = None,
        peer_id: bytes | None = None,
        reserved: bytes | None = None,
    ) -> Conn:
        hs = m.Handshake(
            info_hash or self.swarm.meta.info_hash,
            peer_id or self.peer_id_to_send,
            m.make_reserved() if reserved is None else reserved,
        )
        return self.send_raw(encode_handshake(hs))

    def answer(self, requests: Iterable[m.Request], data: bytes = CONTENT) -> Conn:
        """Serve our requests with the right (or the given) content."""
        blocks = []
        for r in requests:
            off = r.index * PIECE_LENGTH + r.begin
            blocks.append(m.Piece(r.index, r.begin, data[off : off + r.length]))
        return self.send(*blocks) if blocks else self

    # -- what we sent it ------------------------------------------------------------------
    def _pull(self) -> None:
        raw = self.transport.value()
        if len(raw) > self._read:
            self.inbox.extend(self._decoder.feed(raw[self._read :]))
            self._read = len(raw)

    def new(self) -> list[Any]:
        """Messages we sent since the last call."""
        self._pull()
        out = self.inbox[self._seen :]
        self._seen = len(self.inbox)
        return out

    def all(self) -> list[Any]:
        self._pull()
        return list(self.inbox)

    def new_of(self, kind: type) -> list[Any]:
        return [x for x in self.new() if isinstance(x, kind)]

    # -- state ----------------------------------------------------------------------------
    @property
    def peer(self) -> Any:
        return self.proto.peer

    @property
    def closing(self) -> bool:
        """Our side closed (gracefully or not)."""
        return bool(self.transport.disconnecting)

    @property
    def aborted(self) -> bool:
        """Our side aborted (a hostile peer), rather than closing gracefully."""
        return bool(self.transport.disconnected)


class RemotePeers:
    """Fake remote peers of one torrent (or magnet fetch) behind a FakeRouter.

    A subclass sets ``clock`` and ``meta`` (``meta.info_hash`` is what peers handshake
    with) and calls ``attach``. ``closed_by_us`` is what connectionLost is told when our
    side closed a transport.
    """

    clock: MemoryReactorClock
    meta: Any
    closed_by_us: type[Exception] = ConnectionDone

    def attach(self, owner: Any, info_hash: bytes) -> None:
        self.owner = owner
        self.router = FakeRouter()
        self.router.torrents[info_hash] = owner
        self.conns: list[Conn] = []
        self._n = 0

    def open(
        self,
        *,
        outgoing: bool = False,
        address: tuple[str, int] | None = None,
        encrypt: bool = False,
    ) -> Conn:
        """A TCP connection, before any handshake (``encrypt``: an outgoing one opens with
        an MSE handshake)."""
        self._n += 1
        address = address or ("127.0.0.1", 40000 + self._n)
        proto = PeerProtocol(
            self.router,
            self.clock,
            torrent=self.owner if outgoing else None,
            address=address if outgoing else None,
            encrypt=encrypt,
        )
        transport = StringTransport(peerAddress=IPv4Address("TCP", *address))
        proto.makeConnection(transport)
        conn = Conn(self, proto, transport)
        conn.peer_id_to_send = b"-LT2000-" + f"{self._n:012d}".encode()
        self.conns.append(conn)
        return conn

    def settle(self) -> None:
        """Deliver connectionLost for every transport our side closed."""
        changed = True
        while changed:
            changed = False
            for conn in self.conns:
                if conn.transport.disconnecting and not conn.lost:
                    conn.lost = True
                    conn.proto.connectionLost(Failure(self.closed_by_us("closed by us")))
                    changed = True

    def advance(self, seconds: float, step: float = 1.0) -> None:
        steps = round(seconds / step)
        for _ in range(steps):
            self.clock.advance(step)
            self.settle()


class Swarm(RemotePeers):
    """One Torrent with its env, plus any number of fake remote peers."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        seeding: bool = False,
        partial: bool = False,
        upload_slots: int = 4,
        max_peers: int = 50,
        seed: int = 1,
        files_skipped: tuple[int, ...] = (),
        private: bool = False,
    ) -> None:
        self.clock = MemoryReactorClock()
        self.meta = make_metainfo(private)
        self.verifier = SyncVerifier()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.connects: list[tuple[str, int]] = []
        self.upload_slots = upload_slots
        self.max_peers = max_peers
        self.save_path = tmp_path / "downloads"
        self.save_path.mkdir(parents=True, exist_ok=True)
        if seeding:
            write_content(self.save_path)
        elif partial:  # only the first file: pieces 0..2 check out, 3 (which spans both) not
            write_content(self.save_path)
            (self.save_path / TORRENT_NAME / FILE_SIZES[1][0]).unlink()
        rng = random.Random(seed)
        env = TorrentEnv(
            clock=self.clock,
            verifier=self.verifier,
            peer_id=OUR_PEER_ID,
            listen_port=lambda: 6881,
            picker_for=lambda name, view: (
                RarestFirst(rng=random.Random(seed)) if name == RAREST_FIRST else None
            ),
            tracker_client_for=lambda url: None,
            connect=lambda torrent, address: self.connects.append(address),
            can_connect=lambda: True,
            emit=lambda torrent, kind, data: self.events.append((kind, data)),
            max_peers=lambda: self.max_peers,
            upload_slots=lambda: self.upload_slots,
            rng=rng,
        )
        options = TorrentOptions(save_path=self.save_path, files_skipped=files_skipped)
        self.torrent = Torrent(self.meta, options, env)
        self.attach(self.torrent, self.meta.info_hash)

    @property
    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    def start(self) -> Swarm:
        self.torrent.start()
        assert self.torrent.state in ("downloading", "seeding"), self.torrent.state
        return self

    # -- peers ---------------------------------------------------------------------------
    def peer(
        self,
        *,
        fast: bool = True,
        extensions: bool = True,
        outgoing: bool = False,
        address: tuple[str, int] | None = None,
        peer_id: bytes | None = None,
    ) -> Conn:
        """A peer past the handshake, attached to the torrent."""
        conn = self.open(outgoing=outgoing, address=address)
        conn.handshake(peer_id=peer_id, reserved=m.make_reserved(extensions=extensions, fast=fast))
        assert conn.peer is not None, conn.proto.close_reason
        return conn

    def seed_peer(self, **kwargs: Any) -> Conn:
        """A remote seed that has unchoked us."""
        conn = self.peer(**kwargs)
        conn.send(
            m.HAVE_ALL_MSG if conn.peer.fast else m.Bitfield(Bitfield.full(NUM_PIECES).to_bytes())
        )
        conn.send(m.UNCHOKE_MSG)
        return conn

    # -- checks ----------------------------------------------------------------------------
    def states(self) -> list[PieceState]:
        return [self.torrent.book.piece_state(i) for i in range(NUM_PIECES)]

    def check(self) -> None:
        """The torrent's bookkeeping is consistent with its peers."""
        t = self.torrent
        t.book.check()
        t.availability.check()
        live = [p for p in t.peers]
        for i in range(NUM_PIECES):
            assert t.availability.count(i) == sum(1 for p in live if i in p.has), i


def blocks_of(index: int) -> list[m.Request]:
    size = min(PIECE_LENGTH, TOTAL_LENGTH - index * PIECE_LENGTH)
    return [m.Request(index, b, min(BLOCK_SIZE, size - b)) for b in range(0, size, BLOCK_SIZE)]


def requests_in(msgs: Iterable[Any]) -> list[m.Request]:
    return [x for x in msgs if isinstance(x, m.Request)]

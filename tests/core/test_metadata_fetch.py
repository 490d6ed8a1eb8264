"""MetadataFetch: a magnet's info dictionary fetched from peers (BEP 9), hostile peers dropped.

Every peer is a real PeerProtocol on a StringTransport, routed through a fake router to the
fetch; the clock is a MemoryReactorClock, so timeouts happen exactly when a test advances
it. The remote side speaks through the wire codec; what we sent it is decoded back, so the
tests assert on ``ut_metadata`` requests, not bytes.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from torrent_harness import OUR_PEER_ID, Conn, RemotePeers
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from btd.core.bencode import decode
from btd.core.bencode import encode as bencode
from btd.core.extensions import Extensions
from btd.core.hash_layers import PieceTree
from btd.core.layer_fetch import layer_wants
from btd.core.magnet import Magnet, parse_magnet
from btd.core.metadata_fetch import LEFT_UNKNOWN, REQUEST_TIMEOUT, MetadataFetch
from btd.core.scheduler import Scheduler
from btd.core.torrent_create_v2 import create_torrent_v2
from btd.core.torrent_env import TorrentOptions
from btd.core.tracker.codec import AnnounceResponse
from btd.core.wire import messages as m
from btd.core.wire import metadata as ut
from btd.core.wire.codec import encode
from btd.core.wire.extension import decode_extension_handshake

INFO = random.Random(3).randbytes(40_000)  # 3 metadata pieces, the last one short
INFO6 = random.Random(4).randbytes(90_000)  # 6 pieces: more than one peer's 4 requests
OUR_UT = Extensions().ids[ut.EXTENSION_NAME]  # the id peers send ut_metadata to us with
THEIR_UT = 3  # the id a remote peer asks us to use


class Scene(RemotePeers):
    """One MetadataFetch, started, and any number of remote peers."""

    closed_by_us = ConnectionError

    def __init__(
        self,
        info: bytes = INFO,
        *,
        peers: tuple[tuple[str, int], ...] = (),
        trackers: tuple[str, ...] = (),
        max_peers: int = 50,
        tracker: Any = None,
        start: bool = True,
    ) -> None:
        self.clock = MemoryReactorClock()
        self.info = info
        self.info_hash = hashlib.sha1(info).digest()
        self.meta = SimpleNamespace(info_hash=self.info_hash)  # what Conn.handshake reads
        self.got: list[bytes] = []
        self.connects: list[tuple[str, int]] = []
        self.max_peers = max_peers
        self.fetch = MetadataFetch(
            Magnet(self.info_hash, "meta", trackers, peers),
            TorrentOptions(save_path=Path("/srv/dl"), strategy="rarest-first"),
            clock=self.clock,
            peer_id=OUR_PEER_ID,
            listen_port=lambda: 6881,
            tracker_client_for=lambda url: tracker,
            connect=lambda fetch, address: self.connects.append(address),
            can_connect=lambda: True,
            max_peers=lambda: self.max_peers,
            on_metadata=lambda fetch, info: self.got.append(info),
        )
        self.attach(self.fetch, self.info_hash)
        if start:
            self.fetch.start()

    # -- peers ---------------------------------------------------------------------------
    def peer(
        self,
        *,
        size: int | None = None,
        ut_id: int = THEIR_UT,
        extensions: bool = True,
        fast: bool = True,
        address: tuple[str, int] | None = None,
        peer_id: bytes | None = None,
        port: int | None = None,
        outgoing: bool = False,
    ) -> Conn:
        """A peer past the handshake that advertises ut_metadata and the metadata size."""
        conn = self.open(address=address, outgoing=outgoing)
        conn.handshake(peer_id=peer_id, reserved=m.make_reserved(extensions=extensions, fast=fast))
        assert conn.peer is not None, conn.proto.close_reason
        ext: dict[bytes, Any] = {b"m": {b"ut_metadata": ut_id}, b"v": b"libtorrent"}
        ext[b"metadata_size"] = len(self.info) if size is None else size
        if port is not None:
            ext[b"p"] = port
        conn.send(m.Extended(0, bencode(ext)))
        return conn


def requested(conn: Conn) -> list[int]:
    """The ut_metadata pieces we asked of this peer since the last look."""
    out = []
    for msg in conn.new():
        if isinstance(msg, m.Extended) and msg.ext_id == THEIR_UT:
            req = ut.decode_message(msg.payload)
            assert req.msg_type == ut.REQUEST
            out.append(req.piece)
    return out


def data(piece: int, info: bytes = INFO, total: int | None = None) -> m.Extended:
    payload = ut.encode_data(piece, info)
    if total is not None:
        payload = (
            bencode({b"msg_type": ut.DATA, b"piece": piece, b"total_size": total})
            + (info[piece * ut.METADATA_PIECE : (piece + 1) * ut.METADATA_PIECE])
        )
    return m.Extended(OUR_UT, payload)


def serve(conn: Conn, pieces: list[int], info: bytes) -> None:
    """Answer these requests, then whatever we ask next, until we ask nothing more."""
    while pieces:
        conn.send(*[data(p, info) for p in pieces])
        pieces = requested(conn)


# -- fetching ----------------------------------------------------------------------------------
def test_one_peer_gives_the_exact_info_bytes() -> None:
    s = Scene()
    conn = s.open()
    conn.handshake(reserved=m.make_reserved(extensions=True, fast=True))
    ours = [x for x in conn.new() if isinstance(x, m.Extended)]
    hs = decode_extension_handshake(ours[0].payload)  # we speak ut_metadata, size unknown
    assert hs.m[ut.EXTENSION_NAME] == OUR_UT and hs.metadata_size is None and hs.p == 6881
    conn.send(m.Extended(0, bencode({b"m": {b"ut_metadata": THEIR_UT}, b"metadata_size": 40_000})))
    assert requested(conn) == [0, 1, 2]  # sent with *its* id for ut_metadata
    conn.send(data(0), data(2))
    assert s.got == [] and s.fetch.summary()["metadata_progress"] == pytest.approx(0.6667)
    conn.send(data(1))
    assert s.got == [INFO]
    assert not conn.closing and s.fetch.banned == []


def test_many_pieces_from_one_peer_are_each_asked_once() -> None:
    s = Scene(INFO6)
    conn = s.peer()
    first = requested(conn)
    assert first == [0, 1, 2, 3]  # at most 4 in flight
    asked = list(first)
    for piece in first:
        conn.send(data(piece, INFO6))
        asked += requested(conn)
    assert sorted(asked) == list(range(6))  # never a piece twice
    conn.send(data(4, INFO6), data(5, INFO6))
    assert s.got == [INFO6] and not conn.closing


def test_two_peers_share_the_pieces() -> None:
    s = Scene(INFO6)
    a = s.open()
    a.handshake(reserved=m.make_reserved(extensions=True, fast=True))
    b = s.peer()  # b tells its size first: it gets the first 4 pieces
    a.send(m.Extended(0, bencode({b"m": {b"ut_metadata": THEIR_UT}, b"metadata_size": 90_000})))
    from_b, from_a = requested(b), requested(a)
    assert from_b == [0, 1, 2, 3] and from_a == [4, 5]
    a.send(data(4, INFO6), data(5, INFO6))
    b.send(*[data(p, INFO6) for p in from_b])
    assert s.got == [INFO6]
    assert requested(a) == [] and requested(b) == []
    assert s.fetch.summary()["peers"] == 2


def test_peers_from_the_magnet_and_the_trackers_are_dialled() -> None:
    asked: list[Any] = []

    class Tracker:
        def announce(self, url: str, req: Any) -> defer.Deferred[AnnounceResponse]:
            asked.append((url, req))
            return defer.succeed(
                AnnounceResponse(1800, None, None, 1, 0, (("127.0.0.1", 7002),), None)
            )

    s = Scene(
        peers=(("127.0.0.1", 7001),), trackers=("http://127.0.0.1:1/announce",), tracker=Tracker()
    )
    ((url, req),) = asked
    assert url == "http://127.0.0.1:1/announce" and req.event == "started"
    assert req.info_hash == s.info_hash and req.left == LEFT_UNKNOWN and req.port == 6881
    assert sorted(s.connects) == [("127.0.0.1", 7001), ("127.0.0.1", 7002)]
    s.fetch.stop()
    assert [r.event for _, r in asked] == ["started", "stopped"]


def test_a_peer_asking_us_for_metadata_is_rejected() -> None:
    s = Scene()
    conn = s.peer()
    requested(conn)
    conn.send(m.Extended(OUR_UT, ut.encode_request(0)))
    replies = [x for x in conn.new() if isinstance(x, m.Extended)]
    assert [ut.decode_message(x.payload).msg_type for x in replies] == [ut.REJECT]
    assert not conn.closing


def test_without_the_extension_protocol_a_peer_is_refused_at_attach() -> None:
    s = Scene()
    conn = s.open()
    conn.handshake(reserved=m.make_reserved(extensions=False, fast=True))
    assert conn.peer is None and conn.closing
    assert s.fetch.peers == {}
    conn.send(m.Extended(0, bencode({b"m": {b"ut_metadata": 3}, b"metadata_size": 40_000})))
    assert requested(conn) == [] and s.fetch.assembler is None


def test_a_stopped_fetch_takes_no_peer_and_closes_its_own() -> None:
    s = Scene()
    conn = s.peer()
    s.fetch.stop()
    s.settle()
    assert conn.closing and s.fetch.peers == {}
    late = s.open()
    late.handshake(reserved=m.make_reserved(extensions=True, fast=True))
    assert late.peer is None and late.closing


# -- peers that fail us -----------------------------------------------------------------------------
def test_a_reject_sends_the_piece_to_another_peer() -> None:
    s = Scene()
    a = s.peer()
    assert requested(a) == [0, 1, 2]
    b = s.peer()
    assert requested(b) == []  # every piece is taken
    a.send(m.Extended(OUR_UT, ut.encode_reject(1)))
    assert requested(b) == [1]
    assert not a.closing
    a.send(data(0), data(2))
    assert requested(a) == []  # the rejected piece is b's now
    b.send(data(1))
    assert s.got == [INFO]


def test_a_request_unanswered_for_30_s_goes_to_another_peer() -> None:
    s = Scene()
    slow = s.peer()
    assert requested(slow) == [0, 1, 2]
    other = s.peer()
    assert requested(other) == []
    s.advance(REQUEST_TIMEOUT - 1)
    assert requested(other) == []
    s.advance(2)
    assert requested(other) == [0, 1, 2]
    slow.send(data(0))  # a late answer is not an offence
    assert not slow.closing
    other.send(data(1), data(2))
    assert s.got == [INFO]


def test_metadata_that_fails_the_hash_bans_its_sender_for_good() -> None:
    s = Scene()
    evil_addr = ("127.0.0.1", 45000)
    evil = s.peer(address=evil_addr, port=7000, peer_id=b"-XX0000-evil-evil-00")
    wrong = bytearray(INFO)
    wrong[100] ^= 0xFF
    serve(evil, requested(evil), bytes(wrong))
    s.settle()
    assert s.got == []
    assert evil.aborted and evil.lost and evil.peer not in s.fetch.peers
    assert s.fetch.banned == ["127.0.0.1:45000"]

    # never again: not its address, its listen port, its peer id, nor from a tracker
    back = s.open(address=evil_addr)
    back.handshake(peer_id=b"-XX0000-fresh-id-000", reserved=m.make_reserved(extensions=True))
    assert back.peer is None and back.closing
    disguised = s.open()
    disguised.handshake(peer_id=b"-XX0000-evil-evil-00", reserved=m.make_reserved(extensions=True))
    assert disguised.peer is None and disguised.closing
    assert s.fetch.add_peers([evil_addr, ("127.0.0.1", 7000)]) == 0
    s.advance(300)
    assert evil_addr not in s.connects and ("127.0.0.1", 7000) not in s.connects
    assert evil_addr not in s.fetch.known_peers()

    honest = s.peer()
    serve(honest, requested(honest), INFO)
    assert s.got == [INFO] and not honest.closing


def test_a_liar_sharing_the_pieces_with_an_honest_peer_is_found_alone() -> None:
    """A shared failure bans nobody; the next rounds have one source each, so only the liar is."""
    s = Scene(INFO6)
    wrong = bytearray(INFO6)
    wrong[5] ^= 1  # in piece 0
    liar = s.peer()
    honest = s.peer()
    liar_asked, honest_asked = requested(liar), requested(honest)
    assert liar_asked == [0, 1, 2, 3] and honest_asked == [4, 5]
    honest.send(*[data(p, INFO6) for p in honest_asked])
    liar.send(*[data(p, bytes(wrong)) for p in liar_asked])
    assert s.got == [] and s.fetch.banned == []
    assert not liar.closing and not honest.closing
    rounds = 0
    while not s.got:  # from now on one peer at a time serves the whole dictionary
        rounds += 1
        assert rounds < 5
        asking = {c: requested(c) for c in (liar, honest) if not c.closing}
        [(conn, pieces)] = [(c, p) for c, p in asking.items() if p]
        serve(conn, pieces, bytes(wrong) if conn is liar else INFO6)
        s.settle()
    assert s.got == [INFO6]
    assert liar.aborted and s.fetch.banned == ["{}:{}".format(*liar.proto.address)]
    assert not honest.closing


# -- hostile peers: that connection is closed, the fetch goes on ---------------------------------
HOSTILE: dict[str, list[Any]] = {
    "piece index beyond the metadata": [data(5)],
    "piece index beyond 10 MiB": [
        m.Extended(OUR_UT, bencode({b"msg_type": 1, b"piece": 10**6, b"total_size": 40_000}) + b"x")
    ],
    "a piece of the wrong size": [m.Extended(OUR_UT, ut.encode_data(0, INFO)[:-1])],
    "a short last piece too long": [data(2, INFO + b"xx", total=40_000)],
    "total_size differing from its handshake": [data(0, total=40_001)],
    "data for a piece never requested": [data(0), data(0)],
    "metadata_size 0": [m.Extended(0, bencode({b"m": {b"ut_metadata": 3}, b"metadata_size": 0}))],
    "metadata_size over 10 MiB": [
        m.Extended(0, bencode({b"m": {b"ut_metadata": 3}, b"metadata_size": 10 * 2**20 + 1}))
    ],
    "garbage ut_metadata payload": [m.Extended(OUR_UT, b"garbage")],
    "ut_metadata payload not a dict": [m.Extended(OUR_UT, b"li0ei1ee")],
    "unknown msg_type": [m.Extended(OUR_UT, b"d8:msg_typei7e5:piecei0ee")],
    "reject with trailing bytes": [m.Extended(OUR_UT, ut.encode_reject(0) + b"junk")],
    "garbage extension handshake": [m.Extended(0, b"not bencode")],
    "have-all without the fast extension": "nofast",  # type: ignore[dict-item]
}


@pytest.mark.parametrize("attack", list(HOSTILE))
def test_hostile_peer_is_dropped_and_the_fetch_goes_on(attack: str) -> None:
    s = Scene()
    fast = HOSTILE[attack] != "nofast"
    hostile = s.peer(fast=fast)
    assert requested(hostile) == [0, 1, 2]
    good = s.peer()
    assert requested(good) == []
    if fast:
        hostile.send(*HOSTILE[attack])
    else:
        hostile.send(m.HAVE_ALL_MSG)
    assert hostile.aborted, hostile.proto.close_reason
    assert hostile.lost and hostile.peer not in s.fetch.peers
    assert s.fetch.banned == []  # malformed is not malicious: dropped, not banned
    serve(good, requested(good), INFO)
    assert s.got == [INFO] and not good.closing


def test_a_message_split_across_reads_is_checked_all_the_same() -> None:
    s = Scene()
    hostile = s.peer()
    good = s.peer()
    for b in encode(m.Extended(OUR_UT, b"garbage")):
        hostile.send_raw(bytes([b]))
    assert hostile.aborted and hostile.lost
    serve(good, requested(good), INFO)
    assert s.got == [INFO]


def test_the_peer_limit_applies() -> None:
    s = Scene(max_peers=1)
    s.peer()
    second = s.open()
    second.handshake(reserved=m.make_reserved(extensions=True, fast=True))
    assert second.peer is None and second.closing


def test_a_lone_peer_that_rejected_is_asked_again_after_a_rest() -> None:
    s = Scene()
    only = s.peer()
    assert requested(only) == [0, 1, 2]
    only.send(*[m.Extended(OUR_UT, ut.encode_reject(p)) for p in (0, 1, 2)])
    s.advance(REQUEST_TIMEOUT - 1)
    assert requested(only) == []  # not hammered with requests it just refused
    s.advance(2)
    assert requested(only) == [0, 1, 2]
    only.send(data(0), data(1), data(2))
    assert s.got == [INFO]


def test_a_lone_silent_peer_is_asked_again_after_the_timeout() -> None:
    s = Scene()
    only = s.peer()
    assert requested(only) == [0, 1, 2]
    s.advance(REQUEST_TIMEOUT + 1)
    assert requested(only) == []  # the pieces are free for the others first
    s.advance(REQUEST_TIMEOUT)
    assert requested(only) == [0, 1, 2]
    serve(only, [0, 1, 2], INFO)
    assert s.got == [INFO]


def test_the_same_peer_id_twice_is_refused() -> None:
    s = Scene()
    s.peer(peer_id=b"-LT2000-same-peer-id")
    again = s.open()
    again.handshake(peer_id=b"-LT2000-same-peer-id", reserved=m.make_reserved(extensions=True))
    assert again.peer is None and again.closing


def test_a_ban_is_reported() -> None:
    s = Scene()
    bans: list[tuple[str, str]] = []
    s.fetch.on_ban = lambda fetch, address, reason: bans.append((address, reason))
    evil = s.peer(address=("127.0.0.1", 45001))
    serve(evil, requested(evil), bytes(len(INFO)))
    assert bans == [("127.0.0.1:45001", "sent metadata that does not match the info hash")]


def test_a_silent_peer_claiming_another_size_does_not_block_the_fetch() -> None:
    s = Scene()
    liar = s.peer(size=5 * 2**20)  # first to tell a size, then never answers
    assert requested(liar) == [0, 1, 2, 3]
    honest = s.peer()
    assert requested(honest) == []  # it disagrees with the size being fetched
    s.advance(REQUEST_TIMEOUT + 1)
    pieces = requested(honest)
    assert pieces == [0, 1, 2]
    liar.send(data(0, bytes(5 * 2**20)))  # late, and not the size being fetched now: dropped
    assert liar.aborted
    serve(honest, pieces, INFO)
    assert s.got == [INFO]


def test_a_peer_that_does_not_serve_metadata_is_closed() -> None:
    s = Scene()
    conn = s.open()
    conn.handshake(reserved=m.make_reserved(extensions=True, fast=True))
    conn.send(m.Extended(0, bencode({b"m": {b"ut_pex": 1}})))  # no ut_metadata
    assert conn.closing


def test_a_silent_peer_is_dropped_after_120_s() -> None:
    s = Scene()
    conn = s.peer()
    for _ in range(100):  # the fetch's one-second tick
        s.clock.advance(1)
    assert not conn.closing
    for _ in range(30):
        s.clock.advance(1)
    assert conn.closing and conn.aborted


# -- timers ------------------------------------------------------------------------------------------
def test_a_waiting_magnet_with_nothing_to_do_holds_no_tick() -> None:
    s = Scene()  # no trackers, no peers
    assert not s.fetch.ticking and len(s.fetch.scheduler) == 0
    s.clock.advance(10)
    assert len(s.clock.getDelayedCalls()) == 0  # no timer of its own either
    conn = s.peer()  # a peer: the one-second duties have work
    assert s.fetch.ticking and len(s.fetch.scheduler) == 1
    conn.proto.connectionLost(Failure(ConnectionDone("gone")))
    s.clock.advance(1)  # the last tick sees nobody and does not arm another
    assert not s.fetch.ticking and len(s.fetch.scheduler) == 0


def test_fetches_share_the_scheduler_they_are_given() -> None:
    clock = MemoryReactorClock()
    shared = Scheduler(clock)
    fetches = [
        MetadataFetch(
            Magnet(bytes([i]) * 20, "m", (), (("127.0.0.1", 7000 + i),)),
            TorrentOptions(save_path=Path("/srv/dl"), strategy="rarest-first"),
            clock=clock,
            peer_id=OUR_PEER_ID,
            listen_port=lambda: 6881,
            tracker_client_for=lambda url: None,
            connect=lambda fetch, address: None,
            can_connect=lambda: True,
            max_peers=lambda: 50,
            on_metadata=lambda fetch, info: None,
            scheduler=shared,
        )
        for i in range(3)
    ]
    for f in fetches:
        f.start()
    assert all(f.ticking and f.scheduler is shared for f in fetches)
    assert len(shared) == 3 and len(clock.getDelayedCalls()) == 1  # one reactor call for all
    for f in fetches:
        f.stop()
    assert len(shared) == 0


# -- BitTorrent v2 (btmh) magnets: SHA-256 metadata, then piece layers by hash request ---------
# The info dictionary is checked by SHA-256, then the piece layers come by BEP 52 hash
# requests, every reply proved against its file's root before it is kept. Wrong hashes ban
# the peer and are not trusted; rejects and timeouts go to another peer.
V2_PIECE = 16384


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory):
    folder: Path = tmp_path_factory.mktemp("v2") / "tree"
    folder.mkdir()
    (folder / "big.bin").write_bytes(os.urandom(600 * V2_PIECE + 5))  # two requests
    (folder / "mid.bin").write_bytes(os.urandom(5 * V2_PIECE))  # one
    (folder / "tiny.bin").write_bytes(b"x" * 100)  # its own root: none
    created = create_torrent_v2(folder, piece_length=V2_PIECE)
    top = decode(created.data)
    start = created.data.index(b"4:info") + 6
    info = created.data[start : start + len(created.data) - start - 1]
    info = info[: info.rindex(b"12:piece layers")] if b"12:piece layers" in info else info
    assert hashlib.sha256(info).digest() == created.info_hash_v2
    return created, info, top[b"piece layers"]


class V2Scene(Scene):
    def __init__(self, created, info: bytes) -> None:
        super().__init__(info, start=False)
        v2 = created.info_hash_v2
        self.info_hash = v2[:20]
        self.meta.info_hash = v2[:20]
        magnet = parse_magnet(f"magnet:?xt=urn:btmh:1220{v2.hex()}")
        assert magnet == Magnet(v2[:20], None, (), (), v2, v1=False)
        self.fetch.magnet = magnet
        self.fetch.info_hash = magnet.info_hash
        self.attach(self.fetch, magnet.info_hash)
        self.fetch.start()


def hash_requests(conn) -> list[m.HashRequest]:
    return [x for x in conn.new() if isinstance(x, m.HashRequest)]


def answer(conn, reqs, layers, *, corrupt: bool = False) -> None:
    for req in reqs:
        data = PieceTree(layers[req.pieces_root], V2_PIECE).get_hashes(req)
        assert data is not None
        if corrupt:
            data = bytes([data[0] ^ 1]) + data[1:]
        fields = (req.pieces_root, req.base_layer, req.index, req.length, req.proof_layers)
        conn.send(m.Hashes(*fields, data))


def metadata_then_layers(s: V2Scene, conn, info: bytes) -> None:
    serve(conn, requested(conn), info)
    assert s.got == [info] and s.fetch.info == info and s.fetch.layers is None
    found = layer_wants(info)
    assert found is not None and found[0] == V2_PIECE and len(found[1]) == 2
    s.fetch.fetch_layers(*found)


def test_sha256_metadata_then_layers(v2) -> None:
    created, info, layers = v2
    s = V2Scene(created, info)
    peer = s.peer()
    metadata_then_layers(s, peer, info)
    reqs = hash_requests(peer)
    assert len(reqs) == 3 and {r.length for r in reqs} == {512, 128, 8}
    assert requested(peer) == []  # the metadata is never asked for again
    answer(peer, reqs, layers)
    assert s.got == [info, info]  # called back once every layer is verified
    assert s.fetch.layers == layers and not peer.closing


def test_metadata_that_is_not_the_btmh_hash_bans(v2) -> None:
    created, info, _ = v2
    s = V2Scene(created, info)
    evil = s.peer()
    wrong = bytearray(info)
    wrong[-3] ^= 1
    serve(evil, requested(evil), bytes(wrong))
    s.settle()
    assert s.got == [] and evil.aborted and len(s.fetch.banned) == 1


def test_wrong_hashes_ban_the_peer_and_are_not_trusted(v2) -> None:
    created, info, layers = v2
    s = V2Scene(created, info)
    liar = s.peer()
    metadata_then_layers(s, liar, info)
    reqs = hash_requests(liar)
    answer(liar, reqs[:1], layers, corrupt=True)
    s.settle()
    assert liar.aborted and s.fetch.banned == ["{}:{}".format(*liar.proto.address)]
    assert s.fetch.layers is None and s.got == [info]
    honest = s.peer()
    answer(honest, hash_requests(honest), layers)
    assert s.fetch.layers == layers and s.got == [info, info]


def test_a_reject_sends_the_run_to_another_peer(v2) -> None:
    created, info, layers = v2
    s = V2Scene(created, info)
    first = s.peer()
    metadata_then_layers(s, first, info)
    second = s.peer()
    assert hash_requests(second) == []  # all three runs are with the first
    reqs = hash_requests(first)
    rejected = reqs[0]
    first.send(m.HashReject(*(rejected.pieces_root, rejected.base_layer, rejected.index,
                              rejected.length, rejected.proof_layers)))  # fmt: skip
    assert hash_requests(second) == [rejected]
    answer(first, reqs[1:], layers)
    answer(second, [rejected], layers)
    assert s.fetch.layers == layers and not first.closing


def test_a_silent_peer_loses_its_runs_after_the_timeout(v2) -> None:
    created, info, layers = v2
    s = V2Scene(created, info)
    slow = s.peer()
    metadata_then_layers(s, slow, info)
    reqs = hash_requests(slow)
    other = s.peer()
    s.advance(REQUEST_TIMEOUT + 2)
    assert sorted(hash_requests(other), key=str) == sorted(reqs, key=str)
    answer(other, reqs, layers)
    assert s.fetch.layers == layers


def test_unsolicited_and_late_replies_are_ignored(v2) -> None:
    created, info, layers = v2
    s = V2Scene(created, info)
    peer = s.peer()
    metadata_then_layers(s, peer, info)
    reqs = hash_requests(peer)
    other = s.peer()
    answer(other, reqs[:1], layers)  # not asked of it: ignored, not kept
    assert s.fetch.layer_fetch is not None and s.fetch.layer_fetch.done_count == 0
    assert not other.closing
    answer(peer, reqs, layers)
    assert s.fetch.layers == layers


def test_hash_requests_to_a_fetch_are_rejected(v2) -> None:
    created, info, _ = v2
    s = V2Scene(created, info)
    peer = s.peer()
    req = m.HashRequest(b"r" * 32, 0, 0, 2, 0)
    peer.send(req)
    assert [x for x in peer.new() if isinstance(x, m.HashReject)] == [
        m.HashReject(b"r" * 32, 0, 0, 2, 0)
    ]

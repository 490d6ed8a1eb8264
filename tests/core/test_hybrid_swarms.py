"""A hybrid torrent (BEP 52) in both its swarms, over a whole Session on a
MemoryReactorClock: found by either id (plain and MSE newcomers), the reply names the id
the peer used, peers heard in the v2 swarm are dialled with the v2 id, and the v2
reserved bit travels only for torrents with v2 hashes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from session_harness import make_session, single
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport

from btd.core import torrent_status
from btd.core.net.peer import PeerProtocol
from btd.core.session import Session
from btd.core.swarm import TorrentNotFound
from btd.core.torrent_create_v2 import create_torrent_v2
from btd.core.wire import messages as m
from btd.core.wire.codec import WireDecoder, encode_handshake
from btd.core.wire.mse import CRYPTO_RC4, Initiator, req2_key

THEIR_ID = b"-LT2000-hybridpeer01"
THEIRS = m.make_reserved(extensions=True, fast=True, v2=True)


def result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def add_hybrid(tmp_path: Path, session: Session) -> tuple[Any, bytes]:
    """A hybrid of a 100 kB file (nothing on disk: it downloads); (torrent, v2 swarm id)."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "hyb.bin").write_bytes(bytes(range(256)) * 400)
    created = create_torrent_v2(folder / "hyb.bin", hybrid=True, piece_length=16384)
    result(session.add(created.data))
    torrent = session.torrents[created.info_hash]
    assert torrent.active
    return torrent, created.info_hash_v2[:20]


class Remote:
    """A peer that dialled us: bytes through the real PeerProtocol, routed by the session."""

    def __init__(self, session: Session, port: int = 41000) -> None:
        self.proto = PeerProtocol(session.connector, session.reactor)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        self.proto.makeConnection(self.transport)

    def replies(self) -> list[Any]:
        return list(WireDecoder(expect_handshake=True).feed(self.transport.value()))


def test_a_hybrid_is_found_by_either_id_and_forgotten_by_both(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    torrent, v2 = add_hybrid(tmp_path, session)
    v1 = torrent.info_hash
    assert torrent.swarm_ids == (v1, v2) and v1 != v2
    for swarm_id in (v1, v2):
        assert session.swarm(swarm_id) is torrent
        assert session.connector.route(swarm_id) is torrent
        assert session.connector.mse_lookup(req2_key(swarm_id)) == swarm_id
    assert session.find(v2.hex()) is torrent  # RPC names it by either id too
    result(session.remove(torrent))
    for swarm_id in (v1, v2):
        assert session.swarm(swarm_id) is None
        assert session.connector.mse_lookup(req2_key(swarm_id)) is None


def test_a_v1_torrent_has_one_id_and_no_v2_bit(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(single("one.bin", b"x" * 40_000)))
    (torrent,) = session.torrents.values()
    assert torrent.swarm_ids == (torrent.info_hash,) and not torrent.v2
    peer = Remote(session)
    peer.proto.dataReceived(encode_handshake(m.Handshake(torrent.info_hash, THEIR_ID, THEIRS)))
    ours = peer.replies()[0]
    assert ours.info_hash == torrent.info_hash and not ours.supports_v2
    assert torrent_status.peers(torrent)[0]["v2"] is False


def test_an_inbound_handshake_gets_back_the_id_it_named(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    torrent, v2 = add_hybrid(tmp_path, session)
    by_v2, by_v1 = Remote(session, 41000), Remote(session, 41001)
    by_v2.proto.dataReceived(encode_handshake(m.Handshake(v2, THEIR_ID, THEIRS)))
    other = m.make_reserved(extensions=True, fast=True)  # a v1-only client
    by_v1.proto.dataReceived(
        encode_handshake(m.Handshake(torrent.info_hash, b"-TR3000-v1peer000001", other))
    )
    assert by_v2.proto.peer in torrent.peers and by_v1.proto.peer in torrent.peers
    reply_v2, reply_v1 = by_v2.replies()[0], by_v1.replies()[0]
    assert reply_v2.info_hash == v2 and by_v2.proto.swarm_id == v2
    assert reply_v1.info_hash == torrent.info_hash and by_v1.proto.swarm_id == torrent.info_hash
    assert reply_v2.supports_v2 and reply_v1.supports_v2  # a torrent with v2 hashes: the bit
    listed = {p["port"]: p["v2"] for p in torrent_status.peers(torrent)}
    assert listed == {41000: True, 41001: False}


def test_an_encrypted_newcomer_finds_the_hybrid_by_its_v2_id(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    torrent, v2 = add_hybrid(tmp_path, session)
    peer = Remote(session)
    them = Initiator(v2, encode_handshake(m.Handshake(v2, THEIR_ID, THEIRS)), CRYPTO_RC4)
    peer.proto.dataReceived(them.start())
    sent = 0

    def take() -> bytes:
        nonlocal sent
        value = peer.transport.value()
        out, sent = value[sent:], len(value)
        return out

    peer.proto.dataReceived(them.receive(take()))
    them.receive(take())
    stream = them.established
    assert stream is not None and stream.rc4
    assert peer.proto.peer in torrent.peers and peer.proto.swarm_id == v2
    ours = stream.payload + stream.decrypt(take())
    assert next(iter(WireDecoder(expect_handshake=True).feed(ours))).info_hash == v2


def dialled(session: Session) -> list[tuple[tuple[str, int], bytes]]:
    """Each dial's address and the info hash its (plain) handshake names."""
    out = []
    for host, port, factory, *_ in session.reactor.tcpClients:
        proto = factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        proto.makeConnection(transport)
        hs = next(iter(WireDecoder(expect_handshake=True).feed(transport.value())))
        assert hs.supports_v2  # our bit, on a torrent with v2 hashes
        out.append(((host, port), hs.info_hash))
    return out


def test_peers_heard_in_the_v2_swarm_are_dialled_with_the_v2_id(tmp_path: Path) -> None:
    session = make_session(tmp_path, encryption="plain")
    torrent, v2 = add_hybrid(tmp_path, session)
    v1 = torrent.info_hash
    torrent.add_peers([("127.0.0.2", 7000)], swarm_id=v2)
    torrent.add_peers([("127.0.0.3", 7000)])  # a tracker's v1 answer, or the user
    torrent.add_peers([("127.0.0.4", 7000)], swarm_id=b"\x99" * 20)  # not ours: untagged
    torrent.add_peers([("127.0.0.2", 7000)])  # heard in both: keeps the v2 tag
    assert sorted(dialled(session)) == [
        (("127.0.0.2", 7000), v2),
        (("127.0.0.3", 7000), v1),
        (("127.0.0.4", 7000), v1),
    ]


def test_a_plain_retry_names_the_same_swarm(tmp_path: Path) -> None:
    session = make_session(tmp_path)  # prefer: encrypted first
    torrent, v2 = add_hybrid(tmp_path, session)
    torrent.add_peers([("127.0.0.2", 7000)], swarm_id=v2)
    (first,) = session.reactor.tcpClients
    proto = first[2].buildProtocol(None)
    proto.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.2", 7000)))
    proto.connectionLost(None)  # the MSE handshake never finished
    retry = session.reactor.tcpClients[-1][2]
    assert len(session.reactor.tcpClients) == 2 and not retry.encrypt
    assert retry.swarm_id == v2


def test_rpc_names_a_hybrid_by_its_whole_v2_hash_too(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    torrent, _ = add_hybrid(tmp_path, session)
    full = torrent.meta.info_hash_v2.hex()
    assert session.find(full) is torrent and session.find(full.upper()) is torrent
    result(session.add(single("one.bin", b"y" * 40_000)))
    v1 = next(t for t in session.torrents.values() if t is not torrent)
    with pytest.raises(TorrentNotFound):  # a v1 torrent has no v2 hash to be named by
        session.find(v1.hex + "0" * 24)


def test_a_hybrid_magnet_waits_in_both_swarms(tmp_path: Path) -> None:
    """A magnet with ``btih`` and ``btmh`` (a hybrid's): found by either id while it waits
    for its metadata, v2-heard peers dialled with the v2 id; forgotten once removed."""
    from btd.core.metadata_fetch import MetadataFetch

    session = make_session(tmp_path, encryption="plain")
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "hyb.bin").write_bytes(bytes(range(256)) * 400)
    created = create_torrent_v2(folder / "hyb.bin", hybrid=True, piece_length=16384)
    v1, v2 = created.info_hash, created.info_hash_v2[:20]
    uri = f"magnet:?xt=urn:btih:{v1.hex()}&xt=urn:btmh:1220{created.info_hash_v2.hex()}"
    result(session.add_magnet(uri))
    fetch = session.swarm(v1)
    assert isinstance(fetch, MetadataFetch) and fetch.swarm_ids == (v1, v2)
    assert session.swarm(v2) is fetch and session.connector.route(v2) is fetch
    assert session.connector.mse_lookup(req2_key(v2)) == v2
    peer = Remote(session)
    peer.proto.dataReceived(encode_handshake(m.Handshake(v2, THEIR_ID, THEIRS)))
    assert peer.replies()[0].info_hash == v2 and peer.proto.swarm_id == v2
    fetch.add_peers([("127.0.0.2", 7000)], swarm_id=v2)
    fetch.add_peers([("127.0.0.3", 7000)])
    assert sorted(dialled(session)) == [(("127.0.0.2", 7000), v2), (("127.0.0.3", 7000), v1)]
    result(session.magnets.remove(fetch))
    assert session.swarm(v2) is None and session.swarm(v1) is None

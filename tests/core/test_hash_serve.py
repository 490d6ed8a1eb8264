"""A v2 torrent answers BEP 52 hash requests from its piece layers, rejects what it cannot
or will not answer, and keeps to its per-peer rate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from btd.core.bencode import decode
from btd.core.hash_layers import LayerWant, layer_requests, verify_layer_reply
from btd.core.hash_serve import HashServer
from btd.core.limits import HASH_REQUEST_BURST, HASH_REQUEST_RATE
from btd.core.metainfo import parse_metainfo
from btd.core.torrent_create_v2 import create_torrent_v2
from btd.core.wire import messages as m
from btd.core.wire.codec import WireDecoder

PIECE = 32 * 1024


class FakePeer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, msg: object) -> None:
        from btd.core.wire.codec import encode

        self.sent.append(encode(msg))

    def replies(self) -> list:
        out = WireDecoder(expect_handshake=False).feed(b"".join(self.sent))
        self.sent.clear()
        return out


@pytest.fixture
def v2(tmp_path: Path):
    folder = tmp_path / "tree"
    folder.mkdir()
    (folder / "big.bin").write_bytes(os.urandom(40 * PIECE + 123))
    (folder / "small.bin").write_bytes(os.urandom(1000))
    created = create_torrent_v2(folder, piece_length=PIECE)
    meta = parse_metainfo(created.data)
    layers = decode(created.data)[b"piece layers"]
    return meta, layers


def test_answers_prove_the_layer(v2) -> None:
    meta, layers = v2
    ((root, layer),) = layers.items()
    server = HashServer(meta.v2, Clock().seconds)
    peer = FakePeer()
    got = b""
    for req in layer_requests(LayerWant(root, 41), PIECE):
        server.message(peer, req)
        (reply,) = peer.replies()
        assert type(reply) is m.Hashes
        hashes = verify_layer_reply(reply, root, 41, PIECE)
        assert hashes is not None
        got += b"".join(hashes)
    assert got == layer
    assert server.answered == 1 and server.rejected == 0


@pytest.mark.parametrize(
    "change",
    [
        {"pieces_root": b"u" * 32},  # not a file of ours
        {"base_layer": 0},  # block hashes: not kept
        {"index": 64},  # past the layer (41 pieces, 64 wide)
        {"length": 9000},  # over HASH_REQUEST_MAX_LENGTH
        {"proof_layers": 6},  # reaches the root
    ],
)
def test_rejects(v2, change) -> None:
    meta, layers = v2
    (root,) = layers
    fields = {"pieces_root": root, "base_layer": 1, "index": 0, "length": 64, "proof_layers": 5}
    fields.update(change)
    req = m.HashRequest(**fields)
    server = HashServer(meta.v2, Clock().seconds)
    peer = FakePeer()
    server.message(peer, req)
    assert peer.replies() == [
        m.HashReject(req.pieces_root, req.base_layer, req.index, req.length, req.proof_layers)
    ]
    assert server.rejected == 1


def test_the_one_piece_file_has_no_layer_to_serve(v2) -> None:
    meta, _ = v2
    (big,) = meta.v2.layers  # only big.bin has a layer; small.bin is its own root
    assert big[2] == 41


def test_rate_per_peer(v2) -> None:
    meta, layers = v2
    (root,) = layers
    clock = Clock()
    server = HashServer(meta.v2, clock.seconds)
    req = m.HashRequest(root, 1, 0, 64, 5 - 1)
    fast, other = FakePeer(), FakePeer()
    for _ in range(HASH_REQUEST_BURST + 5):
        server.message(fast, req)
    kinds = [type(r) for r in fast.replies()]
    assert kinds.count(m.Hashes) == HASH_REQUEST_BURST and kinds.count(m.HashReject) == 5
    server.message(other, req)  # another peer has its own budget
    assert [type(r) for r in other.replies()] == [m.Hashes]
    clock.advance(1.0)
    for _ in range(int(HASH_REQUEST_RATE) + 2):
        server.message(fast, req)
    kinds = [type(r) for r in fast.replies()]
    assert kinds.count(m.Hashes) == HASH_REQUEST_RATE


def test_replies_and_rejects_sent_to_us_are_ignored(v2) -> None:
    meta, layers = v2
    (root,) = layers
    server, peer = HashServer(meta.v2, Clock().seconds), FakePeer()
    server.message(peer, m.HashReject(root, 1, 0, 2, 0))
    server.message(peer, m.Hashes(root, 1, 0, 2, 0, b"h" * 64))
    assert peer.sent == []


def test_a_v1_torrent_rejects_every_request() -> None:
    server, peer = HashServer(None, Clock().seconds), FakePeer()
    server.message(peer, m.HashRequest(b"r" * 32, 1, 0, 2, 0))
    assert [type(r) for r in peer.replies()] == [m.HashReject]


def test_layer_wants_names_the_files_over_a_piece(tmp_path: Path) -> None:
    from btd.core.hash_layers import LayerWant
    from btd.core.layer_fetch import layer_wants

    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "a.bin").write_bytes(os.urandom(3 * PIECE))
    (folder / "b.bin").write_bytes(os.urandom(PIECE))  # exactly one piece: its own root
    for hybrid in (False, True):
        created = create_torrent_v2(folder, piece_length=PIECE, hybrid=hybrid)
        info = parse_metainfo(created.data).info_bytes
        found = layer_wants(info)
        if hybrid:
            assert found is None  # a hybrid's v1 half carries its pieces
        else:
            (root,) = decode(created.data)[b"piece layers"]
            assert found == (PIECE, [LayerWant(root, 3)])
    assert layer_wants(b"not bencode") is None


def test_a_torrent_routes_hash_messages_and_a_v1_one_rejects(tmp_path: Path) -> None:
    """Through a real Peer and Torrent: requests get a reject, replies and rejects sent to
    us are ignored (the connection stays), and the server is made only when needed."""
    from torrent_harness import Swarm

    s = Swarm(tmp_path, seeding=True).start()
    assert s.torrent.hash_server is None
    conn = s.peer()
    conn.new()
    conn.send(m.HashRequest(b"r" * 32, 1, 0, 2, 0))
    assert conn.new_of(m.HashReject) == [m.HashReject(b"r" * 32, 1, 0, 2, 0)]
    conn.send(m.Hashes(b"r" * 32, 1, 0, 2, 0, b"h" * 64), m.HashReject(b"r" * 32, 1, 0, 2, 0))
    assert not conn.closing and conn.new_of(m.HashReject) == []
    assert s.torrent.hash_server is not None and s.torrent.hash_server.rejected == 1


def test_a_peer_that_does_not_read_gets_rejects(v2) -> None:
    from types import SimpleNamespace

    meta, layers = v2
    (root,) = layers
    server, peer = HashServer(meta.v2, Clock().seconds), FakePeer()
    peer.link = SimpleNamespace(write_paused=True)  # type: ignore[attr-defined]
    server.message(peer, m.HashRequest(root, 1, 0, 64, 4))
    assert [type(r) for r in peer.replies()] == [m.HashReject]
    peer.link.write_paused = False  # type: ignore[attr-defined]
    server.message(peer, m.HashRequest(root, 1, 0, 64, 4))
    assert [type(r) for r in peer.replies()] == [m.Hashes]


def hybrid_of(tmp_path: Path) -> tuple[bytes, object]:
    folder = tmp_path / "tree"
    folder.mkdir()
    (folder / "big.bin").write_bytes(os.urandom(40 * PIECE + 123))
    (folder / "small.bin").write_bytes(os.urandom(1000))
    created = create_torrent_v2(folder, hybrid=True, piece_length=PIECE)
    return created.data, decode(created.data)


def test_a_hybrid_serves_its_piece_layers_to_its_v2_swarm(tmp_path: Path) -> None:
    """A hybrid's pieces are checked by SHA-1, but a peer of its v2 swarm that came by the
    btmh magnet asks for the piece layers: its .torrent's are checked and answered."""
    data, top = hybrid_of(tmp_path)
    meta = parse_metainfo(data)
    assert meta.v2 is None and meta.hash_layers is meta.hybrid_layers is not None
    ((root, layer),) = top[b"piece layers"].items()
    server, peer, got = HashServer(meta.hash_layers, Clock().seconds), FakePeer(), b""
    for req in layer_requests(LayerWant(root, 41), PIECE):
        server.message(peer, req)
        (reply,) = peer.replies()
        got += b"".join(verify_layer_reply(reply, root, 41, PIECE) or [b"refused"])
    assert got == layer


def test_a_hybrid_without_sound_layers_is_its_v1_torrent_and_serves_none(tmp_path: Path) -> None:
    from btd.core.bencode import encode
    from btd.core.metainfo import parse_info

    data, top = hybrid_of(tmp_path)
    assert parse_info(parse_metainfo(data).info_bytes).hybrid_layers is None  # no layers
    ((root, layer),) = top[b"piece layers"].items()
    top[b"piece layers"] = {root: layer[:-32] + bytes(32)}  # one piece hash wrong
    meta = parse_metainfo(encode(top))
    assert meta.hybrid_layers is None and meta.hash_layers is None
    assert meta.num_pieces == parse_metainfo(data).num_pieces  # still the v1 torrent

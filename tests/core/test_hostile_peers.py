"""Hostile peers: each is dropped, and neither the torrent nor another peer is harmed.

Every case runs in the same scene: a torrent that has pieces 0..2 (a partial download),
a good peer that has the rest, is unchoked both ways and holds our requests, and the
hostile peer, attached, interested and unchoked by us. After the attack the hostile
peer's connection is aborted, and the good peer is still served, still serves us, and
the download completes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from torrent_harness import (
    CONTENT,
    NUM_PIECES,
    PARTIAL_HAVE,
    PIECE_LENGTH,
    Conn,
    Swarm,
    blocks_of,
    requests_in,
)
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure

from btd.core.bitfield import Bitfield
from btd.core.download import MAX_UNEXPECTED_BLOCKS
from btd.core.peer import MAX_INCOMING_REQUESTS
from btd.core.pieces import PieceState
from btd.core.torrent import REQUEST_TIMEOUT
from btd.core.types import BLOCK_SIZE
from btd.core.wire import messages as m
from btd.core.wire.codec import encode

MISSING_PIECE = 5  # we lack it, the good peer has it


def bits(indexes: Any) -> bytes:
    bf = Bitfield(NUM_PIECES)
    for i in indexes:
        bf.add(i)
    return bf.to_bytes()


@dataclass
class Scene:
    s: Swarm
    good: Conn
    good_reqs: list[m.Request]
    hostile: Conn
    have_before: list[int]


def scene(tmp_path: Path, *, fast: bool = True, extensions: bool = True) -> Scene:
    s = Swarm(tmp_path, partial=True).start()
    assert [i for i in range(NUM_PIECES) if i in s.torrent.book.have] == list(PARTIAL_HAVE)
    good = s.peer()
    good.send(m.Bitfield(bits(range(3, NUM_PIECES))), m.INTERESTED_MSG, m.UNCHOKE_MSG)
    good_reqs = requests_in(good.new())
    assert good_reqs and good.peer.am_interested and not good.peer.am_choking
    hostile = s.peer(fast=fast, extensions=extensions)
    hostile.send(m.INTERESTED_MSG)
    assert not hostile.peer.am_choking
    hostile.new()
    have = [i for i in range(NUM_PIECES) if i in s.torrent.book.have]
    return Scene(s, good, good_reqs, hostile, have)


def assert_unharmed(sc: Scene) -> None:
    s, good = sc.s, sc.good
    assert sc.hostile.aborted, sc.hostile.proto.close_reason
    assert sc.hostile.lost and sc.hostile.peer not in s.torrent.peers
    assert not good.closing and list(s.torrent.peers) == [good.peer]
    assert s.torrent.state == "downloading"
    assert [i for i in range(NUM_PIECES) if i in s.torrent.book.have] == sc.have_before
    s.check()
    good.new()
    good.send(*blocks_of(1))  # the good peer is still served, with the right bytes
    sent = good.new_of(m.Piece)
    assert [p.block for p in sent] == [
        CONTENT[PIECE_LENGTH : PIECE_LENGTH + BLOCK_SIZE],
        CONTENT[PIECE_LENGTH + BLOCK_SIZE : 2 * PIECE_LENGTH],
    ]
    reqs = sc.good_reqs + requests_in(good.new())
    while reqs:  # and it still serves us, to the end
        good.answer(reqs)
        reqs = requests_in(good.new())
    assert s.torrent.complete and s.torrent.state == "seeding"
    s.check()


ATTACKS: dict[str, bytes] = {
    "length prefix over 1 MiB": struct.pack(">IB", (1 << 20) + 1, m.PIECE),
    "bitfield of the wrong length": encode(m.Bitfield(b"\xff")),
    "bitfield with spare bits set": encode(m.Bitfield(b"\xff\xff")),
    "have out of range": encode(m.Have(NUM_PIECES)),
    "have far out of range": encode(m.Have(2**32 - 1)),
    "request for a piece we lack": encode(m.Request(MISSING_PIECE, 0, BLOCK_SIZE)),
    "request over 16 KiB": encode(m.Request(0, 0, BLOCK_SIZE + 1)),
    "request of zero bytes": encode(m.Request(0, 0, 0)),
    "request beyond the piece end": encode(m.Request(2, PIECE_LENGTH - 100, 200)),
    "request index out of range": encode(m.Request(NUM_PIECES, 0, BLOCK_SIZE)),
    "unrequested blocks": b"".join(
        encode(m.Piece(MISSING_PIECE, 0, CONTENT[:BLOCK_SIZE]))
        for _ in range(MAX_UNEXPECTED_BLOCKS + 1)
    ),
    "garbage extension handshake": encode(m.Extended(0, b"not bencode")),
    "extension handshake not a dict": encode(m.Extended(0, b"li1ee")),
    "extension handshake with a bad m": encode(m.Extended(0, b"d1:mi5ee")),
    "a second handshake": encode(m.Handshake(b"\x01" * 20, b"\x02" * 20)),
    "piece message too short": struct.pack(">IBI", 5, m.PIECE, 0),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_hostile_message_drops_only_that_peer(tmp_path: Path, attack: str) -> None:
    sc = scene(tmp_path)
    sc.hostile.send_raw(ATTACKS[attack])
    assert_unharmed(sc)


NOT_NEGOTIATED = {
    "have-all": m.HAVE_ALL_MSG,
    "have-none": m.HAVE_NONE_MSG,
    "reject-request": m.RejectRequest(0, 0, BLOCK_SIZE),
    "allowed-fast": m.AllowedFast(3),
}


@pytest.mark.parametrize("kind", list(NOT_NEGOTIATED))
def test_fast_messages_without_the_fast_extension(tmp_path: Path, kind: str) -> None:
    sc = scene(tmp_path, fast=False)
    sc.hostile.send(NOT_NEGOTIATED[kind])
    assert_unharmed(sc)


def test_extended_message_without_the_extension_protocol(tmp_path: Path) -> None:
    sc = scene(tmp_path, extensions=False)
    sc.hostile.send(m.Extended(0, b"d1:md6:ut_pexi1eee"))
    assert_unharmed(sc)


def test_a_message_split_in_one_byte_feeds_is_still_checked(tmp_path: Path) -> None:
    sc = scene(tmp_path)
    for b in struct.pack(">IB", 2**31, m.BITFIELD):
        sc.hostile.send_raw(bytes([b]))
    assert_unharmed(sc)


def test_request_flood(tmp_path: Path) -> None:
    sc = scene(tmp_path)
    sc.s.verifier.hold_reads = True  # reads in flight: requests pile up in the queue
    flood = encode(m.Request(0, 0, BLOCK_SIZE)) * MAX_INCOMING_REQUESTS  # all wait for a read
    sc.hostile.send_raw(flood)
    assert not sc.hostile.closing  # 2000 queued is allowed (reqq)
    assert len(sc.hostile.peer.incoming) == MAX_INCOMING_REQUESTS
    sc.hostile.send(m.Request(0, 0, BLOCK_SIZE))
    sc.s.verifier.hold_reads = False
    sc.s.verifier.release()
    assert sc.hostile.new_of(m.Piece) == []  # nothing more goes to a dropped peer
    assert_unharmed(sc)


def test_a_peer_that_does_not_read_stops_getting_blocks(tmp_path: Path) -> None:
    sc = scene(tmp_path)
    sc.hostile.proto.pauseProducing()  # what the transport does when its buffer is full
    sc.hostile.send(*[m.Request(0, 0, BLOCK_SIZE)] * 100)
    assert sc.hostile.new_of(m.Piece) == [] and len(sc.hostile.peer.incoming) == 100
    sc.good.send(*blocks_of(2))
    assert len(sc.good.new_of(m.Piece)) == 2  # others are served meanwhile
    sc.hostile.proto.resumeProducing()
    assert len(sc.hostile.new_of(m.Piece)) == 100


def test_unexpected_blocks_within_the_tolerance_are_only_wasted(tmp_path: Path) -> None:
    sc = scene(tmp_path)
    block = CONTENT[:BLOCK_SIZE]
    sc.hostile.send(*[m.Piece(MISSING_PIECE, 0, block)] * MAX_UNEXPECTED_BLOCKS)
    assert not sc.hostile.closing
    assert sc.s.torrent.wasted == MAX_UNEXPECTED_BLOCKS * BLOCK_SIZE
    assert sc.s.torrent.downloaded == 0
    sc.s.check()


def test_fast_peer_may_send_blocks_in_flight_after_choking_us(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    seed = s.seed_peer()
    reqs = requests_in(seed.new())
    seed.send(m.CHOKE_MSG)
    seed.answer(reqs[: MAX_UNEXPECTED_BLOCKS + 2])  # libtorrent still serves allowed-fast ones
    seed.send(
        *[m.RejectRequest(r.index, r.begin, r.length) for r in reqs[MAX_UNEXPECTED_BLOCKS + 2 :]]
    )
    assert not seed.closing and seed.peer.unexpected == 0
    assert s.torrent.downloaded == sum(r.length for r in reqs[: MAX_UNEXPECTED_BLOCKS + 2])
    s.check()


# -- corrupt data ----------------------------------------------------------------------------
def test_sole_source_of_a_corrupt_piece_is_banned_and_the_piece_fetched_elsewhere(
    tmp_path: Path,
) -> None:
    s = Swarm(tmp_path).start()
    bad = s.seed_peer()
    bad_reqs = requests_in(bad.new())
    good = s.seed_peer()
    good_reqs = requests_in(good.new())
    assert good_reqs and not set(good_reqs) & set(bad_reqs)
    target = bad_reqs[0].index
    corrupt = bytearray(CONTENT)
    start = target * PIECE_LENGTH
    corrupt[start : start + 10] = bytes(b ^ 0xFF for b in corrupt[start : start + 10])
    bad_peer, bad_id, bad_addr = bad.peer, bad.peer.peer_id, bad.peer.link.address

    bad.answer([r for r in bad_reqs if r.index == target], data=bytes(corrupt))

    assert (target, False) in s.verifier.verified
    assert bad.aborted and bad_peer not in s.torrent.peers
    assert s.torrent.book.piece_state(target) == PieceState.DOWNLOADING  # asked again...
    again = requests_in(good.new())
    assert {r.index for r in again} >= {target}  # ...of the good peer
    assert s.torrent.wasted == PIECE_LENGTH
    s.check()

    # never again: not its address, not its peer id, not through the tracker
    back = s.open(address=bad_addr)
    back.handshake(peer_id=b"-XX0000-fresh-id-000")
    assert back.peer is None and back.closing
    disguised = s.open()
    disguised.handshake(peer_id=bad_id)
    assert disguised.peer is None and disguised.closing
    assert s.torrent.add_peers([bad_addr]) == 0

    reqs = good_reqs + again
    while reqs:
        good.answer(reqs)
        reqs = requests_in(good.new())
    assert s.torrent.complete
    s.check()
    s.advance(300)
    assert bad_addr not in s.connects


def test_a_banned_peer_that_told_us_its_listen_port_is_not_called_back(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    bad = s.seed_peer()
    bad.send(m.Extended(0, b"d1:mde1:pi7000ee"))
    assert bad.peer.listen_port == 7000
    reqs = requests_in(bad.new())
    corrupt = bytes(len(CONTENT))
    bad.answer([r for r in reqs if r.index == reqs[0].index], data=corrupt)
    assert bad.aborted
    s.advance(300)
    host = bad.proto.address[0]
    assert (host, 7000) not in s.connects
    assert s.torrent.add_peers([(host, 7000)]) == 0


def test_a_good_peer_that_left_is_called_back_on_its_listen_port(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    p = s.seed_peer()
    p.send(m.Extended(0, b"d1:mde1:pi7000ee"))
    p.proto.connectionLost(Failure(ConnectionLost()))
    s.advance(120)
    assert (p.proto.address[0], 7000) in s.connects


def test_a_shared_corrupt_piece_bans_nobody_at_once(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    a = s.seed_peer()
    target = requests_in(a.new())[0].index
    first, second = blocks_of(target)
    a.answer([first], data=bytes(len(CONTENT)))  # one corrupt block, then silence
    s.advance(REQUEST_TIMEOUT + 2)  # its other requests go back to the pool
    b = s.seed_peer()
    assert second in requests_in(b.new())
    b.answer([second])
    assert (target, False) in s.verifier.verified
    assert not a.closing and not b.closing
    assert a.peer.hash_failures == b.peer.hash_failures == 1
    assert s.torrent.candidates.banned == {}
    s.check()

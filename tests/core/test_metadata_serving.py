"""Serving our info dictionary over ut_metadata (BEP 9): a rate per peer (issue 13 class 6)
and never for private torrents (BEP 27, issue 13 class 7)."""

from __future__ import annotations

from pathlib import Path

from torrent_harness import Conn, Swarm

from btd.core.bencode import decode
from btd.core.limits import UT_METADATA_BURST, UT_METADATA_RATE
from btd.core.wire import messages as m
from btd.core.wire import metadata as ut
from btd.core.wire.codec import encode
from btd.core.wire.extension import ExtensionHandshake, encode_extension_handshake

THEIR_ID = 3  # the id the remote peer gives ut_metadata in its handshake


def ready_peer(s: Swarm) -> Conn:
    p = s.peer()
    p.send(m.HAVE_NONE_MSG)
    p.send(encode_extension_handshake(ExtensionHandshake(m={"ut_metadata": THEIR_ID})))
    return p


def our_handshake(p: Conn) -> dict[bytes, object]:
    (hs,) = [x for x in p.all() if isinstance(x, m.Extended) and x.ext_id == 0]
    return decode(hs.payload)


def ask(s: Swarm, p: Conn, piece: int, times: int = 1) -> tuple[int, int]:
    """Send ``times`` requests; (pieces served, rejects) among our answers."""
    request = encode(m.Extended(s.torrent.extensions.ids["ut_metadata"], ut.encode_request(piece)))
    p.new()
    p.send_raw(request * times)
    answers = [ut.decode_message(x.payload) for x in p.new_of(m.Extended) if x.ext_id == THEIR_ID]
    data = sum(a.msg_type == ut.DATA for a in answers)
    return data, sum(a.msg_type == ut.REJECT for a in answers)


def test_requests_beyond_the_rate_are_rejected(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    p = ready_peer(s)
    assert ask(s, p, 0, UT_METADATA_BURST) == (UT_METADATA_BURST, 0)  # the burst is served
    assert ask(s, p, 0, 100) == (0, 100)  # then rejected, not served
    assert s.torrent.extension_traffic.metadata_rejected == 100
    s.clock.advance(1.0)
    served, rejected = ask(s, p, 0, 100)
    assert served == int(UT_METADATA_RATE) and rejected == 100 - served  # refilled at the rate
    other = ready_peer(s)  # the bucket is per peer
    assert ask(s, other, 0, 3) == (3, 0)
    assert not p.proto.closed


def test_a_public_torrent_offers_its_metadata(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True).start()
    p = ready_peer(s)
    hs = our_handshake(p)
    assert b"ut_metadata" in hs[b"m"] and hs[b"metadata_size"] == len(s.meta.info_bytes)


def test_a_private_torrent_neither_offers_nor_serves_metadata(tmp_path: Path) -> None:
    s = Swarm(tmp_path, seeding=True, private=True).start()
    assert s.torrent.private
    p = ready_peer(s)
    hs = our_handshake(p)
    assert b"ut_metadata" not in hs[b"m"] and b"metadata_size" not in hs
    assert ask(s, p, 0, 5) == (0, 0)  # a request anyway (our id guessed) gets nothing
    assert not p.proto.closed

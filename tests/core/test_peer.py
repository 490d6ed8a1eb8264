"""Peer: per-peer wire state, driven by messages, writing through a fake link."""

from __future__ import annotations

from typing import Any

import pytest

from btd.core.bitfield import Bitfield
from btd.core.errors import ProtocolError
from btd.core.extensions import Extensions
from btd.core.peer import (
    DEFAULT_PEER_REQQ,
    MAX_INCOMING_REQUESTS,
    MAX_PIPELINE,
    MIN_PIPELINE,
    SLOW_START_SECONDS,
    Peer,
)
from btd.core.types import BLOCK_SIZE, BlockRef
from btd.core.wire import messages as m
from btd.core.wire.codec import WireDecoder
from btd.core.wire.extension import ExtensionHandshake, encode_extension_handshake

N = 10


class Link:
    def __init__(self) -> None:
        self.address = ("127.0.0.1", 6881)
        self.closed = False
        self.write_paused = False
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def write_sequence(self, parts: list[bytes]) -> None:
        self.data += b"".join(parts)

    def close(self, reason: str, *, error: bool = False) -> None:
        self.closed = True

    def messages(self) -> list[Any]:
        return WireDecoder(expect_handshake=False).feed(bytes(self.data))


class Host:
    num_pieces = N
    extensions = Extensions()  # ut_metadata is our local id 2

    def __init__(self, serve: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.serve = serve

    def __getattr__(self, name: str) -> Any:
        def record(peer: Peer, *args: Any) -> None:
            self.calls.append((name, *args))
            if name == "serve_requests" and self.serve:
                peer.incoming.extend(args[0])

        return record


class Time:
    t = 100.0

    def __call__(self) -> float:
        return self.t


def make(fast: bool = True, ext: bool = True, serve: bool = False) -> tuple[Peer, Host, Link]:
    host, link = Host(serve), Link()
    hs = m.Handshake(b"\x01" * 20, b"-qB4650-abcdefghijkl", m.make_reserved(ext, fast))
    return Peer(host, link, hs, Time(), fast=True, extensions=True), host, link  # type: ignore[arg-type]


def test_features_need_both_sides() -> None:
    hs = m.Handshake(b"\x01" * 20, b"x" * 20, m.make_reserved(True, True))
    p = Peer(Host(), Link(), hs, Time(), fast=False, extensions=True)  # type: ignore[arg-type]
    assert not p.fast and p.extensions
    p, _, _ = make(fast=False, ext=False)
    assert not p.fast and not p.extensions
    assert p.client == "qB4650"


def test_flags_and_host_calls() -> None:
    p, host, _ = make()
    p.on_message(m.UNCHOKE_MSG)
    p.on_message(m.UNCHOKE_MSG)  # no change, no call
    p.on_message(m.INTERESTED_MSG)
    p.on_message(m.CHOKE_MSG)
    p.on_message(m.NOT_INTERESTED_MSG)
    assert [c[0] for c in host.calls] == [
        "peer_unchoked_us",
        "peer_interest_changed",
        "peer_choked_us",
        "peer_interest_changed",
    ]
    assert p.peer_choking and not p.peer_interested


def test_have_bitfield_and_have_all() -> None:
    p, host, _ = make()
    p.on_message(m.Have(3))
    p.on_message(m.Have(3))
    assert host.calls == [("peer_has_changed", 3)]
    with pytest.raises(ProtocolError):
        p.on_message(m.Have(N))
    q, host, _ = make()
    q.on_message(m.HAVE_ALL_MSG)
    assert q.has.complete and host.calls == [("peer_has_changed", None)]


def bitfield(*indices: int) -> m.Bitfield:
    bf = Bitfield(N)
    for i in indices:
        bf.add(i)
    return m.Bitfield(bf.to_bytes())


def test_first_piece_set_resets_nothing() -> None:
    for msg in (bitfield(1, 2), m.HAVE_ALL_MSG, m.HAVE_NONE_MSG):
        p, host, _ = make()
        p.on_message(msg)
        assert host.calls == [("peer_has_changed", None)]


def test_a_later_piece_set_replaces_the_earlier_one() -> None:
    """libtorrent's rule: a late or repeated BITFIELD/HAVE_ALL/HAVE_NONE is no error; the
    torrent first forgets the old set (reset), then learns the new one."""
    p, host, _ = make()
    p.on_message(bitfield(3))
    p.on_message(bitfield(4, 5))
    assert set(p.has) == {4, 5}
    p.on_message(m.HAVE_ALL_MSG)
    assert p.has.complete
    p.on_message(m.HAVE_NONE_MSG)
    assert p.has.count == 0
    p.on_message(bitfield(7))
    assert set(p.has) == {7}
    changed = ("peer_has_changed", None)
    reset = ("peer_pieces_reset",)
    assert host.calls == [changed] + [reset, changed] * 4


def test_haves_before_the_piece_set_are_replaced_by_it() -> None:
    p, host, _ = make()
    p.on_message(m.Have(3))
    p.on_message(bitfield(5))
    assert set(p.has) == {5}
    assert host.calls == [
        ("peer_has_changed", 3),
        ("peer_pieces_reset",),
        ("peer_has_changed", None),
    ]
    q, host, _ = make()
    q.on_message(m.Have(3))
    q.on_message(m.HAVE_ALL_MSG)
    assert q.has.complete and host.calls[-1] == ("peer_has_changed", None)


def test_requests_are_checked_then_handed_to_the_torrent() -> None:
    p, host, _ = make()
    p.on_message(m.Request(1, 0, BLOCK_SIZE))
    assert host.calls == [("serve_requests", [BlockRef(1, 0, BLOCK_SIZE)])]
    for bad in (m.Request(N, 0, 1), m.Request(1, 0, 0), m.Request(1, 0, BLOCK_SIZE + 1)):
        with pytest.raises(ProtocolError):
            p.on_message(bad)


def test_request_flood_is_refused_at_the_queue_limit() -> None:
    p, _, _ = make(serve=True)
    for _ in range(MAX_INCOMING_REQUESTS):
        p.on_message(m.Request(0, 0, BLOCK_SIZE))
    with pytest.raises(ProtocolError, match="flood"):
        p.on_message(m.Request(0, 0, BLOCK_SIZE))


@pytest.mark.parametrize("fast", [True, False])
def test_cancel_and_choke_drop_queued_requests(fast: bool) -> None:
    p, _, link = make(fast=fast, serve=True)
    p.set_choking(False)
    for b in (0, BLOCK_SIZE):
        p.on_message(m.Request(0, b, BLOCK_SIZE))
    p.on_message(m.Cancel(0, 0, BLOCK_SIZE))
    p.on_message(m.Cancel(0, 0, BLOCK_SIZE))  # already gone: a race, not an error
    assert list(p.incoming) == [BlockRef(0, BLOCK_SIZE, BLOCK_SIZE)]
    p.set_choking(True)
    assert not p.incoming
    rejects = [x for x in link.messages() if isinstance(x, m.RejectRequest)]
    want = [m.RejectRequest(0, 0, BLOCK_SIZE), m.RejectRequest(0, BLOCK_SIZE, BLOCK_SIZE)]
    assert rejects == (want if fast else [])


@pytest.mark.parametrize(
    "msg", [m.HAVE_ALL_MSG, m.HAVE_NONE_MSG, m.RejectRequest(0, 0, 1), m.AllowedFast(0)]
)
def test_fast_messages_need_the_fast_extension(msg: Any) -> None:
    p, _, _ = make(fast=False)
    with pytest.raises(ProtocolError, match="fast"):
        p.on_message(msg)


def test_allowed_fast_is_bounded_and_lets_us_request_while_choked() -> None:
    p, host, _ = make()
    for i in range(N):
        p.on_message(m.AllowedFast(i))
    assert p.allowed_fast == set(range(N))
    assert host.calls.count(("peer_unchoked_us",)) == N
    with pytest.raises(ProtocolError):
        p.on_message(m.AllowedFast(N))


def test_extension_handshake() -> None:
    p, host, _ = make()
    hs = ExtensionHandshake(m={"ut_pex": 2, "ut_metadata": 3}, v="libtorrent/2", p=7000, reqq=10**6)
    p.on_message(encode_extension_handshake(hs))
    assert p.ext_ids == {"ut_pex": 2, "ut_metadata": 3}
    assert p.reqq == MAX_PIPELINE and p.client == "libtorrent/2" and p.listen_port == 7000
    assert host.calls == [("extensions_ready",)]
    p.on_message(encode_extension_handshake(ExtensionHandshake(m={"ut_pex": 0})))
    assert p.ext_ids == {"ut_metadata": 3} and p.supports("ut_metadata")
    host.calls.clear()
    p.on_message(m.Extended(2, b"payload"))  # our id for ut_metadata
    p.on_message(m.Extended(77, b"payload"))  # an id we never gave out: ignored
    assert host.calls == [("extension_message", "ut_metadata", b"payload")]
    for bad in (b"garbage", b"li1ee", b"d1:mi1ee"):
        with pytest.raises(ProtocolError):
            p.on_message(m.Extended(0, bad))


def test_extended_messages_need_the_extension_bit() -> None:
    p, _, _ = make(ext=False)
    with pytest.raises(ProtocolError):
        p.on_message(m.Extended(0, b"de"))


def test_pipeline_depth_follows_the_rate_within_bounds() -> None:
    p, _, _ = make()
    assert p.reqq == DEFAULT_PEER_REQQ and p.pipeline_depth() == MIN_PIPELINE
    p.download.add(10**9)
    assert p.pipeline_depth() == min(DEFAULT_PEER_REQQ, MAX_PIPELINE)


def test_slow_start_grows_the_pipeline_by_half_per_refill_up_to_the_bounds() -> None:
    p, _, _ = make()
    assert p.depth == MIN_PIPELINE and p.slow_start
    depths = []
    for _ in range(20):
        p.grow_depth()
        depths.append(p.depth)
    assert depths[:3] == [MIN_PIPELINE * 3 // 2, MIN_PIPELINE * 9 // 4, MIN_PIPELINE * 27 // 8]
    assert depths[-1] == min(DEFAULT_PEER_REQQ, MAX_PIPELINE)  # bounded by the peer's reqq
    p.reqq = 40
    p.grow_depth()
    assert p.depth == 40


def test_slow_start_keeps_its_depth_at_ticks_then_the_rate_decides() -> None:
    p, _, _ = make()
    p.update_depth()  # nothing received yet: no change
    assert p.depth == MIN_PIPELINE and p.slow_start
    for _ in range(5):
        p.grow_depth()
    grown = p.depth
    assert grown > MIN_PIPELINE
    p.now.t += SLOW_START_SECONDS / 2  # type: ignore[attr-defined]
    p.update_depth()  # the rate meter knows too little yet: the depth does not shrink
    assert p.depth == grown and p.slow_start
    p.now.t += SLOW_START_SECONDS  # type: ignore[attr-defined]
    p.update_depth()  # slow start is over: a few seconds of the (small) measured rate
    assert not p.slow_start and p.depth == p.pipeline_depth() == MIN_PIPELINE
    p.grow_depth()  # only called during slow start; harmless after
    p.update_depth()
    assert p.depth == MIN_PIPELINE


def test_pieces_back_to_back_go_to_the_torrent_as_one_run_in_order() -> None:
    p, host, link = make()
    a, b, c = m.Piece(1, 0, b"ab"), m.Piece(1, 2, b"cd"), m.Piece(2, 0, b"ef")
    p.on_messages([a, b, m.Have(3), c])
    assert host.calls == [
        ("blocks_received", [a, b]),
        ("peer_has_changed", 3),
        ("blocks_received", [c]),
    ]
    assert p.download.total == 6 and not p.snubbed
    host.calls.clear()
    p.on_message(a)  # one at a time: a run of one
    assert host.calls == [("blocks_received", [a])]


def test_a_run_stops_at_a_closed_link() -> None:
    p, host, link = make()
    a = m.Piece(1, 0, b"ab")

    def close(*_: Any) -> None:
        link.closed = True

    host.peer_has_changed = close  # type: ignore[method-assign]
    p.on_messages([a, m.Have(3), a, m.Have(4)])
    assert host.calls == [("blocks_received", [a])]  # nothing after the close


def test_nothing_is_written_to_a_closed_link() -> None:
    p, _, link = make()
    link.closed = True
    p.set_interested(True)
    p.request([BlockRef(0, 0, BLOCK_SIZE)])
    p.send_block(BlockRef(0, 0, 4), b"abcd")
    p.cancel(BlockRef(0, 0, BLOCK_SIZE))
    assert link.data == b""


def test_outgoing_messages() -> None:
    p, _, link = make()
    p.set_interested(True)
    p.set_interested(True)
    p.request([BlockRef(0, 0, BLOCK_SIZE), BlockRef(0, BLOCK_SIZE, 100)])
    p.send_block(BlockRef(1, 0, 4), b"abcd")
    p.set_choking(False)
    assert link.messages() == [
        m.INTERESTED_MSG,
        m.Request(0, 0, BLOCK_SIZE),
        m.Request(0, BLOCK_SIZE, 100),
        m.Piece(1, 0, b"abcd"),
        m.UNCHOKE_MSG,
    ]
    assert p.upload.total == 4
    info = p.info()
    assert info["client"] == "qB4650" and info["am_interested"] and info["uploaded"] == 4


def test_private_torrents_advertise_neither_metadata_nor_plugin_extensions() -> None:
    class Handler:
        pass

    class Friendly:
        allowed_on_private = True

    ext = Extensions({"ut_pex": Handler(), "x_ok": Friendly()})
    assert ext.advertised(private=False) == ext.ids
    assert set(ext.advertised(private=True)) == {"x_ok"}  # BEP 27: no ut_metadata, no PEX
    assert ext.ids["ut_pex"] == 1 and ext.ids["ut_metadata"] == 2

"""KRPC codec: round trips, strict refusals, and fuzzing (only KrpcError ever escapes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core.bencode import encode
from btd.plugins.dht import krpc
from btd.plugins.dht.krpc import KrpcError, NodeInfo

A = b"A" * 20
B = b"B" * 20
IH = bytes(range(20))


@pytest.mark.parametrize(
    "query",
    [
        krpc.Ping(b"aa", A),
        krpc.FindNode(b"t1", A, B),
        krpc.GetPeers(b"\x00\x01\x02\x03", A, IH),
        krpc.AnnouncePeer(b"zz", A, IH, 6881, b"tok", False),
        krpc.AnnouncePeer(b"zz", A, IH, 6881, b"tok", True),
    ],
)
def test_queries_round_trip(query: krpc.Query) -> None:
    assert krpc.decode_message(krpc.encode_query(query)) == query


def test_bep5_example_ping_decodes() -> None:
    data = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
    assert krpc.decode_message(data) == krpc.Ping(b"aa", b"abcdefghij0123456789")


def test_response_with_nodes_values_token() -> None:
    nodes = (NodeInfo(B, "127.0.0.2", 6881), NodeInfo(IH, "10.1.2.3", 1))
    data = krpc.encode_response(b"aa", A, nodes=nodes, values=[("127.0.0.3", 51413)], token=b"x")
    msg = krpc.decode_message(data)
    assert msg == krpc.Response(b"aa", A, nodes, (("127.0.0.3", 51413),), b"x")


def test_error_round_trip_and_unknown_method() -> None:
    assert krpc.decode_message(krpc.encode_error(b"aa", 203, "bad token")) == krpc.Error(
        b"aa", 203, "bad token"
    )
    data = encode({b"t": b"aa", b"y": b"q", b"q": b"vote", b"a": {b"id": A}})
    assert krpc.decode_message(data) == krpc.UnknownQuery(b"aa", A, b"vote")


def test_read_only_flag_and_implied_port_without_port() -> None:
    data = encode({b"t": b"aa", b"y": b"q", b"q": b"ping", b"a": {b"id": A}, b"ro": 1})
    assert krpc.decode_message(data).read_only
    args = {b"id": A, b"info_hash": IH, b"token": b"t", b"implied_port": 1}
    data = encode({b"t": b"aa", b"y": b"q", b"q": b"announce_peer", b"a": args})
    msg = krpc.decode_message(data)
    assert isinstance(msg, krpc.AnnouncePeer) and msg.implied_port and msg.port == 0


def test_ipv6_values_are_skipped() -> None:
    data = encode(
        {b"t": b"a", b"y": b"r", b"r": {b"id": A, b"values": [b"x" * 18, b"\x7f\0\0\1\0\x50"]}}
    )
    assert krpc.decode_message(data).values == (("127.0.0.1", 80),)


def _q(args: dict, method: bytes = b"get_peers", **top: object) -> bytes:
    return encode({b"t": b"aa", b"y": b"q", b"q": method, b"a": args, **top})


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"i1e",
        b"le",
        b"d1:y1:qe",  # no transaction id
        encode({b"t": b"", b"y": b"q"}),  # empty transaction id
        encode({b"t": b"x" * 33, b"y": b"r", b"r": {b"id": A}}),
        encode({b"t": b"aa", b"y": b"x"}),
        encode({b"t": b"aa", b"y": b"q", b"q": b"ping"}),  # no arguments
        _q({b"id": A[:19]}, b"ping"),
        _q({b"id": 5}, b"ping"),
        _q({b"id": A}),  # get_peers without info_hash
        _q({b"id": A, b"info_hash": IH[:10]}),
        _q({b"id": A, b"target": 1}, b"find_node"),
        _q({b"id": A, b"info_hash": IH, b"token": b"t"}, b"announce_peer"),  # no port
        _q({b"id": A, b"info_hash": IH, b"token": b"t", b"port": 0}, b"announce_peer"),
        _q({b"id": A, b"info_hash": IH, b"token": b"t", b"port": 70000}, b"announce_peer"),
        _q({b"id": A, b"info_hash": IH, b"token": b"", b"port": 1}, b"announce_peer"),
        _q({b"id": A, b"info_hash": IH, b"port": 1}, b"announce_peer"),
        encode({b"t": b"aa", b"y": b"r", b"r": {b"id": A, b"nodes": b"x" * 25}}),
        encode({b"t": b"aa", b"y": b"r", b"r": {b"id": A, b"values": [b"x" * 5]}}),
        encode({b"t": b"aa", b"y": b"r", b"r": {b"id": A, b"values": b"xxxxxx"}}),
        encode({b"t": b"aa", b"y": b"r", b"r": {b"id": A, b"token": 3}}),
        encode({b"t": b"aa", b"y": b"r", b"r": []}),
        encode({b"t": b"aa", b"y": b"e", b"e": [201]}),
        encode({b"t": b"aa", b"y": b"e", b"e": [b"x", b"y"]}),
        encode({b"t": b"aa", b"y": b"r", b"r": {b"id": A}}) + b"junk",
        encode({b"t": b"aa", b"y": b"r", b"r": {b"id": A, b"pad": b"x" * 9000}}),
        b"d1:t2:aa1:y1:q" + b"l" * 50 + b"e" * 50 + b"e",
    ],
)
def test_malformed_messages_raise_krpc_error(data: bytes) -> None:
    with pytest.raises(KrpcError):
        krpc.decode_message(data)


def test_compact_encodings() -> None:
    assert krpc.encode_peer("127.0.0.1", 6881) == b"\x7f\0\0\1\x1a\xe1"
    assert krpc.decode_peer(b"\x7f\0\0\1\x1a\xe1") == ("127.0.0.1", 6881)
    nodes = [NodeInfo(A, "1.2.3.4", 5)]
    assert krpc.decode_nodes(krpc.encode_nodes(nodes)) == tuple(nodes)
    with pytest.raises(KrpcError):
        krpc.encode_peer("::1", 1)
    with pytest.raises(KrpcError):
        krpc.decode_peer(b"12345")


def test_usable() -> None:
    assert krpc.usable("127.0.0.2", 1)
    assert not krpc.usable("127.0.0.2", 0)
    assert not krpc.usable("0.0.0.0", 80)
    assert not krpc.usable("224.0.0.1", 80)
    assert not krpc.usable("255.255.255.255", 80)
    assert not krpc.usable("::1", 80)
    assert not krpc.usable("example.org", 80)


def _decode_only_krpc_error(data: bytes) -> None:
    try:
        msg = krpc.decode_message(data)
    except KrpcError:
        return
    assert isinstance(
        msg,
        (
            krpc.Ping,
            krpc.FindNode,
            krpc.GetPeers,
            krpc.AnnouncePeer,
            krpc.UnknownQuery,
            krpc.Response,
            krpc.Error,
        ),
    )


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_only_krpc_error(data)


_leaf = st.one_of(
    st.integers(-(2**70), 2**70),
    st.binary(max_size=30),
    st.sampled_from(
        [
            A,
            IH,
            b"q",
            b"r",
            b"e",
            b"ping",
            b"get_peers",
            b"find_node",
            b"announce_peer",
            b"x" * 26,
            b"x" * 6,
        ]
    ),
)
_keys = st.sampled_from(
    [
        b"t",
        b"y",
        b"q",
        b"a",
        b"r",
        b"e",
        b"id",
        b"target",
        b"info_hash",
        b"port",
        b"token",
        b"implied_port",
        b"nodes",
        b"values",
        b"ro",
    ]
)
_value = st.recursive(
    _leaf,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(_keys, c, max_size=6)),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(_keys, _value, max_size=6))
def test_fuzz_structured_messages(msg: dict) -> None:
    _decode_only_krpc_error(encode(msg))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.binary(min_size=1, max_size=4))
def test_fuzz_mutated_valid_message(pos: int, patch: bytes) -> None:
    data = bytearray(
        krpc.encode_response(
            b"aa", A, nodes=[NodeInfo(B, "1.2.3.4", 5)], values=[("5.6.7.8", 9)], token=b"tok"
        )
    )
    pos %= len(data)
    data[pos : pos + len(patch)] = patch
    _decode_only_krpc_error(bytes(data))

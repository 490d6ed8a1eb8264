"""The ut_pex codec: round trips, libtorrent's layout, strict validation, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core import bencode
from btd.core.errors import ProtocolError
from btd.plugins.pex_codec import (
    MAX_ENTRIES,
    MAX_MESSAGE,
    PexMessage,
    PexPeer,
    decode_pex,
    encode_pex,
    normalize_host,
)


def test_round_trip_both_families() -> None:
    msg = PexMessage(
        added=(
            PexPeer("10.0.0.1", 6881, 0x12),
            PexPeer("2001:db8::1", 51413, 0x01),
            PexPeer("127.0.0.1", 1, 0),
        ),
        dropped=(("192.168.1.2", 7000), ("::1", 65535)),
    )
    back = decode_pex(encode_pex(msg))
    # IPv4 entries come first after a round trip: they travel in separate lists
    assert back.added == (msg.added[0], msg.added[2], msg.added[1])
    assert back.dropped == msg.dropped


def test_wire_layout_matches_bep11() -> None:
    payload = encode_pex(
        PexMessage(added=(PexPeer("1.2.3.4", 0x1AE1, 0x02),), dropped=(("5.6.7.8", 80),))
    )
    d = bencode.decode(payload)
    assert d == {
        b"added": bytes([1, 2, 3, 4, 0x1A, 0xE1]),
        b"added.f": b"\x02",
        b"added6": b"",
        b"added6.f": b"",
        b"dropped": bytes([5, 6, 7, 8, 0, 80]),
        b"dropped6": b"",
    }


def test_v4_mapped_ipv6_goes_in_the_ipv4_list() -> None:
    d = bencode.decode(encode_pex(PexMessage(added=(PexPeer("::ffff:10.1.2.3", 5),))))
    assert d[b"added"] == bytes([10, 1, 2, 3, 0, 5]) and d[b"added6"] == b""


def test_flags_are_optional() -> None:
    payload = bencode.encode({b"added": bytes([9, 9, 9, 9, 0, 1]) * 2})
    assert decode_pex(payload).added == (PexPeer("9.9.9.9", 1, 0), PexPeer("9.9.9.9", 1, 0))


def test_empty_dict_and_unknown_keys() -> None:
    assert decode_pex(b"de") == PexMessage()
    assert decode_pex(bencode.encode({b"x": [1, 2], b"added": b""})) == PexMessage()


def test_decoding_keeps_the_first_50() -> None:
    added = b"".join(bytes([10, 0, i // 256, i % 256, 0, 1]) for i in range(120))
    dropped6 = b"".join(bytes(15) + bytes([i, 0, 2]) for i in range(70))
    msg = decode_pex(
        bencode.encode({b"added": added, b"added.f": bytes(120), b"dropped6": dropped6})
    )
    assert len(msg.added) == MAX_ENTRIES and msg.added[0].host == "10.0.0.0"
    assert len(msg.dropped) == MAX_ENTRIES and msg.dropped[0] == ("::", 2)


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"le", "not a dict"),
        (b"i3e", "not a dict"),
        (b"d5:added", "not valid bencode"),
        (bencode.encode({b"added": b"12345"}), "multiple of 6"),
        (bencode.encode({b"dropped": b"1234567"}), "multiple of 6"),
        (bencode.encode({b"added6": bytes(17)}), "multiple of 18"),
        (bencode.encode({b"dropped6": bytes(19)}), "multiple of 18"),
        (bencode.encode({b"added": bytes(12), b"added.f": b"\x00"}), "1 flags for 2 peers"),
        (bencode.encode({b"added6": bytes(18), b"added6.f": b""}), "0 flags for 1 peers"),
        (bencode.encode({b"added": 5}), "not a string"),
        (bencode.encode({b"added": bytes(6), b"added.f": [1]}), "not a string"),
        (bencode.encode({b"dropped": {b"a": b"b"}}), "not a string"),
        (b"d5:added6:" + bytes(6) + b"e" + b"x", "not valid bencode"),
    ],
)
def test_malformed_messages(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_pex(payload)


def test_oversized_message_is_refused_before_decoding() -> None:
    payload = bencode.encode({b"added": bytes(6 * (MAX_MESSAGE // 6 + 1))})
    with pytest.raises(ProtocolError, match="limit"):
        decode_pex(payload)


def test_too_many_tokens_is_refused() -> None:
    payload = bencode.encode({b"x": list(range(5000))})
    with pytest.raises(ProtocolError, match="bencode"):
        decode_pex(payload)


@pytest.mark.parametrize(
    "msg",
    [
        PexMessage(added=(PexPeer("example.org", 1),)),
        PexMessage(added=(PexPeer("1.2.3.4", 0),)),
        PexMessage(added=(PexPeer("1.2.3.4", 65536),)),
        PexMessage(added=(PexPeer("1.2.3.4", 1, 256),)),
        PexMessage(dropped=(("fe80::1%eth0", 1),)),
        PexMessage(added=tuple(PexPeer("1.2.3.4", i + 1) for i in range(MAX_ENTRIES + 1))),
    ],
)
def test_encoder_refuses_what_cannot_be_sent(msg: PexMessage) -> None:
    with pytest.raises(ValueError):
        encode_pex(msg)


def test_normalize_host() -> None:
    assert normalize_host("::ffff:127.0.0.1") == ("127.0.0.1", 4)
    assert normalize_host("2001:0db8:0::1") == ("2001:db8::1", 6)
    assert normalize_host("localhost") is None


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda ip: ip.ipv4_mapped is None).map(lambda ip: ip.compressed)
ports = st.integers(1, 65535)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(ipv4, ipv6), ports, st.integers(0, 255)), max_size=MAX_ENTRIES),
    st.lists(st.tuples(st.one_of(ipv4, ipv6), ports), max_size=MAX_ENTRIES),
)
def test_round_trip_property(added: list, dropped: list) -> None:
    msg = PexMessage(tuple(PexPeer(h, p, f) for h, p, f in added), tuple(dropped))
    back = decode_pex(encode_pex(msg))
    assert list(back.added) == [p for p in msg.added if ":" not in p.host] + [
        p for p in msg.added if ":" in p.host
    ]
    assert list(back.dropped) == [a for a in dropped if ":" not in a[0]] + [
        a for a in dropped if ":" in a[0]
    ]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_protocol_error(data: bytes) -> None:
    try:
        decode_pex(data)
    except ProtocolError:
        pass


fields = st.sampled_from(
    [b"added", b"added.f", b"added6", b"added6.f", b"dropped", b"dropped6", b"x"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        fields,
        st.one_of(st.binary(max_size=60), st.integers(), st.lists(st.integers(), max_size=3)),
        max_size=7,
    )
)
def test_random_dicts_only_raise_protocol_error(d: dict) -> None:
    try:
        msg = decode_pex(bencode.encode(d))
    except ProtocolError:
        return
    assert len(msg.added) <= MAX_ENTRIES and len(msg.dropped) <= MAX_ENTRIES
    for peer in msg.added:
        assert normalize_host(peer.host) is not None and 0 <= peer.flags < 256

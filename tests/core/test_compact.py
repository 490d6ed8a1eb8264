"""The compact peer codec: bytes in, bytes out, and what it refuses."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from btd.core.compact import (
    CompactError,
    decode_peer,
    decode_peers,
    encode_peer,
    encode_peers,
    peer_len,
)

ports = st.integers(0, 0xFFFF)
v4 = st.builds(lambda n, p: (str(ipaddress.IPv4Address(n)), p), st.integers(0, 2**32 - 1), ports)
v6 = st.builds(
    lambda n, p: (ipaddress.IPv6Address(n).compressed, p), st.integers(0, 2**128 - 1), ports
)


def test_known_bytes() -> None:
    assert encode_peer("127.0.0.1", 6881) == b"\x7f\0\0\1\x1a\xe1"
    assert decode_peers(b"\x7f\0\0\1\x1a\xe1\x0a\0\0\2\0\0") == [
        ("127.0.0.1", 6881),
        ("10.0.0.2", 0),
    ]
    six = b"\0" * 15 + b"\1" + b"\x1a\xe1"
    assert encode_peer("::1", 6881) == six
    assert decode_peers(six, ipv6=True) == [("::1", 6881)]
    assert decode_peer(six) == ("::1", 6881)
    assert decode_peers(b"") == [] and decode_peers(b"", ipv6=True) == []
    assert (peer_len(), peer_len(True)) == (6, 18)


@given(st.lists(v4, max_size=40))
def test_ipv4_round_trip(peers: list[tuple[str, int]]) -> None:
    blob = encode_peers(peers)
    assert len(blob) == 6 * len(peers)
    assert decode_peers(blob) == peers
    assert [decode_peer(blob[i : i + 6]) for i in range(0, len(blob), 6)] == peers


@given(st.lists(v6, max_size=20))
def test_ipv6_round_trip(peers: list[tuple[str, int]]) -> None:
    blob = encode_peers(peers, ipv6=True)
    assert decode_peers(blob, ipv6=True) == peers


@given(st.binary(max_size=200), st.booleans())
def test_any_blob_decodes_or_is_refused(blob: bytes, ipv6: bool) -> None:
    size = 18 if ipv6 else 6
    if len(blob) % size:
        with pytest.raises(CompactError, match=f"not a multiple of {size}"):
            decode_peers(blob, ipv6)
    else:
        peers = decode_peers(blob, ipv6)
        assert encode_peers(peers, ipv6) == blob  # bytes in, the same bytes out


@pytest.mark.parametrize(
    ("host", "port"),
    [("localhost", 1), ("1.2.3.4", -1), ("1.2.3.4", 65536), ("fe80::1%eth0", 1), ("1.2.3.4", True)],
)
def test_encode_refuses(host: str, port: int) -> None:
    with pytest.raises(CompactError):
        encode_peer(host, port)


def test_decode_peer_length_and_family_mixing() -> None:
    with pytest.raises(CompactError):
        decode_peer(b"12345")
    with pytest.raises(CompactError, match="not an IPv4"):
        encode_peers([("::1", 1)])
    with pytest.raises(CompactError, match="not an IPv6"):
        encode_peers([("1.2.3.4", 1)], ipv6=True)
    assert issubclass(CompactError, ValueError)

"""BEP 52 hash request (21), hashes (22) and hash reject (23): exact bytes, strict sizes,
bounded replies."""

from __future__ import annotations

import struct

import pytest

from btd.core.errors import ProtocolError
from btd.core.limits import HASH_PROOF_MAX, HASH_REQUEST_MAX_LENGTH
from btd.core.wire.codec import WireDecoder, encode
from btd.core.wire.messages import Handshake, Hashes, HashReject, HashRequest, Have, make_reserved

ROOT = bytes(range(32))


def fields(base: int, index: int, length: int, proof: int) -> bytes:
    return ROOT + struct.pack(">IIII", base, index, length, proof)


def frame(mid: int, payload: bytes) -> bytes:
    return struct.pack(">IB", 1 + len(payload), mid) + payload


def decode(data: bytes) -> list:
    return WireDecoder(expect_handshake=False).feed(data)


def test_hash_request_and_reject_bytes() -> None:
    req = HashRequest(ROOT, 2, 512, 512, 7)
    assert encode(req) == frame(21, fields(2, 512, 512, 7))
    assert encode(HashReject(ROOT, 2, 512, 512, 7)) == frame(23, fields(2, 512, 512, 7))
    assert len(encode(req)) == 4 + 49


def test_hashes_bytes_and_round_trip() -> None:
    hashes = b"".join(bytes([i]) * 32 for i in range(5))
    msg = Hashes(ROOT, 2, 0, 4, 3, hashes)
    assert encode(msg) == frame(22, fields(2, 0, 4, 3) + hashes)
    stream = encode(msg) + encode(HashRequest(ROOT, 0, 8, 2, 1)) + encode(Have(3))
    stream += encode(HashReject(ROOT, 0, 8, 2, 1))
    assert decode(stream) == [
        msg,
        HashRequest(ROOT, 0, 8, 2, 1),
        Have(3),
        HashReject(ROOT, 0, 8, 2, 1),
    ]
    assert msg.request() == HashRequest(ROOT, 2, 0, 4, 3)


def test_split_feeds_decode_the_same() -> None:
    data = encode(Hashes(ROOT, 0, 0, 2, 0, b"a" * 64)) + encode(HashRequest(ROOT, 1, 2, 2, 4))
    dec = WireDecoder(expect_handshake=False)
    out = []
    for i in range(len(data)):
        out += dec.feed(data[i : i + 1])
    assert out == decode(data)


@pytest.mark.parametrize("mid", [21, 23])
@pytest.mark.parametrize("extra", [-1, 1])
def test_request_and_reject_sizes_are_strict(mid: int, extra: int) -> None:
    payload = fields(0, 0, 2, 1)
    payload = payload[:extra] if extra < 0 else payload + b"x"
    with pytest.raises(ProtocolError, match="length"):
        decode(frame(mid, payload))


def test_request_values_are_for_the_answerer_to_judge() -> None:
    # A request for too much is not a protocol error: it is answered with a reject.
    big = HashRequest(ROOT, 0, 0, HASH_REQUEST_MAX_LENGTH * 4, 40)
    assert decode(encode(big)) == [big]


@pytest.mark.parametrize(
    "payload, why",
    [
        (fields(0, 0, 2, 0)[:-1], "expected >= 49"),
        (fields(0, 0, 2, 0) + b"h" * 33, "multiple of 32"),
        (fields(0, 0, 2, 0) + b"h" * 32, "1 hashes for 2"),
        (fields(0, 0, 0, 0), "not in 1.."),
        (fields(0, 0, HASH_REQUEST_MAX_LENGTH + 1, 0), "not in 1.."),
        (fields(0, 0, 1, 40) + b"h" * 32 * (HASH_PROOF_MAX + 2), "hashes for 1"),
    ],
)
def test_bad_hashes_replies_are_protocol_errors(payload: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        decode(frame(22, payload))


def test_value_objects_refuse_wrong_sizes() -> None:
    with pytest.raises(ValueError):
        HashRequest(b"short", 0, 0, 1, 0)
    with pytest.raises(ValueError):
        Hashes(ROOT, 0, 0, 1, 0, b"x" * 31)


def test_v2_reserved_bit() -> None:
    hs = Handshake(b"i" * 20, b"p" * 20, make_reserved(v2=True))
    assert hs.supports_v2 and hs.reserved[7] & 0x10
    assert not Handshake(b"i" * 20, b"p" * 20, make_reserved()).supports_v2

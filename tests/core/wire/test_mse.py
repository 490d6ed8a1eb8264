"""MSE/PE handshake, bytes in and bytes out: both sides against each other, fed in every
way a socket may split the stream, and every bounded field overrun by a stranger."""

from __future__ import annotations

import hashlib
import random
import struct

import pytest
from mse_forge import forged_request, public_key

from btd.core.wire.mse import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    KEY_LENGTH,
    MAX_IA,
    MAX_PAD,
    PRIME,
    VC,
    Initiator,
    MseError,
    Responder,
    choose,
    req2_key,
)

INFO_HASH = hashlib.sha1(b"a torrent").digest()
HANDSHAKE = b"\x13BitTorrent protocol" + bytes(8) + INFO_HASH + b"-BT0001-" + bytes(12)


def lookup_for(*hashes: bytes):
    table = {req2_key(h): h for h in hashes}
    return table.get


class Side:
    """One machine and everything it decrypted after its handshake."""

    def __init__(self, machine) -> None:
        self.machine = machine
        self.stream = b""

    def feed(self, data: bytes, chunk: int | None) -> bytes:
        out = b""
        step = chunk or max(len(data), 1)
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            done = self.machine.established
            if done is not None:
                self.stream += done.decrypt(piece)
                continue
            out += self.machine.receive(piece)
            if self.machine.established is not None:
                self.stream += self.machine.established.payload
        return out


def pump(a: Initiator, b: Responder, *, chunk=None, after_a=b"", after_b=b""):
    """Run both machines to the end, every flight split into ``chunk``-sized reads;
    ``after_a``/``after_b`` is what each side sends right behind its handshake."""
    side_a, side_b = Side(a), Side(b)
    to_b = a.start()
    for _ in range(10):
        to_a = side_b.feed(to_b, chunk)
        if b.established is not None and after_b:
            to_a += b.established.encrypt(after_b)
            after_b = b""
        to_b = side_a.feed(to_a, chunk)
        if a.established is not None and after_a:
            to_b += a.established.encrypt(after_a)
            after_a = b""
        if not to_b and not after_a and not after_b:
            break
    assert a.established is not None and b.established is not None
    return side_a, side_b


@pytest.mark.parametrize("chunk", [None, 1, 7, 97, 600])
def test_rc4_both_ways(chunk) -> None:
    a = Initiator(INFO_HASH, HANDSHAKE, provide=CRYPTO_RC4)
    b = Responder(lookup_for(hashlib.sha1(b"other").digest(), INFO_HASH))
    side_a, side_b = pump(a, b, chunk=chunk, after_a=b"from a", after_b=b"from b")
    ea, eb = a.established, b.established
    assert ea.rc4 and eb.rc4
    assert eb.info_hash == INFO_HASH
    assert side_b.stream == HANDSHAKE + b"from a"
    assert side_a.stream == b"from b"
    # The streams go on: many messages each way decrypt to what was sent.
    for n in (1, 16384, 3):
        msg = random.randbytes(n)
        assert eb.decrypt(ea.encrypt(msg)) == msg
        assert ea.decrypt(eb.encrypt(msg)) == msg
    assert ea.encrypt(bytes(64)) != bytes(64)


def test_payload_behind_the_handshake_is_kept() -> None:
    """Bytes that arrive in the same read as the end of the handshake are the stream's
    first bytes, decrypted once."""
    a = Initiator(INFO_HASH, HANDSHAKE)
    b = Responder(lookup_for(INFO_HASH))
    to_b = a.start()
    to_a = b.receive(to_b)
    to_b = a.receive(to_a)
    to_a = b.receive(to_b)
    assert b.established is not None
    to_a += b.established.encrypt(b"bitfield...")
    a.receive(to_a)
    assert a.established is not None and a.established.payload == b"bitfield..."
    assert b.established.payload == HANDSHAKE


@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_plaintext_when_both_choose_it(chunk) -> None:
    a = Initiator(INFO_HASH, HANDSHAKE, provide=CRYPTO_PLAINTEXT | CRYPTO_RC4)
    b = Responder(lookup_for(INFO_HASH), policy="plain")
    side_a, side_b = pump(a, b, chunk=chunk, after_a=b"clear", after_b=b"also clear")
    assert not a.established.rc4 and not b.established.rc4
    assert side_b.stream == HANDSHAKE + b"clear"
    assert side_a.stream == b"also clear"
    assert a.established.encrypt(b"x") == b"x"


def test_plaintext_bytes_in_the_same_read_as_the_handshake() -> None:
    """A plaintext peer may send its stream right behind the handshake, in one read: those
    bytes were never encrypted and must not go through the keystream."""
    a = Initiator(INFO_HASH, HANDSHAKE, provide=CRYPTO_PLAINTEXT)
    b = Responder(lookup_for(INFO_HASH), policy="prefer")
    to_a = b.receive(a.start())
    to_a = b.receive(a.receive(to_a) + b"clear")
    assert b.established.payload == HANDSHAKE + b"clear"
    a.receive(to_a + b"back")
    assert a.established.payload == b"back"


def test_require_refuses_a_plaintext_only_peer() -> None:
    a = Initiator(INFO_HASH, HANDSHAKE, provide=CRYPTO_PLAINTEXT)
    b = Responder(lookup_for(INFO_HASH), policy="require")
    to_a = b.receive(a.start())
    with pytest.raises(MseError, match="accepts none"):
        b.receive(a.receive(to_a))


def test_unknown_torrent_is_refused() -> None:
    a = Initiator(INFO_HASH, HANDSHAKE)
    b = Responder(lookup_for(hashlib.sha1(b"other").digest()))
    to_a = b.receive(a.start())
    with pytest.raises(MseError, match="do not have"):
        b.receive(a.receive(to_a))


def test_choose() -> None:
    both = CRYPTO_RC4 | CRYPTO_PLAINTEXT
    assert choose(both, "prefer") == CRYPTO_PLAINTEXT
    assert choose(CRYPTO_RC4, "prefer") == CRYPTO_RC4
    assert choose(both, "require") == CRYPTO_RC4
    assert choose(both, "plain") == CRYPTO_PLAINTEXT
    assert choose(CRYPTO_PLAINTEXT, "prefer") == CRYPTO_PLAINTEXT
    assert choose(CRYPTO_PLAINTEXT, "require") == 0
    assert choose(CRYPTO_RC4, "plain") == CRYPTO_RC4
    assert choose(0x10, "prefer") == 0


def test_responder_gives_up_when_req1_never_comes() -> None:
    b = Responder(lookup_for(INFO_HASH))
    y = pow(2, 12345, PRIME).to_bytes(KEY_LENGTH, "big")
    b.receive(y)
    b.receive(bytes(MAX_PAD))
    with pytest.raises(MseError, match="req1"):
        b.receive(bytes(20))


def test_initiator_gives_up_when_vc_never_comes() -> None:
    a = Initiator(INFO_HASH, HANDSHAKE)
    a.start()
    y = pow(2, 12345, PRIME).to_bytes(KEY_LENGTH, "big")
    a.receive(y + bytes(MAX_PAD))
    with pytest.raises(MseError, match="verification constant"):
        a.receive(bytes(8))


@pytest.mark.parametrize("bad", [0, 1, PRIME - 1, PRIME])
def test_degenerate_public_keys_are_refused(bad) -> None:
    b = Responder(lookup_for(INFO_HASH))
    with pytest.raises(MseError, match="out of range"):
        b.receive(bad.to_bytes(KEY_LENGTH, "big") if bad < 1 << 768 else bytes(KEY_LENGTH))


@pytest.mark.parametrize(
    ("pad_len", "ia_len", "match"),
    [(MAX_PAD + 1, 0, "padC"), (0, MAX_IA + 1, "initial payload")],
)
def test_oversized_fields_are_refused(pad_len, ia_len, match) -> None:
    b = Responder(lookup_for(INFO_HASH))
    reply = b.receive(public_key())
    head = VC + struct.pack(">IH", CRYPTO_RC4, pad_len) + bytes(min(pad_len, 600))
    with pytest.raises(MseError, match=match):
        b.receive(forged_request(reply, INFO_HASH, head + struct.pack(">H", ia_len)))


def test_a_hand_written_initiator_is_understood() -> None:
    """The spec written out independently (tests/mse_forge.py) and btd's responder agree."""
    b = Responder(lookup_for(INFO_HASH))
    reply = b.receive(public_key())
    head = VC + struct.pack(">IH", CRYPTO_RC4, 3) + b"pad" + struct.pack(">H", len(HANDSHAKE))
    b.receive(forged_request(reply, INFO_HASH, head + HANDSHAKE))
    assert b.established is not None and b.established.payload == HANDSHAKE


def test_bad_verification_constant_is_refused() -> None:
    """A peer keyed for another info hash that shares req2 (impossible but for a bug) or
    a corrupted stream: VC does not decrypt to zeros."""
    a = Initiator(INFO_HASH, HANDSHAKE)
    other = hashlib.sha1(b"other").digest()
    b = Responder(lambda _key: other)  # routes to the wrong torrent: wrong keys
    to_a = b.receive(a.start())
    with pytest.raises(MseError, match="verification constant"):
        b.receive(a.receive(to_a))

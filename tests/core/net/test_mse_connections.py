"""PeerProtocol with MSE/PE under it: an encrypted newcomer is answered and joins, an
encrypted dial carries our handshake inside its own, every later byte is RC4 both ways,
policies refuse what they must, and a failed encrypted dial is tried again in the clear."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from torrent_harness import OUR_PEER_ID, Swarm
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from btd.core.net.peer import PLAIN_START
from btd.core.wire import messages as m
from btd.core.wire.codec import WireDecoder, encode, encode_handshake
from btd.core.wire.mse import CRYPTO_PLAINTEXT, CRYPTO_RC4, Initiator, Responder, req2_key

THEIR_ID = b"-LT2000-encrypted001"
ADDR = ("127.0.0.1", 6999)


class Wire:
    """Our side's bytes as the remote peer reads them: only what is new each time."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.read = 0

    def take(self) -> bytes:
        value = self.conn.transport.value()
        out, self.read = value[self.read :], len(value)
        return out


def their_handshake(s: Swarm) -> bytes:
    reserved = m.make_reserved(extensions=True, fast=True)
    return encode_handshake(m.Handshake(s.meta.info_hash, THEIR_ID, reserved))


def dial_us_encrypted(s: Swarm, provide: int = CRYPTO_RC4):
    """A remote peer that dials us with MSE: (conn, its established stream, what we sent
    after the handshake, decrypted)."""
    c = s.open()
    wire = Wire(c)
    them = Initiator(s.meta.info_hash, their_handshake(s), provide)
    c.send_raw(them.start())
    c.send_raw(them.receive(wire.take()))
    them.receive(wire.take())
    assert them.established is not None
    return c, them.established, wire


def test_an_encrypted_newcomer_joins_and_both_directions_are_rc4(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    c, stream, wire = dial_us_encrypted(s)
    assert stream.rc4 and c.proto.encrypted
    assert c.peer is not None and c.peer in s.torrent.peers
    # Our reply: our handshake, then our piece set, all through RC4.
    ours = stream.payload + stream.decrypt(wire.take())
    decoded = list(WireDecoder(expect_handshake=True).feed(ours))
    assert decoded[0] == m.Handshake(s.meta.info_hash, OUR_PEER_ID, s.router.reserved)
    assert len(decoded) >= 2  # and our piece set behind it
    # Theirs, encrypted, reaches the torrent.
    c.send_raw(stream.encrypt(encode(m.HAVE_ALL_MSG)))
    assert s.torrent.availability.seeds == 1
    assert c.peer.info()["encrypted"] is True


def test_plaintext_after_the_handshake_when_the_newcomer_offers_only_that(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    c, stream, wire = dial_us_encrypted(s, provide=CRYPTO_PLAINTEXT)
    assert not stream.rc4 and not c.proto.encrypted
    assert c.peer is not None
    c.send_raw(encode(m.HAVE_ALL_MSG))  # in the clear now
    assert s.torrent.availability.seeds == 1


def test_an_encrypted_newcomer_for_another_torrent_is_dropped(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    c = s.open()
    wire = Wire(c)
    them = Initiator(b"\x99" * 20, their_handshake(s))
    c.send_raw(them.start())
    c.send_raw(them.receive(wire.take()))
    assert c.aborted and c.peer is None
    assert "do not have" in c.proto.close_reason


def test_require_refuses_a_plain_newcomer(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    s.router.encryption = "require"
    c = s.open()
    c.handshake()
    assert c.aborted and c.peer is None
    assert "encryption is required" in c.proto.close_reason


def test_a_torrent_that_requires_encryption_refuses_a_plain_peer(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    s.torrent.options = replace(s.torrent.options, encryption="require")
    plain = s.open()
    plain.handshake()
    assert plain.peer is None and plain.closing
    assert "requires encryption" in plain.proto.close_reason
    encrypted, _stream, _wire = dial_us_encrypted(s)
    assert encrypted.peer is not None


def test_an_encrypted_dial_carries_our_handshake_inside_its_own(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    s.torrent.add_peers([ADDR])
    c = s.open(outgoing=True, address=ADDR, encrypt=True)
    wire = Wire(c)
    first = wire.take()
    assert not first.startswith(PLAIN_START) and 96 <= len(first) <= 96 + 512
    them = Responder({req2_key(s.meta.info_hash): s.meta.info_hash}.get, policy="require")
    c.send_raw(them.receive(first))
    c.send_raw(them.receive(wire.take()))
    stream = them.established
    assert stream is not None and stream.rc4 and c.proto.encrypted
    hs = next(iter(WireDecoder(expect_handshake=True).feed(stream.payload)))
    assert hs == m.Handshake(s.meta.info_hash, OUR_PEER_ID, s.router.reserved)
    c.send_raw(stream.encrypt(their_handshake(s) + encode(m.HAVE_ALL_MSG)))
    assert c.peer is not None and s.torrent.availability.seeds == 1


def test_a_failed_encrypted_dial_is_tried_again_in_the_clear(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    s.torrent.add_peers([ADDR])
    assert s.torrent.candidates.connecting == 1
    c = s.open(outgoing=True, address=ADDR, encrypt=True)
    c.proto.connectionLost(Failure(ConnectionDone("peer hung up on MSE")))
    assert s.router.plain_retries == [(s.torrent, ADDR)]
    assert s.torrent.candidates.connecting == 1  # still dialling: no failure counted


def test_require_does_not_fall_back_to_plain(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    s.router.encryption = "require"
    s.torrent.add_peers([ADDR])
    c = s.open(outgoing=True, address=ADDR, encrypt=True)
    c.proto.connectionLost(Failure(ConnectionDone("peer hung up on MSE")))
    assert s.router.plain_retries == []
    assert s.torrent.candidates.connecting == 0  # a failed attempt, backed off

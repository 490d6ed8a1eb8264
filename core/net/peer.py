"""The Twisted protocol of one peer connection: bytes in, messages to the Peer.

It owns the handshake (routing inbound connections by info hash through the
``PeerRouter``), the MSE/PE layer under it (core/wire/mse.py: an inbound connection whose
first bytes are not a BitTorrent handshake is taken for an encrypted one; an outgoing one
starts encrypted when asked, and an RC4 stream wraps every later read and write) and the
handshake timeout; after the handshake every decoded message
goes to the ``btd.core.peer.Peer`` its torrent attached. A ProtocolError anywhere closes
this connection and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from btd.core.errors import ProtocolError
from btd.core.limits import CLOSE_TIMEOUT, HANDSHAKE_TIMEOUT
from btd.core.swarm import Swarm
from btd.core.wire import messages as m
from btd.core.wire.codec import WireDecoder, encode_handshake
from btd.core.wire.messages import PROTOCOL_NAME
from btd.core.wire.mse import CRYPTO_PLAINTEXT, CRYPTO_RC4, Initiator, Responder

PLAIN_START = bytes([len(PROTOCOL_NAME)]) + PROTOCOL_NAME  # how a plain handshake begins
READ_SIZE = 256 * 1024
FAST_READ_SIZE = 1024 * 1024
"""Bytes per read once a read filled ``READ_SIZE`` (a fast peer with more waiting): one trip
through the reactor and the decoder per 64 blocks instead of 16. A 1 GiB download from
libtorrent took 0.1-0.3 CPU-s less on the main thread and ran faster in 6 of 7 pairs; a
read that comes back under ``READ_SIZE``, or a download speed limit, goes back to it (a
slow peer's read allocates no 1 MiB buffer; a limit is not overshot by a whole 1 MiB)."""
SEND_LIMIT = 1024 * 1024

_log = Logger()


class PeerRouter(TypingProtocol):
    """What a connection needs of the session: find the swarm, recognise ourselves.

    Connections are counted per swarm (``Swarm.peers``, ``candidates.connecting``), so a
    closed connection has nothing to give back to the router.
    """

    peer_id: bytes

    @property
    def reserved(self) -> bytes:
        """Our handshake's feature bits."""
        ...

    def route(self, info_hash: bytes) -> Swarm | None:
        """The swarm for an inbound handshake (None: not ours, drop)."""
        ...

    @property
    def encryption(self) -> str:
        """The session's MSE policy, for a newcomer not yet routed."""
        ...

    def policy_for(self, swarm: Swarm) -> str:
        """``swarm``'s MSE policy (its own, else the session's)."""
        ...

    def mse_lookup(self, req2: bytes) -> bytes | None:
        """The info hash behind an encrypted newcomer's ``HASH('req2', SKEY)``."""
        ...

    def retry_plain(
        self, swarm: Swarm, address: tuple[str, int], swarm_id: bytes | None = None
    ) -> bool:
        """An encrypted dial failed in its handshake: dial again in the clear if allowed."""
        ...


@implementer(IPushProducer)
class PeerProtocol(Protocol):
    """One TCP connection to a peer.

    It is its transport's producer: when the send buffer fills (a peer that asks for
    blocks and does not read them), ``write_paused`` stops the torrent from queueing
    more, so a hostile peer cannot make us buffer without bound.
    """

    def __init__(
        self,
        router: PeerRouter,
        clock: IReactorTime,
        *,
        torrent: Swarm | None = None,
        address: tuple[str, int] | None = None,
        encrypt: bool = False,
        swarm_id: bytes | None = None,
    ) -> None:
        self.router = router
        self.clock = clock
        self.torrent = torrent  # the swarm: known up front for outgoing connections
        # The info hash this connection's handshake names: a hybrid (BEP 52) has two swarms,
        # its v1 hash and its truncated v2 hash. Outgoing: the one asked for, else the
        # swarm's; inbound: the peer's (our reply echoes it).
        self.swarm_id: bytes | None = swarm_id or (torrent.info_hash if torrent else None)
        self.outgoing = torrent is not None
        self.address: tuple[str, int] = address or ("?", 0)
        self.peer: Any = None
        self.closed = False
        self.close_reason = ""
        self.decoder = WireDecoder(expect_handshake=True)
        self._handshake_timer: Any = None
        self._abort_timer: Any = None
        self._sent_handshake = False
        self.write_paused = False
        # Accepted beyond the session's connection limit (core/net/connector.py): the swarm
        # admits it only by taking the slot of a spare peer (core/peer_slots.py).
        self.over_limit = False
        self.heard = False  # set per read; the torrent's tick turns it into last_heard
        self.read_limit: Any = None  # the download Channel (core/bandwidth.py) once attached
        self._sized_reads = False  # the transport's read size is ours to set (bufferSize)
        self.last_heard = clock.seconds()
        # MSE/PE: the handshake machine while it runs (an outgoing one when ``encrypt``;
        # inbound, once the first bytes are not a plain handshake), then the stream.
        self.encrypt_first = encrypt
        self.encrypted = False  # the stream is RC4 (reported in torrent.peers)
        self._mse: Initiator | Responder | None = None
        self._sniff: bytes | None = None if self.outgoing else b""
        self._encrypt: Callable[[bytes], bytes] | None = None
        self._decrypt: Callable[[bytes], bytes] | None = None

    # -- Twisted ------------------------------------------------------------------------
    def connectionMade(self) -> None:
        # Read up to 256 KiB per wakeup (Twisted's default is 64 KiB): fewer syscalls and
        # fewer trips through the decoder when a fast peer fills the socket.
        if hasattr(self.transport, "bufferSize"):
            self.transport.bufferSize = READ_SIZE  # type: ignore[union-attr]
            self._sized_reads = True
        # Send up to 1 MiB per writable wakeup (Twisted's SEND_LIMIT is 128 KiB): a seeder
        # then needs a fraction of the reactor rounds per GiB.
        if hasattr(self.transport, "SEND_LIMIT"):
            self.transport.SEND_LIMIT = SEND_LIMIT  # type: ignore[union-attr]
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        if hasattr(peer, "host"):
            self.address = (peer.host, peer.port)
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self._handshake_timer = self.clock.callLater(
            HANDSHAKE_TIMEOUT, self.close, f"no handshake within {HANDSHAKE_TIMEOUT:g} s"
        )
        if self.torrent is not None and self.encrypt_first:  # outgoing, encrypted
            policy = self.router.policy_for(self.torrent)
            provide = CRYPTO_RC4 if policy == "require" else CRYPTO_RC4 | CRYPTO_PLAINTEXT
            self._mse = Initiator(self.swarm_id, self._handshake_bytes(), provide)  # type: ignore[arg-type]
            self._sent_handshake = True  # it travels inside the MSE handshake
            self.transport.write(self._mse.start())  # type: ignore[union-attr]
        elif self.swarm_id is not None:  # outgoing, plain
            self._send_handshake(self.swarm_id)

    def dataReceived(self, data: bytes) -> None:
        if self.closed:
            return
        self.heard = True
        limit = self.read_limit
        limited = limit is not None and limit.limiter.on
        if self._sized_reads:  # bigger reads for a fast peer, not under a speed limit
            fast = len(data) >= READ_SIZE and not limited
            self.transport.bufferSize = FAST_READ_SIZE if fast else READ_SIZE  # type: ignore[union-attr]
        if limited:  # a speed limit: may pause reading
            limit.spend(len(data))
        try:
            if self._decrypt is not None:
                data = self._decrypt(data)
            elif self._mse is not None or self._sniff is not None:
                data = self._unwrap(data)
            msgs = self.decoder.feed(data)
            if self.peer is None:  # the handshake, then (same read) the first messages
                while msgs and self.peer is None:
                    self._on_handshake(msgs.pop(0))
                    if self.closed:
                        return
            if msgs and self.peer is not None:
                self.peer.on_messages(msgs)
        except ProtocolError as exc:
            self.close(f"protocol error: {exc}", error=True)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed = True
        if self._abort_timer is not None and self._abort_timer.active():
            self._abort_timer.cancel()
        if reason is None:
            reason = Failure(ConnectionError("connection lost"))
        if not self.close_reason:
            self.close_reason = reason.getErrorMessage()
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        if self.torrent is not None and self.peer is not None:
            self.torrent.peer_gone(self.peer, self.close_reason)
        elif self.torrent is not None and self.outgoing:
            if isinstance(self._mse, Initiator) and self.router.retry_plain(
                self.torrent, self.address, self.swarm_id
            ):
                return  # the plain attempt reports to the swarm in its turn
            self.torrent.connection_failed(self.address, self.close_reason)

    # -- IPushProducer (the transport's send buffer) ------------------------------------------
    def pauseProducing(self) -> None:
        self.write_paused = True

    def resumeProducing(self) -> None:
        self.write_paused = False
        if self.peer is not None and not self.closed and self.torrent is not None:
            self.torrent.peer_writable(self.peer)

    def stopProducing(self) -> None:
        self.write_paused = True

    # -- link API (used by Peer) -----------------------------------------------------------
    def pause_reading(self) -> None:
        """A download limit: stop reading the socket (TCP then slows the sender)."""
        self.transport.pauseProducing()  # type: ignore[union-attr]

    def resume_reading(self) -> None:
        if not self.closed:
            self.transport.resumeProducing()  # type: ignore[union-attr]

    def write(self, data: bytes) -> None:
        if self._encrypt is not None:
            data = self._encrypt(data)
        self.transport.write(data)  # type: ignore[union-attr]

    def write_sequence(self, parts: list[bytes]) -> None:
        if self._encrypt is not None:  # RC4 is a stream: the parts in their order
            parts = [self._encrypt(part) for part in parts]
        self.transport.writeSequence(parts)  # type: ignore[union-attr]

    def close(self, reason: str, *, error: bool = False) -> None:
        """Drop the connection; ``error`` aborts at once (hostile peer), else flushes first."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if getattr(self.transport, "producer", None) is self:
            self.transport.unregisterProducer()  # type: ignore[union-attr]  # else no close
        if error:
            _log.debug("dropping {addr}: {reason}", addr=self.address, reason=reason)
            self.transport.abortConnection()  # type: ignore[union-attr]
        else:
            self.transport.loseConnection()  # type: ignore[union-attr]
            # A peer that stops reading would keep a polite close pending for ever.
            self._abort_timer = self.clock.callLater(
                CLOSE_TIMEOUT,
                self.transport.abortConnection,  # type: ignore[union-attr]
            )

    # -- handshake ------------------------------------------------------------------------------
    def _handshake_bytes(self, info_hash: bytes | None = None) -> bytes:
        info_hash = info_hash or self.swarm_id
        reserved = self.router.reserved
        if self.torrent is not None and self.torrent.v2:  # BEP 52's bit, as libtorrent sets it
            reserved = reserved[:7] + bytes([reserved[7] | m.V2_BIT])
        return encode_handshake(m.Handshake(info_hash, self.router.peer_id, reserved))  # type: ignore[arg-type]

    def _send_handshake(self, info_hash: bytes) -> None:
        self.write(self._handshake_bytes(info_hash))
        self._sent_handshake = True

    def _unwrap(self, data: bytes) -> bytes:
        """Before the stream: sniff an inbound connection, or run the MSE handshake; the
        BitTorrent bytes that follow it (none yet while it runs)."""
        if self._sniff is not None:  # inbound, first bytes
            data = self._sniff + data
            head = data[: len(PLAIN_START)]
            if PLAIN_START.startswith(head):
                if len(head) < len(PLAIN_START):
                    self._sniff = data  # could still be either
                    return b""
                self._sniff = None
                if self.router.encryption == "require":
                    raise ProtocolError("a plain handshake, and encryption is required")
                return data
            self._sniff = None
            self._mse = Responder(self.router.mse_lookup, self.router.encryption)
        machine = self._mse
        assert machine is not None
        reply = machine.receive(data)
        if reply:
            self.transport.write(reply)  # type: ignore[union-attr]
        stream = machine.established
        if stream is None:
            return b""
        self._mse = None
        self.encrypted = stream.rc4
        if stream.rc4:
            self._encrypt, self._decrypt = stream.encrypt, stream.decrypt
        return stream.payload

    def _on_handshake(self, hs: Any) -> None:
        if not isinstance(hs, m.Handshake):
            raise ProtocolError("expected a handshake")
        swarm = self.torrent
        if swarm is not None:  # outgoing
            if hs.info_hash != self.swarm_id:
                raise ProtocolError("peer answered with another info hash")
        else:
            swarm = self.torrent = self.router.route(hs.info_hash)
            if swarm is None:
                self.close("handshake for a torrent we do not have")
                return
            self.swarm_id = hs.info_hash  # either id of a hybrid: the reply names the same
        if not self.encrypted and self.router.policy_for(swarm) == "require":
            self.close("a plain connection, and this torrent requires encryption")
            return
        if hs.peer_id == self.router.peer_id:
            swarm.found_self(self.address)
            self.close("connected to ourselves")
            return
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        if not self._sent_handshake:
            self._send_handshake(hs.info_hash)
        self.decoder.set_num_pieces(swarm.num_pieces)
        # Over the session's limit (``over_limit``), the swarm admits it only in a spare
        # peer's place and then clears the flag.
        self.peer = swarm.attach(self, hs)
        if self.peer is None:
            self.close("no room for this peer (limit reached or already connected)")


class InboundFactory(Factory):
    """One listener for all torrents; connections are routed after the handshake."""

    noisy = False

    def __init__(self, router: PeerRouter, clock: IReactorTime, can_accept: Any) -> None:
        self.router = router
        self.clock = clock
        self.can_accept = can_accept

    def buildProtocol(self, addr: Any) -> Protocol | None:
        if not self.can_accept():
            return None  # global connection limit: refuse before reading anything
        return PeerProtocol(self.router, self.clock)


class OutboundFactory(ClientFactory):
    """A connection we start to a peer of one torrent."""

    noisy = False

    def __init__(
        self,
        router: PeerRouter,
        clock: IReactorTime,
        torrent: Swarm,
        address: tuple[str, int],
        encrypt: bool = False,
        swarm_id: bytes | None = None,
    ) -> None:
        self.router = router
        self.clock = clock
        self.torrent = torrent
        self.address = address
        self.encrypt = encrypt
        self.swarm_id = swarm_id  # None: the torrent's info hash

    def buildProtocol(self, addr: Any) -> Protocol:
        return PeerProtocol(
            self.router,
            self.clock,
            torrent=self.torrent,
            address=self.address,
            encrypt=self.encrypt,
            swarm_id=self.swarm_id,
        )

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.torrent.connection_failed(self.address, reason.getErrorMessage())

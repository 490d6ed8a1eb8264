"""One torrent's extension traffic: BEP 10 handshake, plugin handlers, BEP 9, BEP 5 ports.

``TorrentExtensions`` writes our extension handshake (and our DHT port) to a new peer,
dispatches the peer's extended messages to the plugins' handlers (``btd_extension_handlers``),
serves our info dictionary to ``ut_metadata`` requests (at ``UT_METADATA_RATE`` per peer
after a burst, BEP 9 ``reject`` beyond) and passes the DHT ports peers announce to the
DHT. Private torrents (BEP 27) advertise only what is allowed on them (neither
``ut_metadata`` nor PEX), serve no metadata and exchange no DHT ports.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from twisted.logger import Logger

from btd.core.errors import ProtocolError
from btd.core.limits import UT_METADATA_BURST, UT_METADATA_RATE
from btd.core.peer import Peer
from btd.core.torrent_env import TorrentEnv
from btd.core.wire import messages as m
from btd.core.wire import metadata as ut_metadata
from btd.core.wire.extension import ExtensionHandshake, encode_extension_handshake

_log = Logger(namespace="btd.core.torrent")

REQQ = 2000  # the request queue we advertise (libtorrent's and Transmission's)


class TorrentExtensions:
    """The extension side of one torrent (``torrent`` is what plugin handlers are given)."""

    def __init__(self, torrent: Any, env: TorrentEnv, info_bytes: bytes, private: bool) -> None:
        self.torrent = torrent
        self.env = env  # read live: its callables may be replaced (tests do)
        self.extensions = env.extensions
        self.info_bytes = info_bytes
        self.private = private
        # peer -> (tokens, when counted): ut_metadata requests it may still have served;
        # made at the first request (a WeakKeyDictionary is ~0.5 KB: 10,000 idle torrents)
        self._metadata_tokens: WeakKeyDictionary[Peer, tuple[float, float]] | None = None
        self.metadata_rejected = 0  # requests refused for coming too fast

    def greet(self, peer: Peer, supports_dht: bool) -> None:
        """Right after the handshake: our extension handshake, then our DHT node's port."""
        if peer.extensions:
            peer.write(
                encode_extension_handshake(
                    ExtensionHandshake(
                        m=self.extensions.advertised(private=self.private),
                        v=self.env.client_name,
                        p=self.env.listen_port() or None,
                        reqq=REQQ,
                        metadata_size=None if self.private else len(self.info_bytes),
                    )
                )
            )
        if supports_dht and not self.private:
            port = self.env.dht_port()
            if port:
                peer.write(m.Port(port))  # BEP 5: our node, for the peer's routing table

    def peer_dht_port(self, peer: Peer, port: int) -> None:
        """BEP 5 ``port``: the peer runs a DHT node (not used for private torrents)."""
        if not self.private and 0 < port < 65536:
            self.env.dht_node_seen(peer.link.address[0], port)

    def ready(self, peer: Peer) -> None:
        """The peer's extension handshake arrived: tell every handler."""
        for name, handler in self.extensions.handlers.items():
            try:
                handler.peer_ready(self.torrent, peer)
            except Exception:
                _log.failure("extension {name} failed", name=name)

    def message(self, peer: Peer, name: str, payload: bytes) -> None:
        """BEP 9 requests are served here; plugin extensions go to their handlers."""
        if name == ut_metadata.EXTENSION_NAME:
            self._serve_metadata(peer, payload)
            return
        handler = self.extensions.handlers.get(name)
        if handler is None:
            return
        try:
            handler.message(self.torrent, peer, payload)
        except ProtocolError:
            raise
        except Exception:
            _log.failure("extension {name} failed", name=name)

    def peer_gone(self, peer: Peer) -> None:
        if self._metadata_tokens is not None:
            self._metadata_tokens.pop(peer, None)
        for handler in self.extensions.handlers.values():
            try:
                handler.peer_gone(self.torrent, peer)
            except Exception:
                _log.failure("extension handler failed on peer_gone")

    def _serve_metadata(self, peer: Peer, payload: bytes) -> None:
        msg = ut_metadata.decode_message(payload)
        if msg.msg_type != ut_metadata.REQUEST:
            return  # data or reject for us: we asked nothing, we have the metadata
        if self.private:
            return  # BEP 27: not offered, not served (the id may still be routed here)
        if peer.link.write_paused:
            return  # it does not read what we send: no 16 KiB answers to pile up
        info = self.info_bytes
        in_range = msg.piece < ut_metadata.num_pieces(len(info))
        if not in_range or not self._may_serve(peer):
            self.metadata_rejected += in_range
            peer.send_extended(ut_metadata.EXTENSION_NAME, ut_metadata.encode_reject(msg.piece))
            return
        peer.send_extended(ut_metadata.EXTENSION_NAME, ut_metadata.encode_data(msg.piece, info))

    def _may_serve(self, peer: Peer) -> bool:
        """A token bucket per peer: ``UT_METADATA_BURST`` requests, then ``UT_METADATA_RATE``
        a second (libtorrent answers a few a second and rejects the rest)."""
        now = self.torrent.clock.seconds()
        buckets = self._metadata_tokens
        if buckets is None:
            buckets = self._metadata_tokens = WeakKeyDictionary()
        tokens, then = buckets.get(peer, (float(UT_METADATA_BURST), now))
        tokens = min(float(UT_METADATA_BURST), tokens + (now - then) * UT_METADATA_RATE)
        if tokens < 1.0:
            buckets[peer] = (tokens, now)
            return False
        buckets[peer] = (tokens - 1.0, now)
        return True

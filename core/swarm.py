"""``Swarm``: what the connection layer, the Session and the DHT need of "a torrent".

Two classes are swarms: ``Torrent`` (core/torrent.py) and ``MetadataFetch`` (a magnet still
waiting for its info dictionary, core/metadata_fetch.py). ``PeerProtocol`` hands a
connection to its swarm after the handshake (``attach``) and reports its end
(``peer_gone``, ``connection_failed``); ``Session.swarms``/``swarm``/``find`` and
``PeerConnector.route`` return swarms; the DHT plugin feeds them peers (``add_peers``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from btd.core.errors import BtdError
from btd.core.swarm_peers import PeerCandidates
from btd.core.types import PeerAddress
from btd.core.wire.messages import Handshake


class Swarm(Protocol):
    """A Torrent or a MetadataFetch, as the peer connections and the session see it."""

    info_hash: bytes
    candidates: PeerCandidates
    added_at: float

    @property
    def hex(self) -> str: ...

    @property
    def swarm_ids(self) -> tuple[bytes, ...]:
        """The info hashes it is found, announced and dialled under: ``(info_hash,)``, or a
        hybrid torrent's v1 hash and truncated v2 hash (BEP 52)."""
        ...

    @property
    def v2(self) -> bool:
        """It has v2 hashes (v2-only, hybrid, btmh magnet): handshakes carry BEP 52's bit."""
        ...

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> str:
        """The RPC state string (``metadata`` for a magnet waiting for its metadata)."""
        ...

    @property
    def active(self) -> bool:
        """It takes peers now (downloading, seeding, or fetching metadata)."""
        ...

    @property
    def private(self) -> bool:
        """BEP 27: no DHT, no PEX."""
        ...

    @property
    def encryption(self) -> str | None:
        """Its MSE policy (core/types.py ``ENCRYPTION_POLICIES``); None: the session's."""
        ...

    @property
    def num_pieces(self) -> int | None:
        """None while the metadata is unknown (the decoder checks no bitfield shapes)."""
        ...

    @property
    def peers(self) -> Mapping[Any, None]: ...

    def add_peers(self, addresses: Sequence[PeerAddress], *, swarm_id: bytes | None = None) -> int:
        """Peers from trackers, PEX, DHT or the user; how many were new. ``swarm_id``: the
        one of ``swarm_ids`` they were found under (None: the first)."""
        ...

    def attach(self, link: Any, hs: Handshake) -> Any | None:
        """A handshake completed: the per-connection peer object, or None to refuse."""
        ...

    def peer_gone(self, peer: Any, reason: str) -> None: ...

    def peer_writable(self, peer: Any) -> None:
        """The connection's send buffer drained."""
        ...

    def connection_failed(self, address: PeerAddress, reason: str) -> None: ...

    def found_self(self, address: PeerAddress) -> None:
        """The address answered with our own peer id."""
        ...


class TorrentNotFound(BtdError):
    """No torrent (or more than one) matches an info-hash prefix."""

    def __init__(self, message: str, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


def swarm_ids(info_hash: bytes, info_hash_v2: bytes | None) -> tuple[bytes, ...]:
    """The ids a torrent (or magnet) is found, announced and dialled under: its info hash,
    and for a hybrid (BEP 52) also its v2 hash's first 20 bytes."""
    if info_hash_v2 is None or info_hash_v2[:20] == info_hash:
        return (info_hash,)
    return (info_hash, info_hash_v2[:20])


def find_swarm(
    prefix: str, by_hash: Callable[[bytes], Swarm | None], every: Callable[[], Iterable[Swarm]]
) -> Swarm:
    """The one swarm whose info hash starts with ``prefix`` (any case); TorrentNotFound
    if none does or several do. A full 40-hex hash is looked up, not scanned for (a
    hybrid's truncated v2 hash finds it too); so is a 64-hex v2 hash (BEP 52, SHA-256),
    by the swarm its first 20 bytes name."""
    key = prefix.lower()
    if len(key) == 64:
        try:
            v2_id = bytes.fromhex(key)[:20]
        except ValueError:
            v2_id = b""
        found = by_hash(v2_id) if v2_id else None
        if found is not None and found.v2 and found.swarm_ids[-1] == v2_id:
            return found
    if len(key) == 40:
        try:
            found = by_hash(bytes.fromhex(key))
        except ValueError:
            found = None
        if found is not None:
            return found
    matches = [s for s in every() if s.hex.startswith(key)] if key else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise TorrentNotFound(f"no torrent matches {prefix!r}")
    raise TorrentNotFound(
        f"{prefix!r} matches {len(matches)} torrents; give more digits", ambiguous=True
    )

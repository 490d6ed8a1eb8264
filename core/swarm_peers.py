"""Peer candidates of one torrent: whom to connect to next, whom never again, and why
connections ended.

Addresses come from trackers, ``torrent.add_peer``, PEX and DHT. Peers are named by
address *and* port: on loopback, and behind NAT, many peers share one IP.

When to dial an address again depends on why its last connection ended (``classify``):
- it FAILED (connect error, protocol error, timeout): back off, 30 s doubling, dropped
  after 5 failures in a row; banned addresses and peer ids (corrupt data, ourselves) are
  never tried again;
- we LEFT on purpose (pause, verify, stop): no wait, so a resume reconnects at once;
- the peer closed it: 60 s; both sides seeding, or we dropped it as inactive or replaced it
  with a newcomer (core/peer_slots.py): 10 min.
A peer that a tracker or the user names again is dialled at once unless it is backing off
after a failure (the user's ``add_peer`` even then).

A hybrid torrent (BEP 52) is in two swarms: an address heard in its v2 swarm (a tracker's or
the DHT's answer for the truncated v2 hash) keeps that id (``swarm_id``) and is dialled with
it; once heard there it stays tagged (a peer in both swarms takes either). Only tagged
addresses cost an entry, bounded like the candidates.

Every end is counted by reason class (a fixed set of keys, ``DISCONNECT_REASONS``) per
torrent and in the session-wide totals it was given, so counts cost O(1) and are never
summed over torrents.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from btd.core.types import PeerAddress

RETRY_BASE = 30.0
MAX_FAILURES = 5
RECONNECT_AFTER = 60.0  # the peer closed the connection
REDUNDANT_RETRY = 600.0  # both of us seeding: nothing to exchange for a while
MAX_CANDIDATES = 2000

# Reason classes of a connection's end (``torrent.get``/``session.stats`` ``disconnects``).
CLOSED_BY_PEER = "closed_by_peer"  # the peer hung up, or the network did
PROTOCOL_ERROR = "protocol_error"  # the peer broke the wire protocol
TIMEOUT = "timeout"  # no handshake in time, or silent too long
BANNED = "banned"  # corrupt data: never again
LEFT = "left"  # we left on purpose: pause, verify, stop
REDUNDANT = "redundant"  # nothing to exchange: both seeding, no metadata to give
REFUSED = "refused"  # we refused it: connection limit, duplicate, ourselves
CONNECT_FAILED = "connect_failed"  # our dial failed before a handshake completed
INACTIVE = "inactive"  # no piece traffic either way for long, while its slot was wanted
REPLACED = "replaced"  # an idle peer whose slot a newcomer took
DISCONNECT_REASONS = (
    CLOSED_BY_PEER,
    PROTOCOL_ERROR,
    TIMEOUT,
    BANNED,
    LEFT,
    REDUNDANT,
    REFUSED,
    CONNECT_FAILED,
    INACTIVE,
    REPLACED,
)
FAILURES = frozenset({PROTOCOL_ERROR, TIMEOUT, CONNECT_FAILED})

# The reasons btd itself gives when it closes a peer (core/net/peer.py, core/torrent.py,
# core/metadata_fetch.py), by prefix; anything else came from the transport: the peer.
_OUR_REASONS = (
    ("protocol error", PROTOCOL_ERROR),
    ("no handshake within", TIMEOUT),
    ("idle for", TIMEOUT),
    ("sent ", BANNED),  # Torrent.ban: "sent corrupt data"
    ("torrent stopped", LEFT),
    ("metadata fetch stopped", LEFT),
    ("both seeding", REDUNDANT),
    ("inactive:", INACTIVE),  # core/peer_slots.py INACTIVE_REASON
    ("replaced by", REPLACED),  # core/peer_slots.py REPLACED_REASON
    ("it does not serve metadata", REDUNDANT),
    ("no room for this peer", REFUSED),
    ("connected to ourselves", REFUSED),
    ("handshake for a torrent", REFUSED),
)


def classify(reason: str) -> str:
    """The reason class (one of ``DISCONNECT_REASONS``) of a connection's end."""
    for prefix, key in _OUR_REASONS:
        if reason.startswith(prefix):
            return key
    return CLOSED_BY_PEER


class DisconnectCounts:
    """Connection ends by reason class; each count also bumps its ``parent`` (the
    session's totals). The counts are allocated at the first end: idle torrents stay small."""

    __slots__ = ("_counts", "parent")

    def __init__(self, parent: DisconnectCounts | None = None) -> None:
        self.parent = parent
        self._counts: list[int] | None = None

    def count(self, key: str) -> None:
        if self._counts is None:
            self._counts = [0] * len(DISCONNECT_REASONS)
        self._counts[DISCONNECT_REASONS.index(key)] += 1
        if self.parent is not None:
            self.parent.count(key)

    def as_dict(self) -> dict[str, int]:
        counts = self._counts or [0] * len(DISCONNECT_REASONS)
        return dict(zip(DISCONNECT_REASONS, counts, strict=True))


class PeerCandidates:
    """Known addresses and their next allowed connection time."""

    def __init__(
        self,
        now: Callable[[], float],
        rng: random.Random | None = None,
        totals: DisconnectCounts | None = None,
    ) -> None:
        self._now = now
        self._rng = rng or random.Random()
        self._next_try: dict[PeerAddress, float] = {}
        self._failures: dict[PeerAddress, int] = {}
        self._connecting: dict[PeerAddress, None] = {}  # a set, as a dict (see below)
        self._swarm_ids: dict[PeerAddress, bytes] = {}  # heard in another swarm than the primary
        self.banned: dict[PeerAddress, str] = {}
        # sets kept as dicts (an empty set is 216 bytes, an empty dict 64; x 10,000 torrents)
        self.banned_peer_ids: dict[bytes, None] = {}
        self.banned_hosts: dict[str, None] = {}
        self.disconnects = DisconnectCounts(totals)

    @property
    def connecting(self) -> int:
        return len(self._connecting)

    def __len__(self) -> int:
        return len(self._next_try)

    def addresses(self) -> list[PeerAddress]:
        """Every candidate address (for handing over to another swarm of the same torrent)."""
        return list(self._next_try)

    def add(
        self,
        addresses: Iterable[PeerAddress],
        *,
        retry: bool = False,
        swarm_id: bytes | None = None,
    ) -> int:
        """Learn addresses; how many can be dialled now that could not before.

        A known address becomes ready at once (a tracker or the user named it again),
        unless it is backing off after a failure; ``retry`` (the user asked) clears that too.
        ``swarm_id``: they were heard in that swarm, not the primary (a hybrid's v2 swarm).
        """
        ready = 0
        now = self._now()
        for host, port in addresses:
            address = (str(host), int(port))
            if (
                not 0 < address[1] < 65536
                or address in self.banned
                or address[0] in self.banned_hosts
            ):
                continue
            known = self._next_try.get(address)
            if known is None and len(self._next_try) >= MAX_CANDIDATES:
                continue
            if swarm_id is not None:
                self._swarm_ids[address] = swarm_id
            if known is None:
                self._next_try[address] = 0.0
                ready += 1
            elif known > now and address not in self._connecting:
                if retry:
                    self._failures.pop(address, None)
                elif address in self._failures:
                    continue
                self._next_try[address] = 0.0
                ready += 1
        return ready

    def next(self, exclude: set[PeerAddress]) -> PeerAddress | None:
        """An address worth trying now (marked as connecting), or None."""
        now = self._now()
        ready = [
            a
            for a, t in self._next_try.items()
            if t <= now and a not in self._connecting and a not in exclude
        ]
        if not ready:
            return None
        address = self._rng.choice(ready)
        self._connecting[address] = None
        # Not again while connected; how the connection ends sets the real next time.
        self._next_try[address] = now + RECONNECT_AFTER
        return address

    def swarm_id(self, address: PeerAddress) -> bytes | None:
        """The swarm ``address`` was heard in, if not the torrent's primary one."""
        return self._swarm_ids.get(address)

    def connected(self, address: PeerAddress) -> None:
        self._connecting.pop(address, None)

    def failed(self, address: PeerAddress, *, count: bool = True) -> None:
        """Our dial failed (no connection, or it closed before the handshake completed);
        ``count=False`` when we dropped it ourselves (the torrent stopped meanwhile)."""
        self._connecting.pop(address, None)
        if not count:
            if address in self._next_try:
                self._next_try[address] = 0.0
            return
        self.disconnects.count(CONNECT_FAILED)
        self._back_off(address)

    def _back_off(self, address: PeerAddress) -> None:
        if address not in self._next_try:
            return  # not a candidate (banned, dropped): nothing to back off, nothing to keep
        failures = self._failures.get(address, 0) + 1
        if failures >= MAX_FAILURES:
            self._failures.pop(address, None)
            self._next_try.pop(address, None)
            self._swarm_ids.pop(address, None)
            return
        self._failures[address] = failures
        self._next_try[address] = self._now() + RETRY_BASE * 2 ** (failures - 1)

    def disconnected(self, address: PeerAddress, listen_port: int | None, reason: str) -> str:
        """A connected peer left: count why and decide when to dial it again (to its
        listen port if it told us one). Returns the reason class."""
        key = classify(reason)
        self.disconnects.count(key)
        self._connecting.pop(address, None)
        if address in self.banned:  # its listen port is the same peer: banned as well
            if listen_port:
                self.ban((address[0], listen_port), self.banned[address])
            return key
        targets = [address] if address in self._next_try else []
        if listen_port and (back := (address[0], listen_port)) != address:
            if back in self._next_try or self.add([back]):
                targets.append(back)
        for target in targets:
            self._again(target, key)
        return key

    def _again(self, address: PeerAddress, key: str) -> None:
        if key in FAILURES:
            self._back_off(address)
            return
        self._failures.pop(address, None)  # it worked: a later failure starts the back-off anew
        if key == LEFT:
            self._next_try[address] = 0.0
        elif key in (REDUNDANT, INACTIVE, REPLACED):
            self._next_try[address] = self._now() + REDUNDANT_RETRY
        else:
            self._next_try[address] = self._now() + RECONNECT_AFTER

    def ban(self, address: PeerAddress, reason: str, *, peer_id: bytes | None = None) -> None:
        self.banned[address] = reason
        self._next_try.pop(address, None)
        self._swarm_ids.pop(address, None)
        self._failures.pop(address, None)
        self._connecting.pop(address, None)
        if peer_id is not None:
            self.banned_peer_ids[peer_id] = None

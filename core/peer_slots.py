"""Which connected peers are worth their connection slot: the inactivity policy and the
choice of the slot a newcomer may take (docs/SECURITY.md, "Idle peers").

A peer is *active* while piece data moves (a block from it or to it) or while a request could
be made right now: we are interested and it is not choking us (and has not snubbed us), or it
is interested and we are not choking it. ``Peer.last_active_at`` is the last moment it was;
keep-alives, HAVEs and other chatter never move it, so a peer that only talks holds its slot
no longer than the timeouts below.

- **Inactive** (``inactive_for >= inactivity_timeout`` while the slot is wanted, i.e. the
  torrent or the session is at its connection limit): disconnected as ``inactive``.
- **Spare** (connected and not active for ``replace_grace``): an incoming peer that finds the
  torrent or the session full takes the slot of the least useful spare peer (reason
  ``replaced``) instead of being refused. Least useful: no interest either way before some
  interest (a seed that keeps us choked is still worth more than a peer with nothing we
  want), then the longest without activity.

Everything runs in the torrent's existing one-second tick (one pass over its peers, which the
tick makes anyway) and in ``attach``; there is no timer per peer. No Twisted import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from btd.core.limits import PEER_INACTIVITY_TIMEOUT, PEER_REPLACE_GRACE

INACTIVE_REASON = "inactive: no piece traffic for {seconds} s"  # classified as ``inactive``
REPLACED_REASON = "replaced by a new peer"  # classified as ``replaced``


@dataclass(frozen=True)
class SlotPolicy:
    """The two durations of the policy (config ``session.peer_inactivity_timeout`` and
    ``session.peer_replace_grace``)."""

    inactivity_timeout: float = PEER_INACTIVITY_TIMEOUT
    replace_grace: float = PEER_REPLACE_GRACE


def requestable(peer: Any) -> bool:
    """A request could be sent now, one way or the other: the interest is worth a slot."""
    if peer.am_interested and not peer.peer_choking and not peer.snubbed:
        return True
    return bool(peer.peer_interested and not peer.am_choking)


def note_interest(peer: Any, now: float) -> None:
    """Called once per tick: request-able interest counts as activity."""
    if requestable(peer):
        peer.last_active_at = now


def inactive_for(peer: Any, now: float) -> float:
    return now - peer.last_active_at


def spare_key(peer: Any) -> tuple[bool, float]:
    """Sort key, least useful first: no interest either way, then the longest idle."""
    return (bool(peer.am_interested or peer.peer_interested), peer.last_active_at)


class SpareOwner(Protocol):
    """A swarm that may have a spare peer (``Torrent``)."""

    def release_spare(self) -> bool:
        """Close its least useful spare peer to free a session slot; False if it has none."""
        ...


class SpareSlots:
    """The session's swarms that had a spare peer at their last tick, oldest offer first.

    Lets an incoming peer for one torrent take a session slot held by another torrent's idle
    peer without a scan over all peers: a torrent offers itself in its tick when it has a
    spare peer and withdraws when it has none (or stops).
    """

    __slots__ = ("_owners",)

    def __init__(self) -> None:
        self._owners: dict[SpareOwner, None] = {}

    def __len__(self) -> int:
        return len(self._owners)

    def offer(self, owner: SpareOwner) -> None:
        self._owners.setdefault(owner, None)

    def withdraw(self, owner: SpareOwner) -> None:
        self._owners.pop(owner, None)

    def take(self) -> bool:
        """Free one session slot from some owner's spare peer; False if none has one."""
        while self._owners:
            owner = next(iter(self._owners))
            if owner.release_spare():
                return True
            del self._owners[owner]  # nothing spare after all: it offers again at its tick
        return False

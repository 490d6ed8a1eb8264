"""BEP 10 extension messages: which we speak, their ids, and the plugin handler contract.

The core speaks ``ut_metadata`` (BEP 9) itself; plugins add more through
``btd_extension_handlers`` (e.g. ``ut_pex``). Our local ids follow libtorrent's where it
has one, so captures read the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from btd.core.wire.metadata import EXTENSION_NAME as UT_METADATA

WELL_KNOWN_IDS = {"ut_pex": 1, UT_METADATA: 2}


class ExtensionHandler(Protocol):
    """What a plugin's extension does for every torrent (all calls on the reactor thread).

    ``torrent`` is the Torrent (read ``info_hash``, ``private``, ``peers``, call
    ``add_peers``); ``peer`` is a connected Peer (``link.address``, ``listen_port``,
    ``send_extended(name, payload)``, ``supports(name)``).
    """

    def peer_ready(self, torrent: Any, peer: Any) -> None:
        """The peer's extension handshake arrived (``peer.supports(name)`` is known)."""

    def message(self, torrent: Any, peer: Any, payload: bytes) -> None:
        """An extended message of this extension; raise ProtocolError to drop the peer."""

    def peer_gone(self, torrent: Any, peer: Any) -> None:
        """The connection closed."""

    # A handler may set ``allowed_on_private = True``; otherwise BEP 27 torrents neither
    # advertise nor use the extension (peer exchange would leak peers of a private swarm).
    # ``ut_metadata`` is never offered for them (libtorrent neither): their info dictionary
    # goes only to who has the .torrent (issue 13 class 7).


def local_ids(names: Iterable[str]) -> dict[str, int]:
    """Our ``m`` dictionary: well-known ids first, then free ids in name order."""
    ids: dict[str, int] = {}
    used = set(WELL_KNOWN_IDS.values())
    next_id = 10
    for name in sorted(set(names)):
        if name in WELL_KNOWN_IDS:
            ids[name] = WELL_KNOWN_IDS[name]
            continue
        while next_id in used:
            next_id += 1
        ids[name] = next_id
        used.add(next_id)
    return ids


class Extensions:
    """The daemon's extensions: names -> local ids, and the plugins' handlers."""

    def __init__(self, handlers: Mapping[str, ExtensionHandler] | None = None) -> None:
        self.handlers = dict(handlers or {})
        self.ids = local_ids([UT_METADATA, *self.handlers])
        self.names = {ext_id: name for name, ext_id in self.ids.items()}

    def advertised(self, private: bool) -> dict[str, int]:
        """The ``m`` dictionary for a torrent's extension handshake."""
        if not private:
            return dict(self.ids)
        return {
            name: ext_id
            for name, ext_id in self.ids.items()
            if name != UT_METADATA and getattr(self.handlers.get(name), "allowed_on_private", False)
        }

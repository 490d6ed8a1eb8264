"""Magnet links in the session: durable while they wait, torrents once metadata arrives.

``MagnetManager`` owns the ``MetadataFetch`` objects. When one completes, the verified info
dictionary is wrapped into a .torrent (with the magnet's trackers) and added through the
ordinary ``Session.add`` path, so it is validated exactly like a .torrent file and stored
with the resume data; the peers the fetch knew are handed to the new torrent. The manager
sees the session only through ``MagnetEnv``, a bag of callables like ``TorrentEnv``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from btd.core.bencode import encode
from btd.core.errors import MetainfoError
from btd.core.events import TorrentEvent
from btd.core.extensions import Extensions
from btd.core.layer_fetch import layer_wants
from btd.core.magnet import Magnet, parse_magnet
from btd.core.magnet_store import MagnetStore
from btd.core.metadata_fetch import MetadataFetch
from btd.core.metainfo import parse_metainfo
from btd.core.swarm_peers import DisconnectCounts
from btd.core.torrent import Torrent
from btd.core.torrent_data import check_save_path
from btd.core.torrent_env import TorrentOptions
from btd.core.torrent_settings import ADD_KEYS, options_json
from btd.core.types import torrent_label

_log = Logger()

RETRY_AFTER = 60.0  # seconds before a fetch whose torrent could not be stored starts again


def torrent_bytes(
    info: bytes, trackers: tuple[str, ...], layers: dict[bytes, bytes] | None = None
) -> bytes:
    """A .torrent around raw info bytes (kept byte-exact, so the info hash holds), with a
    v2 torrent's verified ``piece layers`` (so a restart needs nothing from peers)."""
    head: dict[bytes, Any] = {}
    if trackers:
        head[b"announce"] = trackers[0].encode()
        head[b"announce-list"] = [[t.encode()] for t in trackers]
    # "info" sorts after "announce" and "announce-list": append it raw before the final "e".
    tail = b"12:piece layers" + encode(layers) if layers else b""
    return encode(head)[:-1] + b"4:info" + info + tail + b"e"


@dataclass
class MagnetEnv:
    """The session services the magnets use (callables, read live after a reload)."""

    state_dir: Path
    clock: Any
    peer_id: bytes
    listen_port: Callable[[], int]
    tracker_client_for: Callable[[str], Any]
    connect: Callable[..., None]  # (swarm, address, *, swarm_id=None)
    can_connect: Callable[[], bool]
    max_peers: Callable[[], int]
    dht_running: Callable[[], bool]
    extensions: Extensions
    client_name: str
    options_for: Callable[[dict[str, Any]], TorrentOptions]
    has_strategy: Callable[[str], bool]
    torrent: Callable[[bytes], Torrent | None]
    """The torrent with this info hash, stored or being stored."""
    add_torrent: Callable[..., defer.Deferred[dict[str, Any]]]
    """``Session.add``: a .torrent's bytes and its options."""
    emit: Callable[[TorrentEvent], None]
    torrent_event: Callable[[Torrent, str, dict[str, Any]], None]
    run_blocking: Callable[..., defer.Deferred[Any]]
    stopping: Callable[[], bool]
    shutdown_timeout: Callable[[], float]
    disconnects: DisconnectCounts | None = None  # the session's totals
    know: Callable[[bytes], None] = lambda info_hash: None
    """An encrypted newcomer may ask for this info hash (PeerConnector.know)."""
    scheduler: Any = None  # the session's btd.core.scheduler.Scheduler (None: one per fetch)


class MagnetManager:
    """The session's magnets waiting for metadata."""

    def __init__(self, env: MagnetEnv) -> None:
        self.env = env
        self.fetches: dict[bytes, MetadataFetch] = {}
        # Fetches whose metadata is being stored as their torrent: still listed (never in
        # neither list), but out of ``fetches`` so that ``superseded`` leaves their peers.
        self.handing_over: dict[bytes, MetadataFetch] = {}
        self.store = MagnetStore(env.state_dir)
        self._v2_ids: dict[bytes, bytes] = {}  # a hybrid magnet's v2 swarm id -> info hash

    def find(self, swarm_id: bytes) -> MetadataFetch | None:
        """The waiting magnet named by ``swarm_id``: its info hash, or a hybrid magnet's v2
        swarm id (BEP 52)."""
        fetch = self.fetches.get(swarm_id)
        if fetch is None and (primary := self._v2_ids.get(swarm_id)) is not None:
            fetch = self.fetches.get(primary)
        return fetch

    def _fetch(self, magnet: Magnet, options: TorrentOptions) -> MetadataFetch:
        env = self.env
        env.know(magnet.info_hash)
        fetch = MetadataFetch(
            magnet,
            options,
            clock=env.clock,
            peer_id=env.peer_id,
            listen_port=env.listen_port,
            tracker_client_for=env.tracker_client_for,
            connect=env.connect,
            can_connect=env.can_connect,
            max_peers=env.max_peers,
            on_metadata=self._metadata,
            client_name=env.client_name,
            extensions=env.extensions,
            disconnects=env.disconnects,
            on_ban=lambda fetch, address, reason: self._emit(
                fetch, "peer_banned", {"address": address, "reason": reason}
            ),
            dht_running=env.dht_running,
            scheduler=env.scheduler,
        )
        for swarm_id in fetch.swarm_ids[1:]:
            self._v2_ids[swarm_id] = magnet.info_hash
            env.know(swarm_id)
        return fetch

    def _done_with(self, fetch: MetadataFetch) -> None:
        for swarm_id in fetch.swarm_ids[1:]:
            self._v2_ids.pop(swarm_id, None)

    def _emit(self, fetch: MetadataFetch, kind: str, data: dict[str, Any]) -> None:
        self.env.emit(TorrentEvent(kind, fetch.hex, fetch.name, str(fetch.options.save_path), data))

    def add(
        self,
        uri: str,
        given: dict[str, Any] | None = None,
    ) -> defer.Deferred[dict[str, Any]]:
        """Add a magnet with ``given`` options (checked, core/torrent_settings.py); durable
        before the Deferred fires. MetainfoError for a bad link."""
        stored = dict(given or {})
        magnet = parse_magnet(uri)
        env = self.env
        # A torrent being stored counts: its metadata may just have come.
        known = env.torrent(magnet.info_hash) or self.fetches.get(magnet.info_hash)
        if known is not None:
            return defer.succeed(
                {
                    "info_hash": magnet.hex,
                    "name": known.name,
                    "added": False,
                    "save_path": str(known.options.save_path),
                }
            )
        options = env.options_for(stored)
        if not env.has_strategy(options.strategy):
            raise ValueError(f"no piece strategy called {options.strategy!r} (enable its plugin)")
        fetch = self._fetch(magnet, options)
        self.fetches[magnet.info_hash] = fetch

        def saved(_: object) -> dict[str, Any]:
            if self.fetches.get(magnet.info_hash) is fetch:
                fetch.start()  # first: listeners (the DHT) look for active swarms
                _log.info(
                    "added {label} (magnet{paused})",
                    label=torrent_label(magnet.info_hash, fetch.name),
                    paused=", paused" if options.paused else "",
                )
                self._emit(fetch, "added", {"metadata": False})
            else:  # removed while being saved: the removal's delete may have run first
                env.run_blocking(self.store.delete, magnet.hex).addErrback(_log_failure)
            return {"info_hash": magnet.hex, "name": fetch.name, "added": True}

        def failed(failure: Any) -> Any:
            self.fetches.pop(magnet.info_hash, None)
            return failure

        d = env.run_blocking(check_save_path, options.save_path)
        d.addCallback(
            lambda _: env.run_blocking(self.store.save, magnet.hex, magnet.to_uri(), stored)
        )
        return d.addCallbacks(saved, failed)

    def _metadata(self, fetch: MetadataFetch, info: bytes) -> None:
        """The fetch has a verified info dictionary: it becomes a torrent, parsed off the
        reactor (up to 10 MiB of metadata, 200,000 files: seconds of work)."""
        env = self.env
        if self.fetches.get(fetch.info_hash) is not fetch:
            return
        if fetch.layers is None and not fetch.magnet.v1:  # btmh: are piece layers needed?
            d = env.run_blocking(layer_wants, info)
            d.addCallback(lambda found: self._layers_wanted(fetch, info, found))
            d.addErrback(self._unparsed, fetch)
            return
        data = torrent_bytes(info, fetch.magnet.trackers, fetch.layers)
        peers = fetch.known_peers()
        fetch.stop()  # listed (waiting) until parsed; asks nobody for metadata again
        d = env.run_blocking(parse_metainfo, data)
        d.addCallback(lambda meta: self._parsed(fetch, data, meta, peers))
        d.addErrback(self._unparsed, fetch)

    def _layers_wanted(self, fetch: MetadataFetch, info: bytes, found: Any) -> None:
        """A v2 dictionary's files longer than a piece: the fetch asks for their layers
        (BEP 52) and calls back once all are verified; none needed: it is a torrent now."""
        if self.fetches.get(fetch.info_hash) is not fetch:
            return
        if found is None or not found[1]:
            fetch.layers = {}
            self._metadata(fetch, info)
            return
        _log.info(
            "{label}: metadata verified; fetching the piece layers of {n} files",
            label=_label(fetch),
            n=len(found[1]),
        )
        fetch.fetch_layers(*found)

    def _unparsed(self, failure: Any, fetch: MetadataFetch) -> None:
        failure.trap(MetainfoError)
        if self.fetches.get(fetch.info_hash) is fetch:
            self._refuse(fetch, failure.value)

    def _refuse(self, fetch: MetadataFetch, exc: Exception) -> None:
        """Valid hash, unusable metadata: listed, in error, until removed."""
        fetch.error = f"metadata refused: {exc}"
        _log.error("error in {label}: {error}", label=_label(fetch), error=fetch.error)
        self._emit(fetch, "error", {"error": fetch.error, "state": "metadata"})

    def _parsed(self, fetch: MetadataFetch, data: bytes, meta: Any, peers: list[Any]) -> None:
        env = self.env
        if self.fetches.get(fetch.info_hash) is not fetch:
            return  # removed while it was parsed
        opts = fetch.options
        # Out of the list first: Session.add hands a still-waiting magnet over to its new
        # torrent (``superseded``), which must not happen to this one, whose peers we keep.
        del self.fetches[fetch.info_hash]
        self.handing_over[fetch.info_hash] = fetch
        try:
            given = {k: v for k, v in options_json(opts).items() if k in ADD_KEYS}
            d = env.add_torrent(data, meta=meta, **given)
        except (MetainfoError, ValueError) as exc:  # unusable metadata, unknown strategy
            del self.handing_over[fetch.info_hash]
            self.fetches[fetch.info_hash] = fetch
            self._refuse(fetch, exc)
            return

        def added(result: dict[str, Any]) -> None:
            self.handing_over.pop(fetch.info_hash, None)  # superseded did, unless not added
            self._done_with(fetch)
            torrent = env.torrent(fetch.info_hash)
            if torrent is not None:
                # Peers the fetch caught lying stay banned for the torrent.
                torrent.candidates.banned.update(fetch.candidates.banned)
                torrent.candidates.banned_peer_ids |= fetch.candidates.banned_peer_ids
                torrent.banned.extend(fetch.banned)
                torrent.add_peers(peers)
                env.torrent_event(torrent, "metadata", {"size": torrent.meta.total_length})
            env.run_blocking(self.store.delete, fetch.hex).addErrback(_log_failure)

        def failed(failure: Any) -> None:
            self.handing_over.pop(fetch.info_hash, None)
            self.fetches[fetch.info_hash] = fetch  # keep waiting: fetched and stored again
            fetch.error = failure.getErrorMessage()
            _log.error(
                "error in {label}: storing its metadata failed ({error}); trying again in {s:.0f} s",
                label=_label(fetch),
                error=fetch.error,
                s=RETRY_AFTER,
            )
            self._emit(fetch, "error", {"error": fetch.error, "state": "metadata"})
            env.clock.callLater(RETRY_AFTER, restart)

        def restart() -> None:
            if self.fetches.get(fetch.info_hash) is fetch and not env.stopping():
                fetch.start()

        d.addCallbacks(added, failed)

    def superseded(self, torrent: Any) -> None:
        """A .torrent was added for a magnet still waiting: the torrent takes over its peers.

        For ``Session.add`` to call once the torrent is stored; without it the waiting magnet
        would stay listed next to the torrent until its own metadata arrived.
        """
        if self.handing_over.pop(torrent.info_hash, None) is not None:
            return  # its own metadata: the torrent now lists it; _parsed moves its peers
        fetch = self.fetches.pop(torrent.info_hash, None)
        if fetch is None:
            return
        torrent.add_peers(fetch.known_peers())
        self._done_with(fetch)
        fetch.stop(self.env.shutdown_timeout())
        self.env.run_blocking(self.store.delete, fetch.hex).addErrback(_log_failure)

    def remove(self, fetch: MetadataFetch) -> defer.Deferred[dict[str, Any]]:
        self.fetches.pop(fetch.info_hash, None)
        self._done_with(fetch)
        d = self.env.run_blocking(self.store.delete, fetch.hex)
        stopped = fetch.stop(self.env.shutdown_timeout())

        def done(_: object) -> dict[str, Any]:
            _log.info("removed {label} (magnet)", label=_label(fetch))
            self._emit(fetch, "removed", {"deleted_data": False})
            return {"info_hash": fetch.hex, "removed": True, "deleted_data": False}

        return defer.gatherResults([d, stopped], consumeErrors=True).addCallback(done)

    def start(self) -> None:
        """Bring back the magnets that were waiting when the daemon last stopped."""
        stored, problems = self.store.load_all()
        for problem in problems:
            _log.error("cannot load stored magnets: {problem}", problem=problem)
        for info_hash, uri, raw in stored:
            try:
                magnet = parse_magnet(uri)
            except MetainfoError as exc:
                _log.error("stored magnet {h} is unusable: {e}", h=info_hash, e=str(exc))
                continue
            if self.env.torrent(magnet.info_hash) is not None:
                continue  # its metadata arrived just before a crash
            fetch = self._fetch(magnet, self.env.options_for(raw))
            self.fetches[magnet.info_hash] = fetch
            fetch.start()

    def stop(self) -> defer.Deferred[Any]:
        timeout = self.env.shutdown_timeout()
        return defer.DeferredList(
            [f.stop(timeout) for f in self.fetches.values()], consumeErrors=True
        )


def _label(fetch: MetadataFetch) -> str:
    return torrent_label(fetch.info_hash, fetch.name)


def _log_failure(failure: Any) -> None:
    _log.error("magnet store: {error}", error=failure.getErrorMessage())

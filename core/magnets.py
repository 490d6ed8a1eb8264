"""Magnet links in the session: durable while they wait, torrents once metadata arrives.

``MagnetManager`` owns the ``MetadataFetch`` objects. When one completes, the verified info
dictionary is wrapped into a .torrent (with the magnet's trackers) and added through the
ordinary ``Session.add`` path, so it is validated exactly like a .torrent file and stored
with the resume data; the peers the fetch knew are handed to the new torrent.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from btd.core.bencode import encode
from btd.core.errors import MetainfoError
from btd.core.events import TorrentEvent
from btd.core.magnet import Magnet, parse_magnet
from btd.core.magnet_store import MagnetStore
from btd.core.metadata_fetch import MetadataFetch
from btd.core.torrent import TorrentOptions
from btd.core.version import __version__

if TYPE_CHECKING:
    from btd.core.session import Session

_log = Logger()

RETRY_AFTER = 60.0  # seconds before a fetch whose torrent could not be stored starts again


def torrent_bytes(info: bytes, trackers: tuple[str, ...]) -> bytes:
    """A .torrent around raw info bytes (kept byte-exact, so the info hash holds)."""
    head: dict[bytes, Any] = {}
    if trackers:
        head[b"announce"] = trackers[0].encode()
        head[b"announce-list"] = [[t.encode()] for t in trackers]
    # "info" sorts after "announce" and "announce-list": append it raw before the final "e".
    return encode(head)[:-1] + b"4:info" + info + b"e"


class MagnetManager:
    """The session's magnets waiting for metadata."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.fetches: dict[bytes, MetadataFetch] = {}
        self.store = MagnetStore(Path(session.config.daemon.state_dir))

    def _options(self, raw: dict[str, Any]) -> TorrentOptions:
        cfg = self.session.config.session
        return TorrentOptions(
            save_path=Path(raw.get("save_path") or cfg.download_dir).expanduser(),
            paused=bool(raw.get("paused", False)),
            strategy=raw.get("strategy") or cfg.piece_strategy,
        )

    def _fetch(self, magnet: Magnet, options: TorrentOptions) -> MetadataFetch:
        s = self.session
        return MetadataFetch(
            magnet,
            options,
            clock=s.clock,
            peer_id=s.peer_id,
            listen_port=lambda: s.listen_port,
            tracker_client_for=lambda url: s.plugins.first("btd_tracker_client", url=url),
            connect=s.connect,
            can_connect=s.can_connect,
            max_peers=lambda: s.config.session.max_connections_per_torrent,
            on_metadata=self._metadata,
            client_name=f"btd {__version__}",
            extensions=s.extensions,
            on_ban=lambda fetch, address, reason: self._emit(
                fetch, "peer_banned", {"address": address, "reason": reason}
            ),
        )

    def _emit(self, fetch: MetadataFetch, kind: str, data: dict[str, Any]) -> None:
        self.session.emit(
            TorrentEvent(kind, fetch.hex, fetch.name, str(fetch.options.save_path), data)
        )

    def add(
        self,
        uri: str,
        *,
        save_path: str | None = None,
        paused: bool = False,
        strategy: str | None = None,
    ) -> defer.Deferred[dict[str, Any]]:
        """Add a magnet; durable before the Deferred fires. MetainfoError for a bad link."""
        magnet = parse_magnet(uri)
        s = self.session
        known = s.torrents.get(magnet.info_hash) or self.fetches.get(magnet.info_hash)
        if known is not None or magnet.info_hash in s._adding:  # _adding: metadata just came
            name = known.name if known is not None else magnet.name or magnet.hex
            return defer.succeed({"info_hash": magnet.hex, "name": name, "added": False})
        options = self._options({"save_path": save_path, "paused": paused, "strategy": strategy})
        if s.plugins.first("btd_piece_picker", name=options.strategy, view=None) is None:
            raise ValueError(f"no piece strategy called {options.strategy!r} (enable its plugin)")
        fetch = self._fetch(magnet, options)
        self.fetches[magnet.info_hash] = fetch
        stored = {"save_path": save_path, "paused": paused, "strategy": strategy}

        def saved(_: object) -> dict[str, Any]:
            if self.fetches.get(magnet.info_hash) is fetch:
                fetch.start()  # first: listeners (the DHT) look for active swarms
                self._emit(fetch, "added", {"metadata": False})
            else:  # removed while being saved: the removal's delete may have run first
                s.run_blocking(self.store.delete, magnet.hex).addErrback(_log_failure)
            return {"info_hash": magnet.hex, "name": fetch.name, "added": True}

        def failed(failure: Any) -> Any:
            self.fetches.pop(magnet.info_hash, None)
            return failure

        d = s.run_blocking(self.store.save, magnet.hex, magnet.to_uri(), stored)
        return d.addCallbacks(saved, failed)

    def _metadata(self, fetch: MetadataFetch, info: bytes) -> None:
        """The fetch has a verified info dictionary: it becomes a torrent."""
        s = self.session
        if self.fetches.get(fetch.info_hash) is not fetch:
            return
        data = torrent_bytes(info, fetch.magnet.trackers)
        peers = fetch.known_peers()
        opts = fetch.options
        # Out of the list first: Session.add hands a still-waiting magnet over to its new
        # torrent (``superseded``), which must not happen to this one, whose peers we keep.
        del self.fetches[fetch.info_hash]
        try:
            d = s.add(
                data,
                save_path=str(opts.save_path),
                paused=opts.paused,
                strategy=opts.strategy,
            )
        except (MetainfoError, ValueError) as exc:  # valid hash, unusable metadata
            self.fetches[fetch.info_hash] = fetch  # listed, in error, until removed
            fetch.error = f"metadata refused: {exc}"
            _log.error("{name}: {error}", name=fetch.name, error=fetch.error)
            self._emit(fetch, "error", {"error": fetch.error, "state": "metadata"})
            fetch.stop()
            return
        fetch.stop()

        def added(result: dict[str, Any]) -> None:
            torrent = s.torrents.get(fetch.info_hash)
            if torrent is not None:
                # Peers the fetch caught lying stay banned for the torrent.
                torrent.candidates.banned.update(fetch.candidates.banned)
                torrent.candidates.banned_peer_ids |= fetch.candidates.banned_peer_ids
                torrent.banned.extend(fetch.banned)
                torrent.add_peers(peers)
                s._torrent_event(torrent, "metadata", {"size": torrent.meta.total_length})
            s.run_blocking(self.store.delete, fetch.hex).addErrback(_log_failure)

        def failed(failure: Any) -> None:
            self.fetches[fetch.info_hash] = fetch  # keep waiting: fetched and stored again
            fetch.error = failure.getErrorMessage()
            _log.error(
                "{name}: storing its metadata failed ({error}); trying again in {s:.0f} s",
                name=fetch.name,
                error=fetch.error,
                s=RETRY_AFTER,
            )
            self._emit(fetch, "error", {"error": fetch.error, "state": "metadata"})
            s.clock.callLater(RETRY_AFTER, restart)

        def restart() -> None:
            if self.fetches.get(fetch.info_hash) is fetch and not s.stopping:
                fetch.start()

        d.addCallbacks(added, failed)

    def superseded(self, torrent: Any) -> None:
        """A .torrent was added for a magnet still waiting: the torrent takes over its peers.

        For ``Session.add`` to call once the torrent is stored; without it the waiting magnet
        would stay listed next to the torrent until its own metadata arrived.
        """
        fetch = self.fetches.pop(torrent.info_hash, None)
        if fetch is None:
            return
        torrent.add_peers(fetch.known_peers())
        fetch.stop(self.session.config.daemon.shutdown_timeout)
        self.session.run_blocking(self.store.delete, fetch.hex).addErrback(_log_failure)

    def remove(self, fetch: MetadataFetch) -> defer.Deferred[dict[str, Any]]:
        self.fetches.pop(fetch.info_hash, None)
        d = self.session.run_blocking(self.store.delete, fetch.hex)
        stopped = fetch.stop(self.session.config.daemon.shutdown_timeout)

        def done(_: object) -> dict[str, Any]:
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
            if magnet.info_hash in self.session.torrents:
                continue  # its metadata arrived just before a crash
            fetch = self._fetch(magnet, self._options(raw))
            self.fetches[magnet.info_hash] = fetch
            fetch.start()

    def stop(self) -> defer.Deferred[Any]:
        timeout = self.session.config.daemon.shutdown_timeout
        return defer.DeferredList(
            [f.stop(timeout) for f in self.fetches.values()], consumeErrors=True
        )


def _log_failure(failure: Any) -> None:
    _log.error("magnet store: {error}", error=failure.getErrorMessage())

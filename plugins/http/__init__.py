"""The ``http`` plugin: btd's JSON-RPC, its events and Transmission's RPC over HTTP(S).

Off by default; enabled by a ``plugins: http:`` section (keys in docs/CONFIG.md). Binds
127.0.0.1 unless told otherwise, and refuses any other address without a user and password
hash (plugins/http/settings.py). Everything a request can do goes through btd's own RPC
methods table (``session.rpc_methods``): one source of validation and errors.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from btd.core.errors import ConfigError
from btd.core.plugin import hookimpl
from btd.core.plugin_config import plugin_settings
from btd.plugins.http.door import Door, DoorSite
from btd.plugins.http.events import EventHub
from btd.plugins.http.ids import TorrentIds
from btd.plugins.http.rpc_resource import RpcResource
from btd.plugins.http.settings import PLUGIN, HttpSettings, parse_settings
from btd.plugins.http.site import build_root
from btd.plugins.http.transmission import TransmissionRpc
from btd.plugins.http.url_fetch import UrlFetcher, add_url_method
from btd.plugins.http.web_root import WebRoot

if TYPE_CHECKING:
    from btd.core.config_schema import Config
    from btd.core.events import TorrentEvent
    from btd.core.hookspecs import SessionView

__version__ = "0.1.0"

_log = Logger()

IDS_FILE = "transmission-ids.json"


def read_ids(path: Path) -> TorrentIds:
    """The ids file, or a fresh table (a damaged file is set aside, never trusted)."""
    try:
        return TorrentIds.loads(path.read_bytes())
    except FileNotFoundError:
        return TorrentIds()
    except (OSError, ValueError) as exc:
        _log.error("http: {path} unusable ({e}); torrent ids start again", path=str(path), e=exc)
        try:
            path.replace(path.with_suffix(".damaged"))
        except OSError:
            pass
        return TorrentIds()


def write_ids(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class HttpPlugin:
    def __init__(self) -> None:
        self.settings = HttpSettings()
        self.port: Any = None
        self.hub = EventHub()
        self.ids = TorrentIds()
        self.rpc: TransmissionRpc | None = None
        self.fetcher: UrlFetcher | None = None
        self._session: Any = None
        self._saving: Deferred[Any] | None = None
        self._dirty = False

    @hookimpl
    def btd_configure(self, config: Config) -> None:
        self.settings = parse_settings(plugin_settings(config, PLUGIN))
        if self.settings.tls:
            try:
                import OpenSSL  # noqa: F401 - Twisted's ssl: endpoint needs pyOpenSSL
            except ImportError:
                raise ConfigError(
                    "needs pyOpenSSL (pip install 'twisted[tls]')",
                    key="plugins.http.tls_certificate",
                ) from None

    @hookimpl
    def btd_rpc_methods(self, session: SessionView) -> dict[str, Any]:
        """``torrent.add_url`` (the Transmission RPC's URL adds use it too)."""

        def fetcher() -> UrlFetcher:
            if self.fetcher is None:
                self.fetcher = UrlFetcher(
                    session.reactor, allow_local=self.settings.fetch_local_urls
                )
            return self.fetcher

        return {"torrent.add_url": add_url_method(fetcher, lambda: session.rpc_methods)}

    @hookimpl
    def btd_session_started(self, session: SessionView) -> None:
        self._session = session
        path = session.state_dir / "http" / IDS_FILE
        self.ids = read_ids(path)  # one small file, once at start
        self._ids_path = path

        def call(name: str, **params: Any) -> Deferred[Any]:
            return maybeDeferred(session.rpc_methods[name], **params)

        self.rpc = TransmissionRpc(
            call,
            self.ids,
            session.reactor.seconds,
            session.run_blocking,
            secrets.token_urlsafe(32),
            self._save_ids,
        )
        door = Door(self.settings, session.reactor.seconds, session.run_blocking)
        web = WebRoot(self.settings.web_root) if self.settings.web_root is not None else None
        root = build_root(
            RpcResource(lambda: session.rpc_methods, session.reactor), self.hub, self.rpc, web
        )
        site = DoorSite(root, door, reactor=session.reactor)
        endpoint = serverFromString(session.reactor, self.settings.endpoint())
        d = endpoint.listen(site)
        d.addCallbacks(self._listening, self._not_listening)
        session.add_event_listener(self._event)

    def _listening(self, port: Any) -> None:
        self.port = port
        host = port.getHost()
        scheme = "https" if self.settings.tls else "http"
        _log.info(
            "http: listening on {scheme}://{host}:{port}/",
            scheme=scheme,
            host=host.host,
            port=host.port,
        )

    def _not_listening(self, failure: Any) -> None:
        _log.error(
            "http: cannot listen on {bind}:{port}: {why}",
            bind=self.settings.bind,
            port=self.settings.port,
            why=failure.getErrorMessage(),
        )

    def _event(self, event: TorrentEvent) -> None:
        self.hub.publish(event.kind, event.to_params())
        if self.rpc is None:
            return
        if event.kind == "added":
            if self.ids.known(event.info_hash) is None:
                self.ids.id_of(event.info_hash)
                self._save_ids()
        elif event.kind == "removed":
            self.rpc.forget(event.info_hash)
        if event.kind != "removed" and event.info_hash:
            self.rpc.touch(event.info_hash)

    def _save_ids(self) -> None:
        """Write the ids file off the reactor; one write at a time, the last state wins."""
        if self._session is None or not self.ids.changed:
            return
        if self._saving is not None:
            self._dirty = True
            return
        self.ids.changed = False
        d = self._session.run_blocking(write_ids, self._ids_path, self.ids.dumps())
        self._saving = d

        def done(result: Any) -> None:
            self._saving = None
            if self._dirty:
                self._dirty = False
                self.ids.changed = True
                self._save_ids()

        d.addErrback(
            lambda f: _log.error("http: cannot save torrent ids: {e}", e=f.getErrorMessage())
        )
        d.addBoth(done)

    @hookimpl
    def btd_session_stopping(self, session: SessionView) -> Deferred[Any] | None:
        self.hub.close_all()
        waits = []
        if self.port is not None:
            waits.append(maybeDeferred(self.port.stopListening))
            self.port = None
        if self._saving is not None:
            waits.append(self._saving)
        if not waits:
            return None
        d: Deferred[Any] = succeed(None)
        for w in waits:
            d.addCallback(lambda _, w=w: w)
        return d

"""Web seeds (BEP 19, the ``url-list`` of a .torrent): pieces fetched over HTTP(S) range
requests, alongside peers.

Each web seed of a downloading torrent is attached as a peer (``link.WebSeedLink``): it
has every piece, unchokes us, and turns our requests into Range requests (``fetch``), so
the picker, the pipeline, rates, hash checks and the ban for corrupt data are the peers'
own. When a torrent starts downloading (the ``started`` event, or already running when the
session starts) its first ``WEB_SEEDS_PER_TORRENT`` URLs are attached; a web seed that
closed for a passing reason (its slot was wanted, the torrent was full) is attached again
after ``WEB_SEED_REATTACH`` seconds while the torrent still downloads; one that was banned
(its data failed a hash check: banned by URL and peer id, like a peer) or given up (a 4xx,
repeated failures, a refused URL; the reason is logged and in ``web_seed.status``) is not,
until the torrent is started again (pause/resume). URLs go through the web seed policy of
core/outbound.py: a local address only with the torrent's ``allow_local_trackers``.

No settings. Not supported: BEP 17 ``httpseeds`` (the older GetRight-less protocol), ``ws=``
web seeds in magnet links, FTP URLs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from btd.core.limits import WEB_SEED_REATTACH, WEB_SEEDS_PER_TORRENT
from btd.core.outbound import check_web_seed_url
from btd.core.plugin import hookimpl
from btd.core.plugin_config import check_keys, plugin_settings

if TYPE_CHECKING:
    from btd.core.config_schema import Config
    from btd.core.events import TorrentEvent
    from btd.core.hookspecs import SessionView
    from btd.plugins.web_seed.link import WebSeedLink

__version__ = "0.1.0"

PLUGIN = "web_seed"
# Why a web seed's link closed, for which it is not attached again by itself.
FINAL_PREFIXES = ("web seed given up", "sent ", "torrent stopped", "both seeding")

_log = Logger(namespace="btd.plugins.web_seed")

Key = tuple[bytes, str]  # (info hash, URL)


class WebSeedPlugin:
    """The session's web seeds: attached links, waits before re-attaching, given-up URLs."""

    def __init__(self) -> None:
        self.session: Any = None
        self.stopping = False
        self.links: dict[Key, WebSeedLink] = {}
        # By info hash, then URL (an event touches one torrent's entries only):
        self.waits: dict[bytes, dict[str, Any]] = {}  # DelayedCall of a re-attach
        self.given_up: dict[bytes, dict[str, str]] = {}  # why

    # -- hooks ---------------------------------------------------------------------------------
    @hookimpl
    def btd_configure(self, config: Config) -> None:
        check_keys(plugin_settings(config, PLUGIN), (), f"plugins.{PLUGIN}")

    @hookimpl
    def btd_session_started(self, session: SessionView) -> None:
        self.session = session
        self.stopping = False
        for swarm in session.swarms():  # once: those that started before this hook
            if getattr(swarm, "meta", None) is not None and swarm.meta.url_list:
                self.consider(swarm)

    @hookimpl
    def btd_torrent_event(self, event: TorrentEvent) -> None:
        if self.session is None or self.stopping or not event.info_hash:
            return
        kind = event.kind
        if kind not in ("started", "completed", "removed", "paused", "queued", "error"):
            return
        info_hash = bytes.fromhex(event.info_hash)
        if kind == "completed":  # a web seed that lacked some files is no seed: close it too
            self._close_all(info_hash, "both seeding")
        elif kind == "started":
            self.given_up.pop(info_hash, None)  # a new run of the torrent: try them again
            # After the torrent finished starting (its state, its first dials).
            self.session.reactor.callLater(0, self._started, info_hash)
        else:
            self._forget(info_hash, drop_given_up=kind == "removed")

    @hookimpl
    def btd_session_stopping(self, session: SessionView) -> None:
        self.stopping = True
        for info_hash in list(self.waits):
            self._forget(info_hash, drop_given_up=False)

    @hookimpl
    def btd_rpc_methods(self, session: SessionView) -> Mapping[str, Callable[..., Any]]:
        def status() -> dict[str, Any]:
            """Web seeds: attached, waiting to be attached again, given up (and why)."""
            return self.status()

        return {f"{PLUGIN}.status": status}

    # -- attaching -----------------------------------------------------------------------------
    def _started(self, info_hash: bytes) -> None:
        swarm = self.session.swarm(info_hash) if self.session is not None else None
        if swarm is not None:
            self.consider(swarm)

    def consider(self, swarm: Any) -> None:
        """Attach the torrent's web seeds that are not attached, waiting, banned or given up."""
        meta = getattr(swarm, "meta", None)
        if meta is None or not meta.url_list or not self._wants(swarm):
            return
        urls = meta.url_list[:WEB_SEEDS_PER_TORRENT]
        if len(meta.url_list) > len(urls):
            _log.info(
                "{label}: using {n} of its {total} web seeds",
                label=swarm.label,
                n=len(urls),
                total=len(meta.url_list),
            )
        waits = self.waits.get(swarm.info_hash, {})
        given_up = self.given_up.get(swarm.info_hash, {})
        for url in urls:
            if (swarm.info_hash, url) in self.links or url in waits or url in given_up:
                continue
            if (url, 0) in swarm.candidates.banned:
                continue
            self._attach(swarm, url)

    def _wants(self, swarm: Any) -> bool:
        return bool(swarm.active and not swarm.complete and not self.stopping)

    def _attach(self, swarm: Any, url: str) -> None:
        from btd.plugins.web_seed.fetch import RangeFetcher
        from btd.plugins.web_seed.link import WebSeedLink

        key = (swarm.info_hash, url)
        allow_local = bool(swarm.options.allow_local_trackers)
        verdict = check_web_seed_url(url, allow_local=allow_local)
        if verdict.refused is not None:
            self.given_up.setdefault(swarm.info_hash, {})[url] = verdict.refused
            _log.warn(
                "web seed {url} of {label}: {why}", url=url, label=swarm.label, why=verdict.refused
            )
            return
        reactor = self.session.reactor
        fetcher = RangeFetcher(reactor, allow_local=allow_local)
        link = WebSeedLink(url, swarm, reactor, fetcher, self._closed)
        if not link.attach():
            fetcher.close()
            self._wait(swarm, url)
            return
        self.links[key] = link
        _log.info("web seed {url} attached to {label}", url=url, label=swarm.label)

    def _closed(self, link: WebSeedLink, reason: str) -> None:
        swarm = link.swarm
        key = (swarm.info_hash, link.url)
        if self.links.get(key) is link:
            del self.links[key]
        if reason.startswith(FINAL_PREFIXES[0]):
            self.given_up.setdefault(swarm.info_hash, {})[link.url] = reason
        elif reason.startswith("sent "):
            self.given_up.setdefault(swarm.info_hash, {})[link.url] = f"banned: {reason}"
        if not reason.startswith(FINAL_PREFIXES) and self._wants(swarm):
            self._wait(swarm, link.url)

    def _wait(self, swarm: Any, url: str) -> None:
        waits = self.waits.setdefault(swarm.info_hash, {})
        if url in waits or self.stopping:
            return

        def again() -> None:
            mine = self.waits.get(swarm.info_hash, {})
            mine.pop(url, None)
            if not mine:
                self.waits.pop(swarm.info_hash, None)
            current = self.session.swarm(swarm.info_hash) if self.session is not None else None
            if current is swarm:
                self.consider(swarm)

        waits[url] = self.session.reactor.callLater(WEB_SEED_REATTACH, again)

    def _close_all(self, info_hash: bytes, reason: str) -> None:
        swarm = self.session.swarm(info_hash) if self.session is not None else None
        meta = getattr(swarm, "meta", None)
        for url in meta.url_list[:WEB_SEEDS_PER_TORRENT] if meta is not None else ():
            link = self.links.get((info_hash, url))
            if link is not None:
                link.close(reason)

    def _forget(self, info_hash: bytes, *, drop_given_up: bool) -> None:
        for call in self.waits.pop(info_hash, {}).values():
            if call.active():
                call.cancel()
        if drop_given_up:
            self.given_up.pop(info_hash, None)

    def status(self) -> dict[str, Any]:
        """What ``web_seed.status`` answers."""
        attached = [{"info_hash": ih.hex(), "url": url} for ih, url in self.links]
        waiting = [
            {"info_hash": ih.hex(), "url": url} for ih, urls in self.waits.items() for url in urls
        ]
        given_up = [
            {"info_hash": ih.hex(), "url": url, "reason": why}
            for ih, urls in self.given_up.items()
            for url, why in urls.items()
        ]
        return {"attached": attached, "waiting": waiting, "given_up": given_up}

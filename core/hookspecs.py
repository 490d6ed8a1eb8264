"""THE plugin contract: every hook btd calls, with its arguments and when it fires.

Project name ``btd``; implement hooks with ``btd.core.plugin.hookimpl``. Every hook is
also documented in docs/PLUGINS.md (a test checks). Hooks are called with keyword
arguments; a plugin may accept only the arguments it needs. A hook implementation
that raises is logged and skipped (the daemon goes on), except ``btd_configure``,
where an exception stops the daemon with a configuration error (exit 78).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from btd.core.plugin import hookspec

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from twisted.internet.defer import Deferred

    from btd.core.config import Config
    from btd.core.events import TorrentEvent
    from btd.core.picking import PiecePicker, SwarmView


@hookspec
def btd_configure(config: Config) -> None:
    """Validate and take this plugin's settings, once, before the session starts.

    ``config.plugins[<your name>]`` holds the plugin's own mapping from the YAML
    ``plugins:`` section. Raise ``btd.core.errors.ConfigError`` (key
    ``plugins.<name>.<setting>``) for bad settings: the daemon exits with status 78.
    """


@hookspec
def btd_config_reloaded(old: Config, new: Config) -> None:
    """SIGHUP re-read the configuration file; ``new`` is now in force.

    Plugins apply what they can change live and log what needs a restart. Fires after
    the core applied its own live keys.
    """


@hookspec
def btd_session_started(session: Any) -> None:
    """The session is up: peer listener and control socket listen, torrents are loaded.

    Start plugin services (timers, sockets) here. ``session`` is the Session facade.
    """


@hookspec
def btd_session_stopping(session: Any) -> Deferred[None] | None:
    """The daemon is shutting down (SIGTERM, SIGINT, ``session.shutdown``).

    Return a Deferred to be waited for; the wait is bounded by ``daemon.shutdown_timeout``.
    Fires before torrents stop, so plugins can still read their state.
    """


@hookspec(firstresult=True)
def btd_tracker_client(url: str) -> Any | None:
    """A tracker client for this announce URL, or None if the scheme is not yours.

    The client has ``announce(url, request) -> Deferred[AnnounceResponse]``
    (``btd.core.tracker.announcer.TrackerClient``). The core answers ``http``/``https``;
    the ``udp_tracker`` plugin answers ``udp``. First non-None answer wins.
    """


@hookspec(firstresult=True)
def btd_piece_picker(name: str, view: SwarmView) -> PiecePicker | None:
    """The piece strategy called ``name`` (e.g. ``rarest-first``, ``sequential``) for a torrent.

    ``view`` is the torrent's read-only SwarmView. Return None if ``name`` is not yours.
    Called when a torrent starts and when its strategy is changed.
    """


@hookspec(firstresult=True)
def btd_resume_store(config: Config) -> Any | None:
    """Where resume data lives (the ``resume_sqlite`` plugin answers by default).

    Called once at start; the first non-None store (a ``btd.core.resume.ResumeStore``) is
    used. With none, the core keeps torrents in files under ``<state_dir>/torrents/``. A store
    that cannot be opened (corrupt, newer schema) stops the daemon with a clear error
    (exit status 78); it is never emptied or replaced.
    """


@hookspec
def btd_torrent_event(event: TorrentEvent) -> None:
    """Something happened to a torrent: ``event.kind`` is one of ``btd.core.events.EVENT_KINDS``.

    Broadcast to every plugin (notifications, watch folder bookkeeping, metrics). Called
    on the reactor thread: do not block; start work and return.
    """


@hookspec
def btd_rpc_methods(session: Any) -> Mapping[str, Callable[..., Any]] | None:
    """Extra JSON-RPC methods: ``{"<plugin>.<method>": callable}``.

    Collected once the session exists. A callable takes JSON params and returns a JSON value
    or a Deferred; raise ``btd.core.rpc.errors.RpcError`` for a documented error. Names must
    be namespaced with the plugin's name; core names cannot be overridden.
    """


@hookspec(firstresult=True)
def btd_dht_port() -> int | None:
    """The UDP port of a running DHT node, or None (BEP 5).

    Asked for every peer handshake: while a port is given, our handshakes set the DHT
    reserved bit and peers that set it too get a ``port`` message with it.
    """


@hookspec
def btd_dht_node_seen(host: str, port: int) -> None:
    """A peer sent a BEP 5 ``port`` message: ``host`` runs a DHT node on UDP ``port``.

    Called on the reactor thread; a DHT plugin may ping the node and add it to its table.
    """


@hookspec
def btd_extension_handlers() -> Mapping[str, Any] | None:
    """BEP 10 extension messages this plugin speaks: ``{"ut_pex": handler, ...}``.

    Collected once; the names are advertised in every extension handshake.
    """

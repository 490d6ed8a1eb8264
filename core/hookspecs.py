"""THE plugin contract: every hook btd calls, with its arguments and when it fires.

Project name ``btd``; implement hooks with ``btd.core.plugin.hookimpl`` (defined here, next
to the specs, and re-exported there). Every hook is also documented in docs/PLUGINS.md (a
test checks the names and the signatures). Hooks are called with keyword arguments; a plugin
may accept only the arguments it needs.

Order (one daemon's life)::

    btd_configure(config)                   once, before anything starts; may refuse (exit 78)
    btd_extension_handlers()                once, while the Session is built
    btd_rpc_methods(session)                once, when the control socket's methods are built
    btd_resume_store(config)                once, when the session opens its store to load
      ... torrents load and start (btd_tracker_client, btd_piece_picker for each) ...
    btd_session_started(session)            peers and the control socket listen
      ... btd_torrent_event*, btd_config_reloaded*, btd_dht_port*, btd_dht_node_seen*,
          btd_tracker_client*, btd_piece_picker* as things happen ...
    btd_session_stopping(session)           may return a Deferred (bounded wait)
      ... torrents stop: peers closed, ``stopped`` announced (or timed out), progress saved ...
    btd_session_stopped(session)            may return a Deferred (bounded wait)
      ... the control socket closes, the reactor stops ...

The caller: btd does not run pluggy's ``_multicall``. ``PluginHost`` (btd.core.plugin)
calls each implementation itself, so that one that raises is logged and skipped while the
others still run (pluggy would abort the whole call at the first exception). The one
exception is ``btd_configure``: a plugin that refuses its settings stops the daemon with a
configuration error (exit 78). Because of that loop, pluggy's ``wrapper``/``hookwrapper``
implementations and ``historic`` specs cannot work; ``make_plugin_manager`` refuses a plugin
that declares one (a ConfigError naming the plugin and the hook), rather than silently
calling a generator. ``tryfirst``/``trylast`` are honoured. Set ``BTD_TRACE_HOOKS=1`` to log
every hook call (arguments, results or error, duration) at info level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

PROJECT = "btd"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from btd.core.config_schema import Config
    from btd.core.events import TorrentEvent
    from btd.core.extensions import ExtensionHandler
    from btd.core.picking import PiecePicker, SwarmView
    from btd.core.resume import ResumeStore
    from btd.core.tracker.announcer import TrackerClient


class SessionView(Protocol):
    """What plugins may use of the Session (the members the built-in plugins need).

    ``reactor`` is the daemon's reactor, also its clock (``callLater``, ``seconds``,
    ``listenUDP``, ``spawnProcess``). ``config`` is the configuration in force. A swarm
    (``swarms``/``swarm``) is a torrent or a magnet still fetching its metadata: read
    ``info_hash``, ``active``, ``private``, ``swarm_ids`` (a hybrid torrent's v1 and
    truncated v2 hash, BEP 52; else ``(info_hash,)``); call ``add_peers(addresses)``, or
    ``add_peers(addresses, swarm_id=...)`` for peers found under another of its ids.
    ``swarm(info_hash)`` finds a hybrid by either id.
    """

    reactor: Any
    config: Config
    listen_port: int
    connector: Any
    """The PeerConnector (core/net/connector.py): a transport plugin (``utp``) listens
    with ``connector.inbound_factory()`` and dials through ``connector.dialer``."""
    udp: Any
    """The shared UDP sockets (``UdpSockets``, core/net/udp.py): ``udp.open(host, port,
    kind, protocol)``; uTP and the DHT share the one on the peer port this way."""

    @property
    def state_dir(self) -> Path: ...

    def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Run file or database work off the reactor thread."""
        ...

    def add(
        self,
        data: bytes,
        *,
        meta: Any = None,
        save_path: str | None = None,
        paused: bool = False,
        strategy: str | None = None,
    ) -> Deferred[dict[str, Any]]:
        """Add a .torrent (MetainfoError at once if it is not one). ``meta``: ``data``
        already parsed (``btd.core.metainfo.parse_metainfo`` on the thread pool), so a big
        .torrent is never parsed on the reactor."""
        ...

    def add_magnet(self, uri: str, **options: Any) -> Deferred[dict[str, Any]]:
        """Add a magnet link (MetainfoError at once if it is not one)."""
        ...

    def swarms(self) -> list[Any]:
        """Every torrent and every magnet waiting for its metadata."""
        ...

    def swarm(self, info_hash: bytes) -> Any | None:
        """The torrent or waiting magnet with this info hash, or None."""
        ...

    @property
    def rpc_methods(self) -> Mapping[str, Callable[..., Any]]:
        """The JSON-RPC methods table of the control socket (set before session_started)."""
        ...

    def add_event_listener(self, listener: Callable[[Any], None]) -> None:
        """Call ``listener(event)`` for every TorrentEvent, as the control socket does."""
        ...


# -- configuration --------------------------------------------------------------------------


@hookspec
def btd_configure(config: Config) -> None:
    """Validate and take this plugin's settings, once, before the session starts.

    ``config.plugins[<your name>]`` holds the plugin's own mapping from the YAML
    ``plugins:`` section (``btd.core.plugin_config.plugin_settings`` reads it). Raise
    ``btd.core.errors.ConfigError`` (key ``plugins.<name>.<setting>``) for bad settings: the
    daemon exits with status 78 and the message gets the file and line of that key.
    Returns nothing.
    """


@hookspec
def btd_config_reloaded(old: Config, new: Config) -> None:
    """SIGHUP re-read the configuration file, or ``session.set``/``session.reset`` changed
    run-time settings; ``new`` is now in force.

    Plugins apply what they can change live and log what needs a restart. Fires after
    the core applied its own live keys. Returns nothing.
    """


# -- session lifecycle ----------------------------------------------------------------------


@hookspec
def btd_session_started(session: SessionView) -> None:
    """The session is up: peer listener and control socket listen, torrents are loaded.

    Start plugin services (timers, sockets) here. Returns nothing.
    """


@hookspec
def btd_session_stopping(session: SessionView) -> Deferred[None] | None:
    """The daemon is shutting down (SIGTERM, SIGINT, ``session.shutdown``).

    Fires before torrents stop, so plugins can still read their state; stop taking new
    work here. Return a Deferred to be waited for (or None); the wait is bounded by
    ``daemon.shutdown_timeout``.
    """


@hookspec
def btd_session_stopped(session: SessionView) -> Deferred[None] | None:
    """Every torrent has stopped: peers closed, ``stopped`` announces sent or timed out.

    Close what the torrents needed until the end (e.g. the UDP trackers' socket). Fires
    before the control socket closes and the reactor stops. Return a Deferred to be
    waited for (or None); the wait is bounded by ``daemon.shutdown_timeout``.
    """


# -- answers the core asks for (firstresult) ------------------------------------------------


@hookspec(firstresult=True)
def btd_tracker_client(url: str) -> TrackerClient | None:
    """A tracker client for this announce URL, or None if the scheme is not yours.

    The client has ``announce(url, request) -> Deferred[AnnounceResponse]``. The core
    answers ``http``/``https`` (after every plugin); the ``udp_tracker`` plugin answers
    ``udp``. Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def btd_piece_picker(name: str, view: SwarmView) -> PiecePicker | None:
    """The piece strategy called ``name`` (e.g. ``rarest-first``, ``sequential``) for a torrent.

    ``view`` is the torrent's read-only SwarmView. Return None if ``name`` is not yours.
    Called when a torrent starts and when its strategy is changed. Stops at the first
    non-None result.
    """


@hookspec(firstresult=True)
def btd_resume_store(config: Config) -> ResumeStore | None:
    """Where resume data lives (the ``resume_sqlite`` plugin answers by default).

    Called once at start, on the reactor thread: opening should only peek (checking and
    recovering belong in the first ``load_all``, which runs on the thread pool; a store may
    then set ``report``, a ``btd.core.resume_recovery.StoreReport``, which the session says
    loudly). With no answer, the core keeps torrents in files under
    ``<state_dir>/torrents/``. Not isolated: a store that is not its own (newer schema,
    another program's file) stops the daemon with a clear error (exit status 78); it is
    never emptied or replaced. Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def btd_dht_port() -> int | None:
    """The UDP port of a running DHT node, or None (BEP 5).

    Asked for every peer handshake: while a port is given, our handshakes set the DHT
    reserved bit and peers that set it too get a ``port`` message with it. Stops at the
    first non-None result.
    """


# -- broadcasts and contributions -----------------------------------------------------------


@hookspec
def btd_torrent_event(event: TorrentEvent) -> None:
    """Something happened to a torrent: ``event.kind`` is one of ``btd.core.events.EVENT_KINDS``.

    Broadcast to every plugin (notifications, watch folder bookkeeping, metrics). Called
    on the reactor thread: do not block; start work and return. Returns nothing.
    """


@hookspec
def btd_rpc_methods(session: SessionView) -> Mapping[str, Callable[..., Any]] | None:
    """Extra JSON-RPC methods: ``{"<plugin>.<method>": callable}``.

    Collected once the session exists. A callable takes JSON params and returns a JSON value
    or a Deferred; raise ``btd.core.rpc.errors.RpcError`` for a documented error. Names must
    be namespaced with the plugin's name; core names cannot be overridden. Every plugin's
    mapping is used.
    """


@hookspec
def btd_dht_node_seen(host: str, port: int) -> None:
    """A peer sent a BEP 5 ``port`` message: ``host`` runs a DHT node on UDP ``port``.

    Called on the reactor thread; a DHT plugin may ping the node and add it to its table.
    Returns nothing.
    """


@hookspec
def btd_extension_handlers() -> Mapping[str, ExtensionHandler] | None:
    """BEP 10 extension messages this plugin speaks: ``{"ut_pex": handler, ...}``.

    Collected once, while the Session is built; the names are advertised in every
    extension handshake. Every plugin's mapping is used.
    """

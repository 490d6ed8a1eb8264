"""The JSON-RPC methods, built from the session as an explicit dict.

jsonrpcserver's global ``@method`` registry is never used: the daemon builds this dict
once the session exists and hands it to the ControlServer. Method names are
``noun.verb``; plugin methods are namespaced ``<plugin>.<method>``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from twisted.logger import Logger

from btd.core import session_status
from btd.core.config_render import plain_config
from btd.core.session import Session

_log = Logger()

Methods = dict[str, Callable[..., Any]]


def first_line(fn: Callable[..., Any]) -> str:
    doc = (fn.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def session_methods(session: Session, all_methods: Callable[[], Mapping[str, Any]]) -> Methods:
    """``session.*``: facts about the daemon, introspection, shutdown."""

    def info() -> dict[str, Any]:
        """Version, uptime, pid, config path and enabled plugins."""
        return session_status.info(session)

    def config() -> dict[str, Any]:
        """The configuration in force: the file it came from, then every section."""
        source = session.config.source
        return {"source": str(source) if source else None, **plain_config(session.config)}

    def methods() -> dict[str, str]:
        """Every method this daemon answers, with a one-line description."""
        return {name: first_line(fn) for name, fn in sorted(all_methods().items())}

    def shutdown() -> dict[str, bool]:
        """Stop the daemon gracefully (torrents stop, trackers are told)."""
        session.shutdown()
        return {"stopping": True}

    def plugins() -> list[dict[str, Any]]:
        """Plugins, enabled or not, with their version and hooks."""
        return session.plugins.plugin_info()

    return {
        "session.info": info,
        "session.config": config,
        "session.methods": methods,
        "session.shutdown": shutdown,
        "session.plugins": plugins,
    }


def plugin_methods(session: Session, core: Mapping[str, Any]) -> Methods:
    """Methods contributed through ``btd_rpc_methods``; clashes and bad names are refused."""
    found: Methods = {}
    for contributed in session.plugins.call("btd_rpc_methods", session=session):
        for name, fn in dict(contributed).items():
            if "." not in name or name in core or name in found or not callable(fn):
                _log.warn("plugin RPC method {name!r} refused (core name, clash or bad)", name=name)
                continue
            found[name] = fn
    return found


# Methods that name no torrent answer at once during start-up; the others wait until the
# store has been read (a second or two at 10,000 torrents), so a client polling right after a
# restart gets its torrent, not "not found" (torrent.add waits by itself).
ANSWER_WHILE_LOADING = frozenset({"torrent.list", "torrent.add", "session.stats"})


def after_store_read(session: Session, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, called once the session has read its stored torrents (same signature)."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if session.loader.read:
            return fn(*args, **kwargs)
        return session.loader.when_read().addCallback(lambda _: fn(*args, **kwargs))

    return call


def build_methods(
    session: Session, extra: Mapping[str, Callable[..., Any]] | None = None
) -> Methods:
    """All methods: the session's, the server's own (``extra``), then the plugins'."""
    from btd.core.rpc.torrent_methods import torrent_methods

    table: Methods = {}
    table.update(session_methods(session, lambda: table))
    for name, fn in torrent_methods(session).items():
        table[name] = fn if name in ANSWER_WHILE_LOADING else after_store_read(session, fn)
    table.update(extra or {})
    table.update(plugin_methods(session, table))
    return table

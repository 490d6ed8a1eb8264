"""The Twisted service tree: control socket, session, watchdog; graceful stop.

``BtdService`` starts things in an order that makes READY=1 true when it is sent
(the control socket listens, plugins started) and stops them in reverse, each step
bounded by ``daemon.shutdown_timeout`` so a stuck plugin or tracker cannot hold the
daemon hostage.
"""

from __future__ import annotations

import dataclasses
import grp
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.builtin import CorePlugin
from btd.core.config import LIVE_KEYS, Config
from btd.core.config_render import reload_diff
from btd.core.errors import BtdError, ConfigError
from btd.core.memory_trim import MemoryTrim
from btd.core.paths import default_socket
from btd.core.plugin import CORE_NAME, PluginHost
from btd.core.rpc.methods import build_methods
from btd.core.rpc.server import ControlServer, listen
from btd.core.rpc.settings_methods import settings_methods
from btd.core.sdnotify import Notifier
from btd.core.session import Session
from btd.core.verify import Verifier, make_threadpool

DISK_THREADS = 2  # SHA-1 and file I/O release the GIL: this is what uses the 2nd core

_log = Logger()


def resolve_group(group: str | int | None) -> int | None:
    """``control.allowed_group`` as a gid (a name that does not exist is a config error)."""
    if group is None:
        return None
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"no such group {group!r}", key="control.allowed_group") from None


def bounded(d: Any, timeout: float, clock: Any, what: str) -> defer.Deferred[None]:
    """Wait for ``d`` (a Deferred or a plain value) at most ``timeout`` seconds; never fails.

    On timeout the work is abandoned (cancelled) and a warning logged. A timer of our own
    rather than ``addTimeout``: cancelling a DeferredList makes it *succeed*, which
    ``addTimeout`` cannot tell from the work finishing in time.
    """
    work: defer.Deferred[Any] = defer.maybeDeferred(lambda: d)
    finished: defer.Deferred[None] = defer.Deferred()
    gave_up = False

    def give_up() -> None:
        nonlocal gave_up
        gave_up = True
        _log.warn("{what} did not finish within {timeout} s; going on", what=what, timeout=timeout)
        work.cancel()
        if not finished.called:
            finished.callback(None)

    timer = clock.callLater(timeout, give_up)

    def settle(result: Any) -> None:
        if timer.active():
            timer.cancel()
        if isinstance(result, Failure) and not gave_up:
            _log.failure("{what} failed", result, what=what)
        if not finished.called:
            finished.callback(None)

    work.addBoth(settle)
    return finished


def _logged(d: Any, what: str) -> defer.Deferred[Any]:
    """``d`` with a failure logged, not raised (a cancellation after a timeout is not news)."""

    def report(failure: Failure) -> None:
        if not failure.check(defer.CancelledError):
            _log.failure("{what} failed", failure, what=what)

    return defer.maybeDeferred(lambda: d).addErrback(report)


def apply_live(old: Config, new: Config, live: Iterable[str]) -> Config:
    """``old`` with the ``live`` keys (dotted, e.g. ``session.upload_slots``) taken from ``new``.

    Restart-only keys keep their running values, so the running config says what is in
    force and the next reload still reports them as waiting for a restart. ``source`` is
    ``new``'s: the file just read is the one in use (``session.info``'s ``config_path``).
    """
    changes: dict[str, dict[str, Any]] = {}
    labels = new.labels if "labels" in live else old.labels  # the per-label defaults
    for dotted in live:
        if dotted == "labels":
            continue
        section, key = dotted.split(".", 1)
        changes.setdefault(section, {})[key] = getattr(getattr(new, section), key)
    sections = {
        name: dataclasses.replace(getattr(old, name), **values) for name, values in changes.items()
    }
    return dataclasses.replace(old, **sections, labels=labels, source=new.source)


def live_settings(config: Config) -> str:
    """``key=value`` for every key a reload can change (what a debug log shows after one)."""
    values = []
    for dotted in sorted(LIVE_KEYS):
        section, key = dotted.split(".", 1)
        values.append(f"{dotted}={getattr(getattr(config, section), key)!r}")
    return ", ".join(values)


class BtdService(MultiService):
    """The daemon: everything between ``startService`` and ``stopService``."""

    def __init__(
        self,
        config: Config,
        plugins: PluginHost,
        reactor: Any,
        *,
        notifier: Notifier | None = None,
        on_level_change: Callable[[str], None] = lambda level: None,
        on_umask_change: Callable[[int | None], None] = lambda mask: None,
        request_shutdown: Callable[[], None] | None = None,
        reread: Callable[[], Config] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.plugins = plugins
        self.reactor = reactor
        self.notifier = notifier or Notifier({})
        self.on_level_change = on_level_change
        self.on_umask_change = on_umask_change  # the umask is the process's: daemon.py sets it
        self.reread = reread  # the files read again, as SIGHUP does (session.reset)
        plugins.register(CORE_NAME, CorePlugin(reactor))
        pool = make_threadpool(reactor, DISK_THREADS, "btd-disk")  # no thread until used
        self.session = Session(
            config,
            plugins,
            reactor,
            verifier=Verifier(reactor, pool),
            threadpool=pool,
            request_shutdown=request_shutdown or reactor.stop,
        )
        self.control: ControlServer | None = None
        self._port: Any = None
        self._peer_port: Any = None
        self._watchdog: LoopingCall | None = None
        self.memory_trim = MemoryTrim.for_this_process(self.reactor)

        # Fixed at start: a reload that changes control.socket needs a restart.
        self.socket_path = Path(config.control.socket or default_socket())

    def startService(self) -> None:
        super().startService()
        gid = resolve_group(self.config.control.allowed_group)
        self.control = ControlServer({}, allowed_gid=gid, clock=self.reactor)
        self.control.message_size = self.memory_trim.message  # core/memory_trim.py
        settings = settings_methods(
            lambda: self.config, self.apply_config, self.session.run_blocking, self.reread
        )
        self.control.set_methods(
            build_methods(self.session, {**self.control.builtin_methods(), **settings})
        )
        self.session.rpc_methods = self.control.methods
        self.session.add_event_listener(
            lambda event: self.control.publish(event.kind, event.to_params())  # type: ignore[union-attr]
        )
        self._port = listen(self.reactor, self.socket_path, self.control)
        self._listen_peers()
        self.session.start()
        self.plugins.call("btd_session_started", session=self.session)
        _log.info("btd listening for control on {path}", path=str(self.socket_path))
        self.notifier.ready(f"control socket {self.socket_path}")
        if self.notifier.watchdog_interval:
            self._watchdog = LoopingCall(self.notifier.watchdog)
            self._watchdog.clock = self.reactor
            self._watchdog.start(self.notifier.watchdog_interval, now=True)

    def _listen_peers(self) -> None:
        cfg = self.config.session
        connector = self.session.connector
        factory = connector.inbound_factory()  # counts its connections against the limit
        try:
            self._peer_port = self.reactor.listenTCP(
                cfg.listen_port, factory, interface=cfg.listen_host
            )
        except Exception as exc:  # CannotListenError: port in use, bad address
            raise BtdError(
                f"cannot listen for peers on {cfg.listen_host}:{cfg.listen_port}: {exc}"
            ) from exc
        self.session.listen_port = self._peer_port.getHost().port
        _log.info("listening for peers on port {port}", port=self.session.listen_port)

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        self.notifier.stopping()
        _log.info("btd stopping")
        timeout = self.config.daemon.shutdown_timeout
        self.session.stopping = True
        yield self._plugins_stop("btd_session_stopping", timeout, "plugins' shutdown")
        if self._peer_port is not None:
            yield defer.maybeDeferred(self._peer_port.stopListening)
        yield bounded(self.session.stop(), timeout, self.reactor, "stopping torrents")
        yield self._plugins_stop("btd_session_stopped", timeout, "plugins' final shutdown")
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        self.memory_trim.cancel()
        if self.control is not None:
            self.control.close_all()
        if self._port is not None:
            yield defer.maybeDeferred(self._port.stopListening)
        yield defer.maybeDeferred(super().stopService)
        _log.info("btd stopped")

    def _plugins_stop(self, hook: str, timeout: float, what: str) -> defer.Deferred[None]:
        """Call a stop hook; wait for the Deferreds it returned, at most ``timeout`` s."""
        waits = self.plugins.call(hook, session=self.session)
        return bounded(
            defer.DeferredList(
                [_logged(d, f"a plugin's {hook}") for d in waits], consumeErrors=True
            ),
            timeout,
            self.reactor,
            what,
        )

    def reload(self, new: Config) -> None:
        """Apply a re-read configuration: live keys now, the rest logged for a restart."""
        if self.session.stopping:
            _log.warn("reload ignored: btd is stopping")
            return
        self.notifier.reloading()
        try:
            self.apply_config(new)
        except ConfigError as exc:
            _log.error("reload refused, keeping the running configuration: {error}", error=str(exc))
            self.notifier.ready("reload refused")
            return
        self.notifier.ready()

    def apply_config(self, new: Config) -> None:
        """The one path of a configuration change (SIGHUP, ``session.set``): live keys now,
        the rest logged for a restart; ConfigError (nothing changed) if ``new`` is refused."""
        live, restart = reload_diff(self.config, new)
        gid = resolve_group(new.control.allowed_group)
        old = self.config
        self.config = applied = apply_live(old, new, live)
        if "daemon.log_level" in live:
            self.on_level_change(applied.daemon.log_level)
        if "session.umask" in live:
            self.on_umask_change(applied.session.umask)
        if self.control is not None:
            self.control.set_allowed_gid(gid)
        self.session.apply_config(applied)
        # Plugins see their new settings (they may apply some live); the core keeps the old.
        told = dataclasses.replace(applied, plugins=new.plugins)
        self.plugins.call("btd_config_reloaded", old=old, new=told)
        for key in restart:
            _log.warn("{key} changed; it takes effect after a restart", key=key)
        _log.info("configuration reloaded ({n} live change(s))", n=len(live))
        _log.debug("live settings in force: {values}", values=live_settings(applied))

    def reload_refused(self, reason: str) -> None:
        """SIGHUP with a file that does not load: keep everything, say so, stay READY."""
        if self.session.stopping:
            return
        self.notifier.reloading()
        _log.error("reload refused, keeping the running configuration: {error}", error=reason)
        self.notifier.ready("reload refused")

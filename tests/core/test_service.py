"""BtdService: bounded stop, group lookup, reload bookkeeping, and isolation of failing plugins."""

from __future__ import annotations

import dataclasses
import gc
import grp
import json
import os
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher

from btd.core import session_status
from btd.core.config import Config, default_config, with_overrides
from btd.core.errors import ConfigError
from btd.core.events import TorrentEvent
from btd.core.plugin import hookimpl, make_plugin_manager
from btd.core.rpc.methods import build_methods
from btd.core.sdnotify import Notifier
from btd.core.service import BtdService, apply_live, bounded, resolve_group


# -- helpers ---------------------------------------------------------------------------------
@pytest.fixture()
def logged() -> Iterator[list[dict[str, Any]]]:
    """Every log event published while the test runs."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def texts(events: list[dict[str, Any]], level: LogLevel | None = None) -> list[str]:
    from twisted.logger import formatEvent

    return [formatEvent(e) for e in events if level is None or e.get("log_level") == level]


def make_config(tmp_path: Path, **session: Any) -> Config:
    config = with_overrides(
        default_config({"HOME": str(tmp_path)}),
        state_dir=tmp_path / "state",
        socket=tmp_path / "run" / "btd.sock",
        download_dir=tmp_path / "downloads",
        listen_port=0,
    )
    session.setdefault("listen_host", "127.0.0.1")
    return dataclasses.replace(config, session=dataclasses.replace(config.session, **session))


class Recorder:
    """A well-behaved plugin: remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[TorrentEvent] = []
        self.started = 0
        self.reloads: list[tuple[Config, Config]] = []

    @hookimpl
    def btd_session_started(self, session: Any) -> None:
        self.started += 1

    @hookimpl
    def btd_torrent_event(self, event: TorrentEvent) -> None:
        self.events.append(event)

    @hookimpl
    def btd_config_reloaded(self, old: Config, new: Config) -> None:
        self.reloads.append((old, new))


class BoomPlugin:
    """Every lifecycle hook raises."""

    @hookimpl
    def btd_session_started(self, session: Any) -> None:
        raise RuntimeError("boom at start")

    @hookimpl
    def btd_torrent_event(self, event: TorrentEvent) -> None:
        raise RuntimeError("boom on event")

    @hookimpl
    def btd_session_stopping(self, session: Any) -> None:
        raise RuntimeError("boom at stop")


class Stuck:
    """A plugin whose shutdown never finishes."""

    def __init__(self) -> None:
        self.pending: defer.Deferred[None] = defer.Deferred()

    @hookimpl
    def btd_session_stopping(self, session: Any) -> defer.Deferred[None]:
        return self.pending


def host(**plugins: Any) -> Any:
    return make_plugin_manager(
        {name: {} for name in plugins},
        available={name: (lambda p=p: p) for name, p in plugins.items()},
    )


EVENT = TorrentEvent("added", "ab" * 20, "demo", "/tmp/demo")


# -- resolve_group ----------------------------------------------------------------------------
def test_resolve_group() -> None:
    mine = grp.getgrgid(os.getgid())
    assert resolve_group(None) is None
    assert resolve_group(4242) == 4242
    assert resolve_group(mine.gr_name) == mine.gr_gid


def test_resolve_group_unknown_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_group("no-such-group-btd-test")
    assert info.value.key == "control.allowed_group"
    assert "no-such-group-btd-test" in str(info.value)


# -- bounded -----------------------------------------------------------------------------------
def test_bounded_passes_a_value_through_at_once() -> None:
    clock = Clock()
    d = bounded(42, 5, clock, "work")
    assert d.called and d.result is None
    assert not clock.getDelayedCalls()


def test_bounded_waits_for_a_deferred_that_finishes_in_time() -> None:
    clock = Clock()
    work: defer.Deferred[str] = defer.Deferred()
    d = bounded(work, 5, clock, "work")
    clock.advance(4)
    assert not d.called
    work.callback("done")
    assert d.called and d.result is None
    assert not clock.getDelayedCalls()  # the timer went with it


def test_bounded_abandons_a_stuck_deferred(logged: list[dict[str, Any]]) -> None:
    clock = Clock()
    work: defer.Deferred[None] = defer.Deferred()
    d = bounded(work, 5, clock, "plugins' shutdown")
    clock.advance(4.9)
    assert not d.called
    clock.advance(0.1)
    assert d.called and d.result is None
    assert work.called  # cancelled, not left hanging
    assert any("did not finish within 5 s" in t for t in texts(logged, LogLevel.warn))


def test_bounded_logs_a_failure_and_does_not_fail(logged: list[dict[str, Any]]) -> None:
    clock = Clock()
    d = bounded(defer.fail(RuntimeError("kaput")), 5, clock, "stopping torrents")
    assert d.called and d.result is None
    assert any("stopping torrents failed" in t for t in texts(logged, LogLevel.critical))


def test_bounded_times_out_a_deferred_list(logged: list[dict[str, Any]]) -> None:
    """The stopService pattern: cancelling a DeferredList *succeeds* it; still a timeout."""
    clock = Clock()
    stuck: defer.Deferred[None] = defer.Deferred()
    d = bounded(defer.DeferredList([stuck], consumeErrors=True), 3, clock, "plugins' shutdown")
    clock.advance(3)
    assert d.called
    assert any("did not finish within 3 s" in t for t in texts(logged, LogLevel.warn))


def test_stop_abandons_a_stuck_plugin_after_shutdown_timeout(
    tmp_path: Path, logged: list[dict[str, Any]]
) -> None:
    config = make_config(tmp_path)
    config = dataclasses.replace(
        config, daemon=dataclasses.replace(config.daemon, shutdown_timeout=7.0)
    )
    stuck = Stuck()
    reactor = MemoryReactorClock()
    service = BtdService(config, host(stuck=stuck), reactor, request_shutdown=lambda: None)
    stopped = service.stopService()
    reactor.advance(6.9)
    assert not stopped.called
    reactor.advance(0.1)
    assert stopped.called
    assert stuck.pending.called  # cancelled
    assert any("did not finish within 7.0 s" in t for t in texts(logged, LogLevel.warn))
    # the cancelled plugin Deferred is consumed: nothing "unhandled" is left behind
    del stopped, stuck, service
    gc.collect()
    assert not [t for t in texts(logged, LogLevel.critical) if "Unhandled" in t]


# -- reload ------------------------------------------------------------------------------------
@pytest.fixture()
def manager(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield path, sock
    sock.close()


def test_apply_live_keeps_restart_only_keys(tmp_path: Path) -> None:
    old = make_config(tmp_path, upload_slots=4, listen_port=6881)
    new = make_config(tmp_path, upload_slots=8, listen_port=7000)
    applied = apply_live(old, new, ["session.upload_slots"])
    assert applied.session.upload_slots == 8
    assert applied.session.listen_port == 6881
    assert apply_live(old, new, []) == old


def test_reload_applies_live_keys_and_keeps_reporting_restart_keys(
    tmp_path: Path, manager: tuple[Path, socket.socket], logged: list[dict[str, Any]]
) -> None:
    path, sock = manager
    old = make_config(tmp_path, upload_slots=4, listen_port=6881)
    recorder = Recorder()
    levels: list[str] = []
    masks: list[int | None] = []
    service = BtdService(
        old,
        host(rec=recorder),
        MemoryReactorClock(),
        notifier=Notifier({"NOTIFY_SOCKET": str(path)}),
        on_level_change=levels.append,
        on_umask_change=masks.append,
    )
    new = make_config(tmp_path, upload_slots=8, listen_port=7000, umask=0o002)
    new = dataclasses.replace(
        new,
        daemon=dataclasses.replace(new.daemon, log_level="debug"),
        plugins={"rec": {"verbose": True}},
    )

    service.reload(new)
    assert sock.recv(4096).startswith(b"RELOADING=1\n")
    assert sock.recv(4096) == b"READY=1"
    assert levels == ["debug"]
    assert masks == [0o002]
    for running in (service.config, service.session.config, recorder.reloads[-1][1]):
        assert running.session.upload_slots == 8
        assert running.daemon.log_level == "debug"
        assert running.session.listen_port == 6881  # needs a restart: not in force
    assert service.config.plugins == old.plugins  # the core restarts plugins to apply them
    assert recorder.reloads[-1][0] is old
    assert recorder.reloads[-1][1].plugins == {"rec": {"verbose": True}}  # may apply live
    warnings = texts(logged, LogLevel.warn)
    assert warnings.count("session.listen_port changed; it takes effect after a restart") == 1
    assert warnings.count("plugins.rec changed; it takes effect after a restart") == 1

    service.reload(new)  # the same file again: the port is still waiting for a restart
    warnings = texts(logged, LogLevel.warn)
    assert warnings.count("session.listen_port changed; it takes effect after a restart") == 2
    assert warnings.count("plugins.rec changed; it takes effect after a restart") == 2
    assert levels == ["debug"]  # unchanged level: not set again
    assert masks == [0o002]
    assert any("session.upload_slots=8" in t for t in texts(logged, LogLevel.debug))


def test_reload_names_the_file_now_in_use(tmp_path: Path) -> None:
    old = make_config(tmp_path, upload_slots=4)
    assert old.source is None  # started on the built-in defaults
    service = BtdService(old, host(), MemoryReactorClock())
    assert session_status.info(service.session)["config_path"] is None
    new = dataclasses.replace(
        make_config(tmp_path, upload_slots=4, listen_port=7000), source=tmp_path / "btd.yaml"
    )
    service.reload(new)  # nothing live changed, a restart-only key did: the file is in use
    assert session_status.info(service.session)["config_path"] == str(tmp_path / "btd.yaml")
    answer = build_methods(service.session)["session.config"]()
    assert answer["source"] == str(tmp_path / "btd.yaml")
    assert answer["session"]["listen_port"] == old.session.listen_port  # what is in force
    assert service.config.source == tmp_path / "btd.yaml"
    assert service.config.session.listen_port == old.session.listen_port


def test_reload_with_unknown_group_changes_nothing(
    tmp_path: Path, manager: tuple[Path, socket.socket]
) -> None:
    path, sock = manager
    old = make_config(tmp_path)
    service = BtdService(
        old, host(), MemoryReactorClock(), notifier=Notifier({"NOTIFY_SOCKET": str(path)})
    )
    bad = dataclasses.replace(
        make_config(tmp_path, upload_slots=9),
        control=dataclasses.replace(old.control, allowed_group="no-such-group-btd-test"),
    )
    service.reload(bad)
    assert sock.recv(4096).startswith(b"RELOADING=1")
    assert sock.recv(4096).startswith(b"READY=1")
    assert service.config is old


def test_reload_refused_keeps_the_config_and_says_ready(
    tmp_path: Path, manager: tuple[Path, socket.socket], logged: list[dict[str, Any]]
) -> None:
    path, sock = manager
    old = make_config(tmp_path)
    service = BtdService(
        old, host(), MemoryReactorClock(), notifier=Notifier({"NOTIFY_SOCKET": str(path)})
    )
    service.reload_refused("bad.yaml:3: session.upload_slots: must be positive")
    assert sock.recv(4096).startswith(b"RELOADING=1")
    assert sock.recv(4096).startswith(b"READY=1")
    assert service.config is old
    assert any("bad.yaml:3: session.upload_slots" in t for t in texts(logged, LogLevel.error))


def test_reload_while_stopping_is_ignored(tmp_path: Path) -> None:
    old = make_config(tmp_path)
    levels: list[str] = []
    service = BtdService(old, host(), MemoryReactorClock(), on_level_change=levels.append)
    service.session.stopping = True
    new = dataclasses.replace(old, daemon=dataclasses.replace(old.daemon, log_level="debug"))
    service.reload(new)
    assert service.config is old and not levels


# -- a failing plugin on a running service (real reactor, real socket) ---------------------------
def pump(reactor: Any, until: Callable[[], bool], seconds: float = 10.0) -> None:
    """Drive the real reactor until a condition holds (bounded, no sleeping)."""
    deadline = time.monotonic() + seconds
    while not until():
        assert time.monotonic() < deadline, "timed out"
        reactor.iterate(0.01)


class LineClient:
    """A raw control client whose replies are read while the test drives the reactor."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.buf = b""
        self.next_id = 0

    def send(self, method: str, params: Any = None) -> int:
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        return self.next_id

    def lines(self) -> list[dict[str, Any]]:
        while select.select([self.sock], [], [], 0)[0]:
            data = self.sock.recv(65536)
            if not data:
                break
            self.buf += data
        return [json.loads(x) for x in self.buf.splitlines()]

    def reply(self, reactor: Any, request_id: int) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def arrived() -> bool:
            found[:] = [m for m in self.lines() if m.get("id") == request_id]
            return bool(found)

        pump(reactor, arrived)
        return found[0]

    def close(self) -> None:
        self.sock.close()


def test_a_raising_plugin_does_not_take_the_service_down(
    tmp_path: Path, logged: list[dict[str, Any]]
) -> None:
    from twisted.internet import reactor

    config = make_config(tmp_path)
    recorder = Recorder()
    plugins = host(boom=BoomPlugin(), rec=recorder)
    service = BtdService(config, plugins, reactor, request_shutdown=lambda: None)
    heard: list[TorrentEvent] = []
    service.startService()
    client: LineClient | None = None
    try:
        assert recorder.started == 1  # the hook went on after boom raised
        failures = texts(logged, LogLevel.critical)
        assert any("boom failed in btd_session_started" in t for t in failures)

        client = LineClient(config.control.socket)
        info = client.reply(reactor, client.send("session.info"))["result"]
        assert info["pid"] == os.getpid()
        assert info["plugins"] == ["boom", "rec"]
        assert client.reply(reactor, client.send("events.subscribe"))["result"] is not None

        service.session.add_event_listener(heard.append)
        service.session.emit(EVENT)
        assert recorder.events == [EVENT]
        assert heard == [EVENT]
        failures = texts(logged, LogLevel.critical)
        assert any("boom failed in btd_torrent_event" in t for t in failures)

        def notes(c: LineClient = client) -> list[dict[str, Any]]:
            return [m for m in c.lines() if m.get("method") and "id" not in m]

        pump(reactor, lambda: bool(notes()))
        note = notes()[0]
        assert note["params"]["info_hash"] == EVENT.info_hash
        assert note["params"]["event"] == "added"

        again = client.reply(reactor, client.send("session.info"))
        assert again["result"]["pid"] == os.getpid()
    finally:
        if client is not None:
            client.close()
        stopped = service.stopService()
        pump(reactor, lambda: stopped.called)
        service.session.threadpool.stop()
    assert any("boom failed in btd_session_stopping" in t for t in texts(logged, LogLevel.critical))
    assert not os.path.lexists(config.control.socket)
    assert not service.running

"""The service's side of the plugin contract: the stop order and the core's own plugin."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from btd.core.builtin import CorePlugin
from btd.core.config import Config, default_config, with_overrides
from btd.core.plugin import CORE_NAME, hookimpl, make_plugin_manager
from btd.core.service import BtdService


def make_config(tmp_path: Path, timeout: float = 10.0) -> Config:
    config = with_overrides(
        default_config({"HOME": str(tmp_path)}),
        state_dir=tmp_path / "state",
        socket=tmp_path / "run" / "btd.sock",
        download_dir=tmp_path / "downloads",
        listen_port=0,
    )
    return dataclasses.replace(
        config, daemon=dataclasses.replace(config.daemon, shutdown_timeout=timeout)
    )


class Order:
    """Writes down when its stop hooks run; each returns a Deferred the test fires."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen
        self.stopping: defer.Deferred[None] = defer.Deferred()
        self.stopped: defer.Deferred[None] = defer.Deferred()

    @hookimpl
    def btd_session_stopping(self, session: Any) -> defer.Deferred[None]:
        self.seen.append("stopping")
        return self.stopping

    @hookimpl
    def btd_session_stopped(self, session: Any) -> defer.Deferred[None]:
        self.seen.append("stopped")
        return self.stopped


def service_with(tmp_path: Path, plugin: Any, timeout: float = 10.0) -> tuple[Any, Any]:
    reactor = MemoryReactorClock()
    host = make_plugin_manager({"order": {}}, available={"order": lambda: plugin})
    service = BtdService(
        make_config(tmp_path, timeout), host, reactor, request_shutdown=lambda: None
    )
    return service, reactor


def test_stop_hooks_surround_the_torrents_stop(tmp_path: Path) -> None:
    seen: list[str] = []
    plugin = Order(seen)
    service, reactor = service_with(tmp_path, plugin)
    torrents: defer.Deferred[None] = defer.Deferred()

    def stop_torrents() -> defer.Deferred[None]:
        seen.append("torrents stop")
        return torrents

    service.session.stop = stop_torrents
    done = service.stopService()
    assert seen == ["stopping"]  # waits for the plugin's stopping Deferred
    plugin.stopping.callback(None)
    assert seen == ["stopping", "torrents stop"]
    torrents.callback(None)  # every torrent stopped, `stopped` announces out
    assert seen == ["stopping", "torrents stop", "stopped"]
    assert not done.called  # the stopped hook's Deferred is waited for too
    plugin.stopped.callback(None)
    assert done.called


def test_a_stuck_stopped_hook_is_abandoned_after_the_timeout(tmp_path: Path) -> None:
    seen: list[str] = []
    plugin = Order(seen)
    plugin.stopping.callback(None)
    service, reactor = service_with(tmp_path, plugin, timeout=3.0)
    done = service.stopService()
    assert seen == ["stopping", "stopped"] and not done.called
    reactor.advance(2.9)
    assert not done.called
    reactor.advance(0.1)
    assert done.called and plugin.stopped.called  # cancelled


def test_the_service_registers_the_core_plugin_with_its_reactor(tmp_path: Path) -> None:
    service, reactor = service_with(tmp_path, Order([]))
    core = service.plugins.pm.get_plugin(CORE_NAME)
    assert isinstance(core, CorePlugin) and core.reactor is reactor
    client = service.plugins.first("btd_tracker_client", url="http://t.example/announce")
    assert client is not None
    assert service.plugins.first("btd_tracker_client", url="udp://t.example:1") is None


def test_a_plugin_answering_http_wins_over_the_core(tmp_path: Path) -> None:
    class Mine:
        @hookimpl
        def btd_tracker_client(self, url: str) -> str:
            return "mine"

    service, _ = service_with(tmp_path, Mine())
    assert service.plugins.first("btd_tracker_client", url="http://t.example/a") == "mine"

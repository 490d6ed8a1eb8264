"""The web_seed plugin's bookkeeping: which URLs get attached when, what waits, what is
given up, on a real Torrent with a fake HTTP side (tests/torrent_harness.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from torrent_harness import Swarm
from web_seed_fakes import FakeFetcher

from btd.core.errors import ConfigError
from btd.core.events import TorrentEvent
from btd.plugins import web_seed as plugin_module
from btd.plugins.web_seed import WebSeedPlugin
from btd.plugins.web_seed import fetch as fetch_module

GOOD = "http://mirror.example.org/pub/"


class FakeSession:
    def __init__(self, swarm: Swarm) -> None:
        self.reactor = swarm.clock
        self.torrent = swarm.torrent

    def swarms(self) -> list[Any]:
        return [self.torrent]

    def swarm(self, info_hash: bytes) -> Any:
        return self.torrent if info_hash == self.torrent.info_hash else None


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[WebSeedPlugin, Swarm]:
    fetchers: list[FakeFetcher] = []

    def make(*args: Any, **kwargs: Any) -> FakeFetcher:
        fetchers.append(FakeFetcher())
        return fetchers[-1]

    monkeypatch.setattr(fetch_module, "RangeFetcher", make)
    swarm = Swarm(tmp_path)
    swarm.torrent.meta = dataclasses.replace(
        swarm.torrent.meta, url_list=(GOOD, "http://127.0.0.1:8000/x/")
    )
    plugin = WebSeedPlugin()
    plugin.btd_session_started(FakeSession(swarm))  # nothing runs yet: not started
    swarm.start()
    return plugin, swarm


def started(plugin: WebSeedPlugin, swarm: Swarm) -> None:
    t = swarm.torrent
    plugin.btd_torrent_event(TorrentEvent("started", t.hex, t.name, "/tmp"))
    swarm.clock.advance(0)


def test_a_started_torrent_gets_its_web_seeds(setup: tuple[WebSeedPlugin, Swarm]) -> None:
    plugin, swarm = setup
    started(plugin, swarm)
    status = plugin.status()
    assert [row["url"] for row in status["attached"]] == [GOOD]
    (refused,) = status["given_up"]  # the local one: the torrent lacks allow_local_trackers
    assert refused["url"] == "http://127.0.0.1:8000/x/" and "SSRF" in refused["reason"]
    assert [p.client for p in swarm.torrent.peers] == ["web seed"]
    started(plugin, swarm)  # again: nothing doubles
    assert len(swarm.torrent.peers) == 1


def test_a_web_seed_closed_for_a_passing_reason_comes_back(
    setup: tuple[WebSeedPlugin, Swarm],
) -> None:
    plugin, swarm = setup
    started(plugin, swarm)
    link = plugin.links[(swarm.torrent.info_hash, GOOD)]
    link.close("idle for 120 s")
    swarm.clock.advance(0)
    assert plugin.status()["waiting"] == [{"info_hash": swarm.torrent.hex, "url": GOOD}]
    swarm.clock.advance(59)
    assert not swarm.torrent.peers
    swarm.clock.advance(1)
    assert [row["url"] for row in plugin.status()["attached"]] == [GOOD]


def test_given_up_and_banned_ones_wait_for_the_next_start(
    setup: tuple[WebSeedPlugin, Swarm],
) -> None:
    plugin, swarm = setup
    started(plugin, swarm)
    plugin.links[(swarm.torrent.info_hash, GOOD)].give_up("HTTP 403 from somewhere")
    swarm.clock.advance(600)
    status = plugin.status()
    assert status["attached"] == [] and status["waiting"] == []
    assert any("HTTP 403" in row["reason"] for row in status["given_up"])
    started(plugin, swarm)  # paused and resumed: tried again
    assert [row["url"] for row in plugin.status()["attached"]] == [GOOD]
    peer = next(iter(swarm.torrent.peers))
    swarm.torrent.ban(peer, "corrupt data")
    swarm.clock.advance(0)
    assert any(row["reason"] == "banned: sent corrupt data" for row in plugin.status()["given_up"])
    started(plugin, swarm)  # banned by URL: never again while the torrent runs
    assert plugin.status()["attached"] == []


def test_completion_closes_them(setup: tuple[WebSeedPlugin, Swarm]) -> None:
    plugin, swarm = setup
    started(plugin, swarm)
    t = swarm.torrent
    plugin.btd_torrent_event(TorrentEvent("completed", t.hex, t.name, "/tmp"))
    swarm.clock.advance(0)
    assert not t.peers and plugin.status()["attached"] == []
    swarm.clock.advance(600)
    assert plugin.status()["attached"] == []


def test_it_takes_no_settings() -> None:
    config = type("C", (), {"plugins": {"web_seed": {"speed": 1}}})()
    with pytest.raises(ConfigError, match="speed"):
        WebSeedPlugin().btd_configure(config)


def test_the_module_names_what_it_does_not_support() -> None:
    assert "httpseeds" in (plugin_module.__doc__ or "")

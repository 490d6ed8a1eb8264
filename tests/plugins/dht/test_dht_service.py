"""The plugin: settings, state file, and DhtServices finding each other on a fake network."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

import btd.plugins.dht as plugin
from btd.core.config import parse_config
from btd.core.errors import ConfigError
from btd.core.plugin import make_plugin_manager
from btd.plugins.dht import state as state_file
from btd.plugins.dht.krpc import NodeInfo
from btd.plugins.dht.service import DhtService, Settings

IH = bytes(range(20))
PRIVATE = b"\x07" * 20


class FakeTorrent:
    def __init__(self, info_hash: bytes, private: bool = False, active: bool = True) -> None:
        self.info_hash = info_hash
        self.private = private
        self.active = active
        self.peers: list[tuple[str, int]] = []

    def add_peers(self, peers: list[tuple[str, int]]) -> int:
        new = [p for p in peers if p not in self.peers]
        self.peers += new
        return len(new)


class FakeSession:
    def __init__(self, reactor: Any, state_dir: Path, listen_port: int) -> None:
        self.reactor = reactor
        self.state_dir = state_dir
        self.listen_port = listen_port
        self.torrents: dict[bytes, FakeTorrent] = {}

    def swarms(self) -> list[FakeTorrent]:
        return list(self.torrents.values())

    def swarm(self, info_hash: bytes) -> FakeTorrent | None:
        return self.torrents.get(info_hash)

    def run_blocking(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        return defer.maybeDeferred(fn, *args)


def rng_bytes(seed: int) -> Any:
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


# -- settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"port": 70000}, "plugins.dht.port"),
        ({"port": True}, "plugins.dht.port"),
        ({"bind": "::1"}, "plugins.dht.bind"),
        ({"bind": 5}, "plugins.dht.bind"),
        ({"bootstrap": "127.0.0.1:1"}, "plugins.dht.bootstrap"),
        ({"bootstrap": ["127.0.0.1"]}, "plugins.dht.bootstrap[0]"),
        ({"bootstrap": ["127.0.0.1:1", "x:0"]}, "plugins.dht.bootstrap[1]"),
        ({"state_file": "relative/dht.dat"}, "plugins.dht.state_file"),
        ({"announce_interval": 0}, "plugins.dht.announce_interval"),
        ({"announce_interval": "15m"}, "plugins.dht.announce_interval"),
        ({"ip_rate": 0}, "plugins.dht.ip_rate"),
        ({"ip_burst": float("nan")}, "plugins.dht.ip_burst"),
        ({"colour": "blue"}, "plugins.dht.colour"),
    ],
)
def test_bad_settings_name_their_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        plugin.validate(raw)
    assert info.value.key == key


def test_settings_defaults_and_values() -> None:
    assert plugin.validate({}) == Settings()
    s = plugin.validate(
        {
            "port": 0,
            "bind": "127.0.0.2",
            "announce_interval": 60,
            "bootstrap": ["127.0.0.3:6881", "router.example:6881"],
            "state_file": "/tmp/x/dht.dat",
        }
    )
    assert s.bootstrap == (("127.0.0.3", 6881), ("router.example", 6881))
    assert s.port == 0 and s.announce_interval == 60.0 and s.state_file == Path("/tmp/x/dht.dat")


def test_plugin_loads_and_configures_through_pluggy() -> None:
    cfg = parse_config("plugins:\n  dht: {bind: 127.0.0.2, port: 0}\n")
    host = make_plugin_manager(cfg.plugins, available={"dht": lambda: plugin.DhtPlugin})
    host.configure(cfg)
    dht = host.pm.get_plugin("dht")
    assert dht.settings.bind == "127.0.0.2"
    bad = parse_config("plugins:\n  dht: {port: -1}\n")
    with pytest.raises(ConfigError):
        make_plugin_manager(bad.plugins, available={"dht": lambda: plugin.DhtPlugin}).configure(bad)
    assert dht.settings.bind == "127.0.0.2"  # the other manager's plugin is another instance
    assert dht.status() == {"running": False, "error": None}


def test_no_default_bootstrap_nodes_anywhere() -> None:
    assert Settings().bootstrap == ()
    source = "".join(p.read_text() for p in Path(plugin.__file__).parent.glob("*.py"))
    for name in ("router.bittorrent.com", "router.utorrent.com", "dht.transmissionbt.com"):
        assert name not in source


# -- state file ------------------------------------------------------------------------------
def test_state_round_trip_and_refusals(tmp_path: Path) -> None:
    nodes = [NodeInfo(b"\x01" * 20, "127.0.0.3", 6881)]
    data = state_file.encode_state(b"\x02" * 20, nodes)
    assert state_file.decode_state(data) == (b"\x02" * 20, nodes)
    for bad in (
        b"",
        b"garbage",
        b"de",
        b"d1:vi2ee",
        b"d2:id3:abc1:vi1ee",
        b"d2:id20:" + b"x" * 20 + b"5:nodes3:abc1:vi1ee",
    ):
        with pytest.raises(state_file.StateError):
            state_file.decode_state(bad)
    path = tmp_path / "sub" / "dht.dat"
    assert state_file.read_state(path) is None
    state_file.write_state(path, data)
    assert state_file.read_state(path) == data and not (tmp_path / "sub" / "dht.dat.tmp").exists()


def test_corrupt_state_file_is_reported_and_ignored(tmp_path: Path, dht_fakes: Any) -> None:
    reactor = dht_fakes.FakeReactor(dht_fakes.FakeNetwork(task.Clock()))
    (tmp_path / "dht.dat").write_bytes(b"d2:id3:abce")
    session = FakeSession(reactor, tmp_path, 7000)
    service = DhtService(session, Settings(bind="127.0.0.2", port=0), random_bytes=rng_bytes(1))
    errors: list[str] = []

    def observe(event: dict) -> None:
        if event.get("log_level") == LogLevel.error:
            errors.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    try:
        service.start()
    finally:
        globalLogPublisher.removeObserver(observe)
    assert len(errors) == 1 and "unusable" in errors[0] and "dht.dat" in errors[0]
    assert service.node is not None and service.status()["running"]
    node_id = service.node.node_id
    service.stop()
    saved_id, _ = state_file.decode_state((tmp_path / "dht.dat").read_bytes())
    assert saved_id == node_id  # replaced by a good file


def test_port_in_use_turns_the_dht_off(tmp_path: Path, dht_fakes: Any) -> None:
    reactor = dht_fakes.FakeReactor(dht_fakes.FakeNetwork(task.Clock()))
    reactor.taken.add(6881)
    settings = Settings(bind="127.0.0.2", port=6881)
    service = DhtService(FakeSession(reactor, tmp_path, 7000), settings)
    service.start()
    status = service.status()
    assert status["running"] is False and "6881" in status["error"]
    assert service.stop().called


# -- a swarm on a fake network ------------------------------------------------------------
class Swarm:
    def __init__(self, tmp_path: Path, dht_fakes: Any, n: int = 4, interval: float = 60.0):
        self.clock = task.Clock()
        self.net = dht_fakes.FakeNetwork(self.clock)
        self.services: list[DhtService] = []
        self.sessions: list[FakeSession] = []
        first = ("127.0.0.2", 6881)
        for i in range(n):
            reactor = dht_fakes.FakeReactor(self.net, self.clock)
            session = FakeSession(reactor, tmp_path / f"s{i}", 7000 + i)
            settings = Settings(
                bind=f"127.0.0.{i + 2}",
                port=6881,
                bootstrap=() if i == 0 else (first,),
                announce_interval=interval,
            )
            self.sessions.append(session)
            self.services.append(
                DhtService(session, settings, rng=random.Random(i), random_bytes=rng_bytes(100 + i))
            )

    def run(self, seconds: float, step: float = 0.05) -> None:
        for _ in range(int(seconds / step)):
            self.clock.advance(step)


def test_swarm_finds_each_other_through_the_dht(tmp_path: Path, dht_fakes: Any) -> None:
    swarm = Swarm(tmp_path, dht_fakes)
    for session in swarm.sessions:
        session.torrents[IH] = FakeTorrent(IH)
        session.torrents[PRIVATE] = FakeTorrent(PRIVATE, private=True)
    for service in swarm.services:
        service.start()
        swarm.run(1.0)
    swarm.run(30.0)
    for i, session in enumerate(swarm.sessions):
        others = {(f"127.0.0.{j + 2}", 7000 + j) for j in range(4) if j != i}
        assert set(session.torrents[IH].peers) == others, (i, session.torrents[IH].peers)
        assert session.torrents[PRIVATE].peers == []
        status = swarm.services[i].status()
        assert status["nodes"] == 3 and status["torrents"] == 1
    # nobody announced the private torrent
    assert all(PRIVATE not in s.node.peers._by_hash for s in swarm.services)
    for service in swarm.services:
        service.stop()
    assert all(not p.listening for r in (s.reactor for s in swarm.sessions) for p in r.ports)


def test_torrent_events_start_and_stop_announcing(tmp_path: Path, dht_fakes: Any) -> None:
    swarm = Swarm(tmp_path, dht_fakes, n=2, interval=30.0)
    for service in swarm.services:
        service.start()
    swarm.run(2.0)
    a, b = swarm.services
    t = FakeTorrent(IH, active=False)
    swarm.sessions[1].torrents[IH] = t
    b.torrent_event("added", IH.hex())  # not active yet: nothing
    assert b.tracked == {}
    t.active = True
    b.torrent_event("started", IH.hex())
    swarm.run(2.0)
    assert IH in b.tracked and len(a.node.peers) == 1  # b announced itself to a
    b.torrent_event("paused", IH.hex())
    assert b.tracked == {}
    sent_before = b.counters.announces_out
    swarm.run(120.0)
    assert b.counters.announces_out == sent_before
    b.torrent_event("started", "not hex")  # ignored


def test_state_is_saved_and_reused(tmp_path: Path, dht_fakes: Any) -> None:
    swarm = Swarm(tmp_path, dht_fakes, n=3)
    for service in swarm.services:
        service.start()
        swarm.run(1.0)
    swarm.run(5.0)
    c = swarm.services[2]
    node_id = c.node.node_id
    c.stop()
    saved_id, nodes = state_file.decode_state((tmp_path / "s2" / "dht.dat").read_bytes())
    assert saved_id == node_id and len(nodes) == 2
    # restart with no bootstrap at all: the saved nodes are enough to rejoin
    session = swarm.sessions[2]
    again = DhtService(session, Settings(bind="127.0.0.4", port=6881))
    again.start()
    swarm.run(3.0)
    assert again.node.node_id == node_id
    assert again.status()["good"] == 2


def test_refresh_looks_up_stale_buckets(tmp_path: Path, dht_fakes: Any) -> None:
    swarm = Swarm(tmp_path, dht_fakes, n=2)
    for service in swarm.services:
        service.start()
    swarm.run(2.0)
    b = swarm.services[1]
    done = b.counters.lookups_done
    swarm.run(16 * 60.0, step=1.0)
    assert b.counters.lookups_done > done
    assert b.status()["good"] == 1  # the refresh kept a good


# -- the lookup driver --------------------------------------------------------------------
def test_run_lookup_survives_synchronous_failures_without_recursion() -> None:
    from btd.plugins.dht.lookup import Lookup
    from btd.plugins.dht.search import run_lookup

    seeds = [
        NodeInfo(i.to_bytes(20, "big"), f"10.0.{i // 200}.{i % 200 + 1}", 1) for i in range(1, 2000)
    ]
    lk = Lookup(b"\0" * 20, b"\xff" * 20, seeds, max_candidates=2000, max_queries=2000)
    sent: list[NodeInfo] = []

    def send(info: NodeInfo) -> defer.Deferred[Any]:
        sent.append(info)
        return defer.fail(OSError("closed"))

    d = run_lookup(lk, send, lambda: True)
    assert d.called and lk.done and len(sent) == 1999


def test_run_lookup_goes_on_when_the_peer_consumer_raises() -> None:
    from btd.plugins.dht.krpc import Response
    from btd.plugins.dht.lookup import Lookup
    from btd.plugins.dht.search import run_lookup

    seeds = [NodeInfo(bytes([i]) * 20, f"10.0.0.{i}", 1) for i in range(1, 4)]
    lk = Lookup(b"\0" * 20, b"\xff" * 20, seeds)

    def send(info: NodeInfo) -> defer.Deferred[Any]:
        return defer.succeed(Response(b"t", info.node_id, values=(("10.9.0.1", 5),)))

    def consumer(peers: list) -> None:
        raise RuntimeError("boom")

    d = run_lookup(lk, send, lambda: True, consumer)
    assert d.called and lk.done and list(lk.peers) == [("10.9.0.1", 5)]
    assert len(lk.closest_answered()) == 3


def test_port_message_helpers(tmp_path: Path, dht_fakes: Any) -> None:
    dht = plugin.DhtPlugin()
    assert dht.udp_port() is None and dht.add_node("127.0.0.9", 1) is False
    reactor = dht_fakes.FakeReactor(dht_fakes.FakeNetwork(task.Clock()))
    service = DhtService(FakeSession(reactor, tmp_path, 7000), Settings(bind="127.0.0.2", port=0))
    service.start()
    dht.service = service
    assert dht.udp_port() == service.node.port
    assert dht.add_node("127.0.0.9", 0) is False
    assert dht.add_node("127.0.0.9", 6881) is True
    data, to = reactor.ports[0].sent[-1]
    assert to == ("127.0.0.9", 6881) and b"4:ping" in data
    assert dht.status()["running"] is True
    service.stop()


# -- issue 13 class 8: the DHT socket follows session.listen_host unless bind is set ----------
# -- issue 14 part 3: on the peer port (the default) it is the socket uTP has too ----------------
@pytest.mark.parametrize(
    "host, own", [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("::", "0.0.0.0")]
)
def test_the_dht_socket_follows_listen_host(host: str, own: str) -> None:
    import dataclasses
    from types import SimpleNamespace

    from btd.plugins.dht import DhtPlugin, resolve

    dht = DhtPlugin()
    config = SimpleNamespace(plugins={"dht": {}}, session=SimpleNamespace(listen_host=host))
    session: Any = SimpleNamespace(config=config, listen_port=7000)
    dht.btd_configure(config)
    assert dht.settings is not None and dht.settings.bind is None and dht.settings.port is None
    shared = resolve(dht.settings, session)  # the peer port's socket, where uTP listens
    assert (shared.bind, shared.port, shared.shared) == (host, 7000, True)
    alone = resolve(dataclasses.replace(dht.settings, port=6881), session)
    assert (alone.bind, alone.port, alone.shared) == (own, 6881, False)
    config.plugins["dht"] = {"bind": "0.0.0.0", "port": 7000}
    dht.btd_configure(config)
    assert resolve(dht.settings, session).bind == "0.0.0.0"


def test_one_ipv6_listen_host_cannot_be_followed_and_says_so() -> None:
    from types import SimpleNamespace

    from btd.core.errors import ConfigError
    from btd.plugins.dht import DhtPlugin

    session = SimpleNamespace(listen_host="::1")
    with pytest.raises(ConfigError, match="plugins.dht.bind: session.listen_host is the IPv6"):
        DhtPlugin().btd_configure(SimpleNamespace(plugins={"dht": {}}, session=session))


class HybridTorrent(FakeTorrent):
    """A hybrid (BEP 52): two ids; the peers found under the v2 one come tagged."""

    def __init__(self, info_hash: bytes, v2_id: bytes) -> None:
        super().__init__(info_hash)
        self.swarm_ids = (info_hash, v2_id)
        self.tagged: list[tuple[tuple[str, int], bytes | None]] = []

    def add_peers(self, peers: list[tuple[str, int]], swarm_id: bytes | None = None) -> int:
        self.tagged += [(p, swarm_id) for p in peers]
        return super().add_peers(peers)


def test_a_hybrid_is_looked_up_and_announced_under_both_ids(tmp_path: Path, dht_fakes: Any) -> None:
    """Node 0 runs a hybrid; node 1 is in its v2 swarm only (a torrent named by the v2 id,
    as a v2-only peer names it). Each finds the other through the v2 id, and node 0's peer
    arrives tagged with it; node 0 is announced under both ids, on its one timer."""
    v2_id = b"\x22" * 20
    swarm = Swarm(tmp_path, dht_fakes, n=3)
    hybrid = HybridTorrent(IH, v2_id)
    swarm.sessions[0].torrents[IH] = hybrid
    swarm.sessions[1].torrents[v2_id] = FakeTorrent(v2_id)
    for service in swarm.services:
        service.start()
        swarm.run(1.0)
    swarm.run(30.0)
    assert (("127.0.0.3", 7001), v2_id) in hybrid.tagged
    assert all(swarm_id == v2_id for _, swarm_id in hybrid.tagged)  # nobody in the v1 swarm
    assert ("127.0.0.2", 7000) in swarm.sessions[1].torrents[v2_id].peers
    stored = {h for s in swarm.services[1:] for h in s.node.peers._by_hash}
    assert {IH, v2_id} <= stored  # announced under both
    assert list(swarm.services[0].tracked) == [IH]  # one entry, one timer
    for service in swarm.services:
        service.stop()

"""Real btd daemons finding each other through the DHT alone (loopback addresses only).

Each daemon has its own loopback address (127.0.0.2, .3, ...) for its peer listener and
its DHT node; the seeder's DHT port is picked here and given to the others as their only
bootstrap node. The torrent has no trackers: peers can come from the DHT and nowhere else.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from btdtest import same_tree, seeded_torrent, wait_until

pytestmark = [pytest.mark.integration]

SIZES = {"dhtdata/a.bin": 900_000, "dhtdata/b.bin": 300_001}
PIECE = 64 * 1024


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture()
def dht_enabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Until ``dht`` is in BUILTIN_PLUGINS, offer it to the daemons as an entry point."""
    from btd.core.plugin import BUILTIN_PLUGINS

    if "dht" in BUILTIN_PLUGINS:
        return
    dist = tmp_path / "shim" / "btd_dht_test_shim-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: btd-dht-test-shim\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[btd.plugins]\ndht = btd.plugins.dht\n")
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(dist.parent) + (os.pathsep + path if path else ""))


def config(n: int, port: int, bootstrap: list[str]) -> str:
    nodes = ", ".join(f'"{b}"' for b in bootstrap)
    return (
        f"session:\n  listen_host: 127.0.0.{n}\n"
        "plugins:\n  rarest_first: {}\n"
        f"  dht:\n    bind: 127.0.0.{n}\n    port: {port}\n    bootstrap: [{nodes}]\n"
        "    announce_interval: 5\n"
    )


def test_leechers_find_the_seeder_through_the_dht(
    tmp_path: Path, btd_factory: Any, dht_enabled: None
) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SIZES, "dhtdata", "dht.torrent", seed=9, piece_size=PIECE
    )  # no trackers
    port = free_udp_port("127.0.0.2")

    seeder = btd_factory("seeder", config=config(2, port, []))
    seeder.start_seeding(seed_dir, torrent)
    assert seeder.call("torrent.get", {"info_hash": info_hash})["state"] == "seeding"
    assert seeder.call("dht.status")["port"] == port

    leechers = []
    for n in (3, 4, 5):
        btd = btd_factory(f"leech{n}", config=config(n, 0, [f"127.0.0.2:{port}"])).start()
        client = btd.client(timeout=120)
        client.__enter__()
        client.call("events.subscribe")
        btd.add(torrent)
        leechers.append((btd, client))
    try:
        for btd, client in leechers:
            btd.wait_event(client, "completed", info_hash, timeout=90)
    finally:
        for _, client in leechers:
            client.__exit__(None, None, None)

    for btd, _ in leechers:
        assert same_tree(seed_dir, btd.downloads)
        status = btd.call("dht.status")
        assert status["running"] and status["nodes"] >= 1 and status["torrents"] == 1
        assert status["queries_out"] > 0 and status["malformed"] == 0
        sources = btd.call("torrent.get", {"info_hash": info_hash})["sources"]
        assert sources and all(s.startswith("127.0.0.") for s in sources)
    status = seeder.call("dht.status")
    assert status["nodes"] >= 3 and status["queries_in"] > 0 and status["peers_stored"] >= 1

    for btd in [seeder] + [b for b, _ in leechers]:
        assert btd.stop() == 0
    assert (seeder.state / "dht.dat").stat().st_size > 20  # saved at stop


def test_bare_magnet_is_found_through_the_dht_alone(
    tmp_path: Path, btd_factory: Any, dht_enabled: None
) -> None:
    """No tracker, no .torrent, no peer address: only the info hash and the DHT."""
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SIZES, "dhtdata", "dht.torrent", seed=10, piece_size=PIECE
    )
    port = free_udp_port("127.0.0.6")
    seeder = btd_factory("seeder", config=config(6, port, []))
    seeder.start_seeding(seed_dir, torrent)
    leecher = btd_factory("leech", config=config(7, 0, [f"127.0.0.6:{port}"])).start()
    with leecher.client(timeout=120) as events:
        events.call("events.subscribe")
        leecher.call("torrent.add", {"magnet": f"magnet:?xt=urn:btih:{info_hash}"})
        leecher.wait_event(events, "metadata", info_hash, timeout=90)
        leecher.wait_event(events, "completed", info_hash, timeout=90)
    assert same_tree(seed_dir, leecher.downloads)
    assert leecher.stop() == 0 and seeder.stop() == 0


# -- libtorrent's DHT node on loopback ----------------------------------------------------------
class LtDhtSession:
    """An in-process libtorrent session whose DHT is bound to 127.0.0.1 and bootstraps from us.

    libtorrent's defaults already accept loopback nodes (checked with libtorrent 2.0); the
    restrict/dark-internet switches are turned off anyway so the test does not depend on
    them. Only DHT alerts are kept, so the alert queue cannot overflow.
    """

    def __init__(self, bootstrap: str) -> None:
        from btdtest import import_libtorrent

        lt = self.lt = import_libtorrent()
        self.ses = lt.session(
            {
                "listen_interfaces": "127.0.0.1:0",
                "outgoing_interfaces": "127.0.0.1",
                "enable_dht": True,
                "dht_bootstrap_nodes": bootstrap,
                "dht_restrict_routing_ips": False,
                "dht_restrict_search_ips": False,
                "dht_ignore_dark_internet": False,
                "enable_lsd": False,
                "enable_upnp": False,
                "enable_natpmp": False,
                "enable_ip_notifier": False,
                "allow_multiple_connections_per_ip": True,
                "alert_mask": lt.alert.category_t.dht_notification,
            }
        )
        self.announces: list[tuple[str, int, str]] = []

    def add(self, torrent: Path, save: Path, seed: bool) -> Any:
        lt = self.lt
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(str(torrent))
        params.save_path = str(save)
        params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        if seed:
            params.flags |= lt.torrent_flags.seed_mode
        return self.ses.add_torrent(params)

    def close(self) -> None:
        self.ses.pause()
        del self.ses  # the session's destructor aborts its threads and sockets

    def collect(self) -> None:
        for alert in self.ses.pop_alerts():
            if isinstance(alert, self.lt.dht_announce_alert):
                self.announces.append((str(alert.ip), alert.port, str(alert.info_hash)))


@pytest.mark.interop
def test_btd_finds_a_libtorrent_seeder_through_the_dht(
    tmp_path: Path, btd_factory: Any, dht_enabled: None
) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SIZES, "dhtdata", "dht.torrent", seed=10, piece_size=PIECE
    )
    port = free_udp_port("127.0.0.1")
    btd = btd_factory("btd", config=config(1, port, [])).start()
    lt = LtDhtSession(f"127.0.0.1:{port}")
    try:
        lt.add(torrent, seed_dir, seed=True)  # libtorrent joins through btd, announces to it
        with btd.client() as events:
            events.call("events.subscribe")
            btd.add(torrent)
            btd.wait_event(events, "completed", info_hash, timeout=60)
        assert same_tree(seed_dir, btd.downloads)
        status = btd.call("dht.status")
        assert status["queries_in"] > 0  # libtorrent asked us
        assert status["responses_in"] > 0  # and answered our lookups
        assert status["malformed"] == 0 and status["unmatched"] == 0
        # libtorrent took btd's announce_peer (our token handling and message format)
        listen_port = btd.call("session.info")["listen_port"]

        def announced() -> bool:
            lt.collect()
            return ("127.0.0.1", listen_port, info_hash) in lt.announces

        wait_until(announced, timeout=20, what="btd's announce_peer at libtorrent")
    finally:
        lt.close()
    assert btd.stop() == 0


@pytest.mark.interop
def test_libtorrent_finds_a_btd_seeder_through_the_dht(
    tmp_path: Path, btd_factory: Any, dht_enabled: None
) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SIZES, "dhtdata", "dht.torrent", seed=11, piece_size=PIECE
    )
    port = free_udp_port("127.0.0.2")
    # A btd node without torrents is everyone's bootstrap node; the seeder announces to it.
    router = btd_factory("router", config=config(2, port, [])).start()
    seeder = btd_factory("seeder", config=config(3, 0, [f"127.0.0.2:{port}"]))
    seeder.start_seeding(seed_dir, torrent)
    wait_until(
        lambda: router.call("dht.status")["peers_stored"] >= 1,
        timeout=20,
        what="the seeder's announce at the router",
    )
    lt = LtDhtSession(f"127.0.0.2:{port}")
    try:
        handle = lt.add(torrent, tmp_path / "lt", seed=False)
        wait_until(lambda: handle.status().is_seeding, timeout=60, what="libtorrent's download")
    finally:
        lt.close()
    assert same_tree(seed_dir, tmp_path / "lt")
    assert seeder.call("torrent.get", {"info_hash": info_hash})["uploaded"] >= sum(SIZES.values())
    assert router.call("dht.status")["queries_in"] > 0
    for btd in (seeder, router):
        assert btd.stop() == 0

"""Real daemons finding each other through peer exchange (BEP 11) alone, on loopback.

The torrents have no trackers and no DHT runs: the only address a daemon is given is one
peer's (``torrent.add_peer``); every other peer it reaches was named in a ``ut_pex`` message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from btdtest import same_tree, seeded_torrent, wait_until

from btd.core.plugin import BUILTIN_PLUGINS
from btd.core.rpc.client import RemoteError

pytestmark = [pytest.mark.integration]

SIZES = {"pexdata/a.bin": 6_000_000, "pexdata/b.bin": 2_000_001}
PIECE = 64 * 1024
PEX = "plugins:\n  rarest_first: {}\n  pex:\n    interval: 1\n"
NO_PEX = "plugins:\n  rarest_first: {}\n"


def add_peer(btd: Any, info_hash: str, port: int) -> None:
    btd.call("torrent.add_peer", {"info_hash": info_hash, "address": "127.0.0.1", "port": port})


def peer_ports(btd: Any, info_hash: str) -> set[int]:
    return {p["port"] for p in btd.call("torrent.peers", {"info_hash": info_hash})}


def start_seeder(factory: Any, name: str, config: str, seed_dir: Path, torrent: Path) -> Any:
    btd = factory(name, config=config)
    info_hash = btd.start_seeding(seed_dir, torrent)
    assert btd.call("torrent.get", {"info_hash": info_hash})["state"] == "seeding"
    return btd


def test_a_peer_learned_only_through_pex_gets_connected(tmp_path: Path, btd_factory: Any) -> None:
    assert "pex" in BUILTIN_PLUGINS
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SIZES, "pexdata", "pex.torrent", seed=21, piece_size=PIECE
    )  # no trackers

    # A seeds and does not speak PEX itself: it can only be found through B's messages,
    # and it never dials C (so C's connection to A is C's own, to A's listen port).
    a = start_seeder(btd_factory, "a", NO_PEX, seed_dir, torrent)
    a_port = a.call("session.info")["listen_port"]
    # B seeds too (two seeds keep their connection) and is told about A.
    b = start_seeder(btd_factory, "b", PEX, seed_dir, torrent)
    b_port = b.call("session.info")["listen_port"]
    add_peer(b, info_hash, a_port)
    wait_until(lambda: a_port in peer_ports(b, info_hash), timeout=20, what="B connected to A")

    # C is told only about B.
    c = btd_factory("c", config=PEX).start()
    with c.client(timeout=90) as events:
        events.call("events.subscribe")
        c.add(torrent)
        add_peer(c, info_hash, b_port)
        c.wait_event(events, "completed", info_hash, timeout=90)
    assert same_tree(seed_dir, c.downloads)

    status = c.call("pex.status")
    assert status["running"] and status["interval"] == 1.0
    assert status["messages_in"] >= 1 and status["peers_learned"] >= 1
    assert status["malformed"] == 0 and status["floods"] == 0
    assert b.call("pex.status")["messages_out"] >= 1
    # C dialled A at A's listen port and got data from it: the address came from PEX only.
    sources = c.call("torrent.get", {"info_hash": info_hash})["sources"]
    assert sources.get(f"127.0.0.1:{a_port}", 0) > 0, sources
    assert a.call("torrent.get", {"info_hash": info_hash})["uploaded"] > 0
    # A has no pex plugin: the method does not exist there
    with a.client() as client, pytest.raises(RemoteError, match="-32601"):
        client.call("pex.status")

    for btd in (a, b, c):
        assert btd.stop() == 0


@pytest.mark.interop
def test_btd_takes_peers_from_libtorrent_pex(
    tmp_path: Path, btd_factory: Any, lt_factory: Any
) -> None:
    """libtorrent sends its first ut_pex once it has two peers; btd parses it and connects."""
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, {"ltpex/a.bin": 2_000_000}, "ltpex", "ltpex.torrent", seed=22, piece_size=PIECE
    )
    # Slow on purpose: the leechers stay connected to it (and unfinished) while it talks.
    seeder = lt_factory("seed", torrent, seed_dir, upload_limit=50_000)
    config = "plugins:\n  rarest_first: {}\n  pex: {}\n"
    first = btd_factory("first", config=config).start()
    first.add(torrent)
    add_peer(first, info_hash, seeder.port)
    wait_until(
        lambda: seeder.port in peer_ports(first, info_hash),
        timeout=20,
        what="the first btd connected to libtorrent",
    )
    second = btd_factory("second", config=config).start()
    second.add(torrent)
    add_peer(second, info_hash, seeder.port)

    def found_first() -> bool:
        peers = second.call("torrent.peers", {"info_hash": info_hash})
        return any(p["client"].startswith("btd") for p in peers)

    wait_until(found_first, timeout=30, what="the second btd connected to the first via PEX")
    status = second.call("pex.status")
    assert status["messages_in"] >= 1 and status["peers_learned"] >= 1
    assert status["malformed"] == 0
    for btd in (first, second):
        assert btd.stop() == 0

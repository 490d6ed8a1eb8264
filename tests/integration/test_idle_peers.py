"""Idle peers cannot starve a torrent (issue 13, class 1), over real loopback sockets.

Peers that send a handshake and then only keep-alives fill every connection slot of a
downloading btd, of the torrent and of the whole daemon; they reconnect as soon as they are
dropped. A real seeder (another btd) that connects afterwards must still get in, by taking
the slot of one of them, and the download must complete.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from btdtest import same_tree, seeded_torrent, wait_until

from btd.core.wire import messages as m
from btd.core.wire.codec import encode, encode_handshake

pytestmark = [pytest.mark.integration]

SIZES = {"idledata/a.bin": 3_000_000, "idledata/b.bin": 1_000_001}
SLOTS = 4
LEECHER = (
    "session:\n"
    f"  max_connections: {SLOTS}\n"
    f"  max_connections_per_torrent: {SLOTS}\n"
    "  peer_replace_grace: 1\n"
    "plugins:\n  rarest_first: {}\n"
)


class IdlePeers:
    """``count`` peers (threads, blocking sockets) that handshake and then send keep-alives
    only, each reconnecting shortly after it is dropped or refused, until ``close``."""

    def __init__(self, port: int, info_hash: str, count: int) -> None:
        self.port = port
        self.info_hash = bytes.fromhex(info_hash)
        self.stopping = threading.Event()
        self.connects = 0
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(count)
        ]
        for t in self.threads:
            t.start()

    def _run(self, i: int) -> None:
        peer_id = f"-ID0001-{i:012d}".encode()
        hello = encode_handshake(m.Handshake(self.info_hash, peer_id, m.make_reserved()))
        while not self.stopping.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
                    conn.sendall(hello)
                    self.connects += 1
                    conn.settimeout(0.5)
                    while not self.stopping.is_set():
                        try:
                            if conn.recv(65536) == b"":
                                break  # dropped (or refused after the handshake)
                        except TimeoutError:
                            pass
                        conn.sendall(encode(m.KEEP_ALIVE))
            except OSError:
                pass
            self.stopping.wait(0.2)

    def close(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(5)


def peer_count(btd: Any, info_hash: str) -> int:
    return len(btd.call("torrent.peers", {"info_hash": info_hash}))


def test_idle_peers_filling_every_slot_do_not_keep_a_seeder_out(
    tmp_path: Path, btd_factory: Any
) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SIZES, "idledata", "idle.torrent", seed=13
    )
    leecher = btd_factory("leecher", config=LEECHER).start()
    with leecher.client(timeout=90) as events:
        events.call("events.subscribe")
        leecher.add(torrent)
        leecher.wait_event(events, "started", info_hash)
        port = leecher.call("session.info")["listen_port"]
        idle = IdlePeers(port, info_hash, SLOTS + 2)
        try:
            wait_until(lambda: peer_count(leecher, info_hash) == SLOTS, what="idle peers in")
            seeder = btd_factory("seeder", config="plugins:\n  rarest_first: {}\n")
            seeder.start_seeding(seed_dir, torrent)

            def seeder_in() -> bool:
                # The seeder dials the leecher (inbound there); while every idle peer is
                # younger than the grace it is refused, so it is named again until it is in.
                peers = leecher.call("torrent.peers", {"info_hash": info_hash})
                if any(bytes.fromhex(p["peer_id"]).startswith(b"-BT") for p in peers):
                    return True
                seeder.call(
                    "torrent.add_peer",
                    {"info_hash": info_hash, "address": "127.0.0.1", "port": port},
                )
                return False

            started = time.monotonic()
            wait_until(seeder_in, timeout=30, what="the seeder admitted")
            leecher.wait_event(events, "completed", info_hash, timeout=90)
        finally:
            idle.close()
    assert same_tree(seed_dir, leecher.downloads)
    assert idle.connects > SLOTS  # they were there, and kept coming back
    got = leecher.call("torrent.get", {"info_hash": info_hash})
    assert got["disconnects"]["replaced"] >= 1, got["disconnects"]
    assert sum(got["sources"].values()) >= sum(SIZES.values())
    assert seeder.call("session.stats")["uploaded"] >= sum(SIZES.values())
    assert time.monotonic() - started < 60
    for btd in (leecher, seeder):
        assert btd.stop() == 0

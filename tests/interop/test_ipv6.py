"""IPv6 swarms on ::1 (BEP 7): btd and libtorrent with IPv4 nowhere in the path, both
directions; peers6 from an HTTP tracker on [::1]; and one ``::`` listener taking both
stacks (an IPv4 peer dials the same port)."""

from __future__ import annotations

import http.server
import ipaddress
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from btdtest import make_torrent, same_tree, seeded_torrent, write_files

from btd.core import bencode

pytestmark = [pytest.mark.interop]

SIZES = {"six/data.bin": 3_000_000, "six/small.txt": 777}
PIECE = 64 * 1024


@pytest.fixture()
def content(tmp_path: Path) -> tuple[Path, Path, str]:
    return seeded_torrent(tmp_path, SIZES, "six", "six.torrent", piece_size=PIECE)


def v6_config(host: str = "::1") -> str:
    return f"session:\n  listen_host: '{host}'\n"


def test_libtorrent_on_v6_downloads_from_btd_on_v6(
    tmp_path, btd_factory, lt_factory, content
) -> None:
    seed_dir, torrent, info_hash = content
    btd = btd_factory(config=v6_config())
    btd.start_seeding(seed_dir, torrent)
    port = btd.call("session.info")["listen_port"]
    leecher = lt_factory("leech", torrent, tmp_path / "lt", peers=[f"[::1]:{port}"], host="::1")
    leecher.wait_done()
    assert same_tree(seed_dir, tmp_path / "lt")
    assert btd.stop() == 0


def test_btd_on_v6_downloads_from_libtorrent_on_v6(
    tmp_path, btd_factory, lt_factory, content
) -> None:
    seed_dir, torrent, info_hash = content
    seeder = lt_factory("seed", torrent, seed_dir, host="::1")
    btd = btd_factory(config=v6_config()).start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent)
        btd.call(
            "torrent.add_peer", {"info_hash": info_hash, "address": "::1", "port": seeder.port}
        )
        peers = btd.call("torrent.peers", {"info_hash": info_hash})
        btd.wait_event(events, "completed", info_hash)
    assert same_tree(seed_dir, btd.downloads)
    assert all(p["address"] == "::1" for p in peers)
    assert btd.stop() == 0


def test_one_dual_stack_listener_takes_ipv4_and_ipv6_peers(
    tmp_path, btd_factory, lt_factory, content
) -> None:
    seed_dir, torrent, info_hash = content
    btd = btd_factory(config=v6_config("::"))
    btd.start_seeding(seed_dir, torrent)
    port = btd.call("session.info")["listen_port"]
    four = lt_factory("leech", torrent, tmp_path / "lt4", peers=[f"127.0.0.1:{port}"])
    six = lt_factory("leech", torrent, tmp_path / "lt6", peers=[f"[::1]:{port}"], host="::1")
    four.wait_done()
    six.wait_done()
    assert same_tree(seed_dir, tmp_path / "lt4") and same_tree(seed_dir, tmp_path / "lt6")
    assert btd.stop() == 0


class V6Tracker(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


@pytest.fixture()
def v6_tracker() -> Iterator[dict]:
    """An HTTP tracker on [::1] that hands out ``peers6`` (compact, 18 bytes each) only."""
    state: dict = {"peers6": [], "asked": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state["asked"] += 1
            peers6 = b"".join(
                ipaddress.IPv6Address(host).packed + struct.pack(">H", port)
                for host, port in state["peers6"]
            )
            body = bencode.encode({b"interval": 1800, b"peers": b"", b"peers6": peers6})
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = V6Tracker(("::1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://[::1]:{server.server_address[1]}/announce"
    yield state
    server.shutdown()
    server.server_close()


def test_btd_finds_an_ipv6_seeder_through_peers6(
    tmp_path, btd_factory, lt_factory, v6_tracker
) -> None:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, SIZES, seed=6)
    torrent = tmp_path / "tracked6.torrent"
    info_hash = make_torrent(seed_dir / "six", torrent, PIECE, [v6_tracker["url"]])
    seeder = lt_factory("seed", torrent, seed_dir, host="::1")
    v6_tracker["peers6"] = [("::1", seeder.port)]
    btd = btd_factory(config=v6_config("::")).start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent)  # no add_peer: only the tracker's peers6 names the seeder
        btd.wait_event(events, "completed", info_hash)
    assert v6_tracker["asked"] >= 1
    assert same_tree(seed_dir, btd.downloads)
    assert btd.stop() == 0

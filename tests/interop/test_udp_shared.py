"""uTP and the DHT on one UDP port (issue 14 part 3) in a real btd: with both plugins on
the peer port, a DHT ping from a test socket is answered AND a libtorrent peer with TCP off
(uTP only; its DHT, LSD, UPnP, NAT-PMP off) downloads over that same port. On 127.0.0.1
and on a dual-stack ``::`` socket (the DHT hears its IPv4 senders)."""

from __future__ import annotations

import socket

import pytest
from btdtest import same_tree, seeded_torrent, wait_until

from btd.core.bencode import decode

pytestmark = [pytest.mark.interop]

SIZE = 4 * 1024 * 1024
PIECE = 256 * 1024


def dht_ping(port: int, tid: bytes) -> dict[bytes, object]:
    """One KRPC ping to 127.0.0.1:port; the answer (socket timeout 5 s)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        query = b"d1:ad2:id20:" + b"\x11" * 20 + b"e1:q4:ping1:t2:" + tid + b"1:y1:qe"
        sock.sendto(query, ("127.0.0.1", port))
        data, source = sock.recvfrom(2048)
    assert source[1] == port
    return decode(data)


@pytest.mark.parametrize("listen", ["127.0.0.1", "::"])
def test_dht_and_utp_share_the_peer_port(tmp_path, btd_factory, lt_factory, listen) -> None:
    seed_dir, torrent, _ = seeded_torrent(
        tmp_path, {"shared/data.bin": SIZE}, "shared", "shared.torrent", piece_size=PIECE
    )
    config = (
        f"session:\n  listen_host: '{listen}'\n"
        "plugins:\n  rarest_first: {}\n  resume_sqlite: {}\n  utp: {}\n  dht: {}\n"
    )
    btd = btd_factory(config=config)
    btd.start_seeding(seed_dir, torrent)
    port = btd.call("session.info")["listen_port"]
    status = wait_until(
        lambda: s if (s := btd.call("dht.status"))["running"] or s["error"] else None,
        what="the DHT node to start",
    )
    assert status["running"], status["error"]  # not "address in use"
    assert status["port"] == port and status["shared_socket"] is True
    assert btd.call("utp.status")["running"] is True  # neither lost the port to the other

    answer = dht_ping(port, b"p1")
    assert answer[b"t"] == b"p1" and answer[b"y"] == b"r" and len(answer[b"r"][b"id"]) == 20

    leecher = lt_factory(
        "leech", torrent, tmp_path / "lt", peers=[f"127.0.0.1:{port}"], utp_only=True
    )
    leecher.wait_done()
    assert same_tree(seed_dir, tmp_path / "lt")
    assert dht_ping(port, b"p2")[b"t"] == b"p2"  # still answering after the transfer
    utp = btd.call("utp.status")
    assert utp["accepted"] >= 1
    # its acks came in on the same socket (~100 for this transfer; libtorrent coalesces them)
    assert utp["udp"]["dht_in"] >= 2 and utp["udp"]["utp_in"] > 20
    assert btd.call("dht.status")["queries_in"] >= 2
    assert btd.stop() == 0

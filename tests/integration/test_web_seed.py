"""Web seeds (BEP 19) with real sockets: a btd process and twisted.web servers on 127.0.0.1
(tests/web_seed_server.py) serving the torrent's files, and no peers at all."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from btdtest import same_tree, write_files

from btd.core.bencode import decode, encode
from btd.core.torrent_create import create_torrent

pytestmark = [pytest.mark.integration]

SERVER = Path(__file__).resolve().parents[1] / "web_seed_server.py"
PIECE = 64 * 1024
# A file smaller than a piece, files across piece edges, names that need percent-encoding.
SIZES = {
    "multi/a.bin": 1_000_000,
    "multi/sub dir/b #1.bin": 1234,
    "multi/sub dir/ü%c.bin": 300_001,
    "multi/d.bin": 200_000,
}


class WebServer:
    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc = proc
        self.log = log
        assert proc.stdout is not None
        self.port = int(proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/"

    def requests(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture()
def web_server(tmp_path: Path) -> Iterator[Callable[[Path, str], WebServer]]:
    servers: list[WebServer] = []

    def start(root: Path, mode: str = "files") -> WebServer:
        log = tmp_path / f"web-{len(servers)}.log"
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), str(root), mode, str(log)],
            stdout=subprocess.PIPE,
            text=True,
        )
        server = WebServer(proc, log)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.proc.terminate()
        try:
            server.proc.wait(10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
        if server.proc.stdout is not None:
            server.proc.stdout.close()


def torrent_with_seeds(content: Path, out: Path, urls: list[str]) -> str:
    """A .torrent of ``content`` (btd's own maker) with ``url-list``; its info hash hex."""
    made = create_torrent(content, piece_length=PIECE)
    top = decode(made.data)
    top[b"url-list"] = [url.encode() for url in urls]
    out.write_bytes(encode(top))
    return made.info_hash.hex()


def add(btd: Any, torrent: Path, **options: Any) -> str:
    data = base64.b64encode(torrent.read_bytes()).decode()
    return btd.call("torrent.add", {"metainfo": data, **options})["info_hash"]


def wait_for(what: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll btd (another process holds the state) until ``what()`` is true; its value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def given_up(btd: Any, info_hash: str) -> list[dict[str, str]]:
    status = btd.call("web_seed.status")
    return [row for row in status["given_up"] if row["info_hash"] == info_hash]


@pytest.fixture()
def content(tmp_path: Path) -> Path:
    seed = tmp_path / "seed"
    write_files(seed, SIZES, seed=7)
    return seed


def test_completes_from_a_web_seed_alone(tmp_path, content, btd_factory, web_server) -> None:
    server = web_server(content)
    torrent = tmp_path / "ws.torrent"
    info_hash = torrent_with_seeds(content / "multi", torrent, [server.url])
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        assert add(btd, torrent, allow_local_trackers=True) == info_hash
        btd.wait_event(events, "completed", info_hash)
    assert same_tree(content, btd.downloads)
    asked = server.requests()
    assert asked and all(" bytes=" in line for line in asked)
    assert any(
        "/multi/sub%20dir/%C3%BC%25c.bin" in line or "/multi/sub dir/" in line for line in asked
    )
    info = btd.call("torrent.get", {"info_hash": info_hash})
    assert info["downloaded"] >= sum(SIZES.values())
    assert btd.stop() == 0


def test_a_local_web_seed_needs_the_option(tmp_path, content, btd_factory, web_server) -> None:
    server = web_server(content)
    torrent = tmp_path / "ws.torrent"
    info_hash = torrent_with_seeds(content / "multi", torrent, [server.url])
    btd = btd_factory().start()
    add(btd, torrent)
    rows = wait_for(lambda: given_up(btd, info_hash))
    assert "SSRF" in rows[0]["reason"] and "allow_local_trackers" in rows[0]["reason"]
    assert server.requests() == []  # never asked
    assert btd.stop() == 0


def test_a_web_seed_with_corrupt_data_is_banned(tmp_path, content, btd_factory, web_server) -> None:
    bad_root = tmp_path / "bad"
    write_files(bad_root, SIZES, seed=7)
    for victim in bad_root.rglob("*.bin"):  # every piece it serves fails its hash
        data = bytearray(victim.read_bytes())
        for i in range(0, len(data), 4096):
            data[i] ^= 0xFF
        victim.write_bytes(bytes(data))
    bad = web_server(bad_root)
    good = web_server(content)
    torrent = tmp_path / "ws.torrent"
    info_hash = torrent_with_seeds(content / "multi", torrent, [bad.url, good.url])
    btd = btd_factory().start()
    seen: dict[str, dict[str, Any]] = {}
    with btd.client() as events:
        events.call("events.subscribe")
        add(btd, torrent, allow_local_trackers=True)
        for note in events.notifications(timeout=60):  # the two, in either order
            if note.params.get("info_hash") == info_hash:
                seen.setdefault(note.params["event"], note.params)
            if "completed" in seen and "peer_banned" in seen:
                break
    assert seen["peer_banned"]["address"] == bad.url
    assert same_tree(content, btd.downloads)
    rows = given_up(btd, info_hash)
    assert [row["url"] for row in rows] == [bad.url]
    assert "corrupt" in rows[0]["reason"]
    assert btd.stop() == 0


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("404", "HTTP 404"), ("no-range", "ignores Range")],
)
def test_a_web_seed_that_cannot_serve_is_given_up(
    tmp_path, content, btd_factory, web_server, mode, reason
) -> None:
    root = tmp_path / "empty" if mode == "404" else content
    root.mkdir(exist_ok=True)
    server = web_server(root, "files" if mode == "404" else mode)
    torrent = tmp_path / "ws.torrent"
    info_hash = torrent_with_seeds(content / "multi", torrent, [server.url])
    btd = btd_factory().start()
    add(btd, torrent, allow_local_trackers=True)
    rows = wait_for(lambda: given_up(btd, info_hash))
    assert reason in rows[0]["reason"] and server.url in rows[0]["reason"]
    assert btd.call("torrent.peers", {"info_hash": info_hash}) == []
    assert btd.call("session.info")  # alive
    assert btd.stop() == 0
    if mode == "no-range":  # whatever it gave at offset 0 was checked: nothing else written
        got = btd.downloads / "multi" / "a.bin"
        assert not got.exists() or got.stat().st_size <= SIZES["multi/a.bin"]


def test_a_mirror_without_one_file_serves_the_others(
    tmp_path, content, btd_factory, web_server
) -> None:
    partial = tmp_path / "partial"
    write_files(partial, SIZES, seed=7)
    (partial / "multi" / "a.bin").unlink()
    server = web_server(partial)
    torrent = tmp_path / "ws.torrent"
    info_hash = torrent_with_seeds(content / "multi", torrent, [server.url])
    btd = btd_factory().start()
    add(btd, torrent, allow_local_trackers=True)

    def progress() -> dict[str, float] | None:
        rows = btd.call("torrent.files", {"info_hash": info_hash})
        got = {row["path"]: row["progress"] for row in rows}
        done = got["multi/sub dir/b #1.bin"] == 1.0 and got["multi/sub dir/ü%c.bin"] == 1.0
        return got if done else None

    got = wait_for(progress)
    # a.bin's last piece is d.bin's first: all of d.bin but that piece came
    assert got["multi/a.bin"] == 0.0 and 0.5 < got["multi/d.bin"] < 1.0
    status = btd.call("web_seed.status")
    assert [row["url"] for row in status["attached"]] == [server.url]
    assert status["given_up"] == []
    assert any("/multi/a.bin" in line for line in server.requests())
    assert btd.stop() == 0


@pytest.mark.parametrize(
    ("mode", "why"), [("short", r"after \d+ of \d+ bytes"), ("busy", r"retry in 1 s: HTTP 503")]
)
def test_a_passing_failure_backs_off(tmp_path, content, btd_factory, web_server, mode, why) -> None:
    server = web_server(content, mode)
    torrent = tmp_path / "ws.torrent"
    info_hash = torrent_with_seeds(content / "multi", torrent, [server.url])
    btd = btd_factory().start()
    add(btd, torrent, allow_local_trackers=True)

    def waiting() -> list[dict[str, Any]]:
        peers = btd.call("torrent.peers", {"info_hash": info_hash})
        return [p for p in peers if "retry in" in p["client"]]

    peers = wait_for(waiting)
    assert peers[0]["address"] == server.url and re.search(why, peers[0]["client"])
    assert btd.call("torrent.get", {"info_hash": info_hash})["state"] == "downloading"
    assert given_up(btd, info_hash) == []
    assert btd.stop() == 0

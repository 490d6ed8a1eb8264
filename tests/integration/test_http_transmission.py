"""A real btd with the http plugin, driven by Debian's ``transmission-remote`` (3.00, a
client nobody here wrote); every effect is checked through btd's own control socket."""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from btdtest import BtdProcess, free_port, seeded_torrent

from btd.core.rpc.client import RemoteError
from btd.core.rpc.errors import INVALID_TORRENT

pytestmark = pytest.mark.integration

REMOTE = shutil.which("transmission-remote") or "/usr/bin/transmission-remote"
MAGNET = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=a%20magnet"


def config(port: int, extra: str = "") -> str:
    return (
        "session:\n  listen_host: 127.0.0.1\n"
        f"plugins:\n  rarest_first: {{}}\n  http:\n    port: {port}\n{extra}"
    )


@pytest.fixture()
def daemon(tmp_path: Path) -> Any:
    if not Path(REMOTE).exists():
        pytest.skip("transmission-remote (Debian transmission-cli) is not installed")
    port = free_port()
    proc = BtdProcess(tmp_path / "btd", config=config(port))
    proc.http_port = port  # type: ignore[attr-defined]
    yield proc
    proc.close()


def remote(btd: BtdProcess, *args: str) -> str:
    done = subprocess.run(
        [REMOTE, f"127.0.0.1:{btd.http_port}", *args],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}\n{btd.log_text()}"
    return done.stdout + done.stderr


def only(btd: BtdProcess, info_hash: str) -> dict[str, Any]:
    return next(t for t in btd.call("torrent.list") if t["info_hash"] == info_hash)


def test_transmission_remote_drives_btd(daemon: BtdProcess, tmp_path: Path) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, {"album/a.bin": 300_000, "album/b.bin": 90_000}, "album", "album.torrent"
    )
    shutil.copytree(seed_dir, daemon.downloads)
    daemon.start()
    with daemon.client() as events:
        events.call("events.subscribe")
        assert "success" in remote(daemon, "-a", str(torrent))
        daemon.wait_event(events, "started", info_hash)
    assert only(daemon, info_hash)["state"] == "seeding"

    listing = remote(daemon, "-l")
    assert "album" in listing and "    1 " in listing and "100%" in listing
    info = remote(daemon, "-t", "1", "-i")
    assert info_hash in info and "Name: album" in info
    files = remote(daemon, "-t", "1", "-f")
    assert "album/a.bin" in files and "album/b.bin" in files and "2 files" in files

    remote(daemon, "-t", "1", "-S")
    assert only(daemon, info_hash)["state"] == "paused"
    remote(daemon, "-t", "1", "-s")
    assert only(daemon, info_hash)["state"] != "paused"
    remote(daemon, "-t", "1", "-S")
    with daemon.client() as events:
        events.call("events.subscribe")
        remote(daemon, "-t", "1", "-v")
        daemon.wait_event(events, "verified", info_hash)

    remote(daemon, "-t", "1", "-d", "100", "-u", "50")
    row = only(daemon, info_hash)
    assert (row["download_limit"], row["upload_limit"]) == (100_000, 50_000)
    remote(daemon, "-d", "300", "-u", "70")
    settings = daemon.call("session.get")
    assert (settings["download_limit"], settings["upload_limit"]) == (300_000, 70_000)
    remote(daemon, "-D", "-U")
    settings = daemon.call("session.get")
    assert (settings["download_limit"], settings["upload_limit"]) == (0, 0)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with daemon.client() as events:
        events.call("events.subscribe")
        remote(daemon, "-t", "1", "--move", str(elsewhere))
        daemon.wait_event(events, "moved", info_hash)
    assert only(daemon, info_hash)["save_path"] == str(elsewhere)
    assert (elsewhere / "album" / "a.bin").stat().st_size == 300_000

    assert "success" in remote(daemon, "-a", MAGNET)
    listing = remote(daemon, "-l")
    assert "    2 " in listing and "a magnet" in listing

    assert "Daemon version" in remote(daemon, "-si")
    assert "CURRENT SESSION" in remote(daemon, "-st")

    remote(daemon, "-t", "1", "--remove-and-delete")
    assert [t["info_hash"] for t in daemon.call("torrent.list")] == ["ab" * 20]
    assert not (elsewhere / "album").exists()

    # ids survive a restart and are never given again
    assert daemon.stop() == 0
    daemon.start()
    assert "    2 " in remote(daemon, "-l")
    remote(daemon, "-a", str(torrent))
    listing = remote(daemon, "-l")
    assert "    3 " in listing and "    1 " not in listing


@contextlib.contextmanager
def indexer(folder: Path) -> Iterator[str]:
    """A Prowlarr stand-in: ``folder`` over HTTP on 127.0.0.1 (a thread of this process)."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_adds_by_url(daemon: BtdProcess, tmp_path: Path) -> None:
    """transmission-remote -a URL and torrent.add_url fetch from a local indexer (allowed by
    default: fetch_local_urls); a page that is not a torrent says so."""
    _, torrent, info_hash = seeded_torrent(tmp_path, {"one/a.bin": 70_000}, "one", "one.torrent")
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(torrent, served / "one.torrent")
    (served / "page.html").write_text("<html>log in</html>")
    daemon.start()
    with indexer(served) as base:
        assert "success" in remote(daemon, "-a", f"{base}/one.torrent")
        assert [t["info_hash"] for t in daemon.call("torrent.list")] == [info_hash]
        again = daemon.call("torrent.add_url", {"url": f"{base}/one.torrent", "paused": True})
        assert again == {
            "info_hash": info_hash,
            "name": "one",
            "added": False,
            "save_path": str(daemon.downloads),
        }
        with pytest.raises(RemoteError) as refused:
            daemon.call("torrent.add_url", {"url": f"{base}/page.html"})
        assert refused.value.code == INVALID_TORRENT
        assert "not a .torrent file (the server answered text/html" in refused.value.message
        with pytest.raises(RemoteError) as missing_page:
            daemon.call("torrent.add_url", {"url": f"{base}/nothing.torrent"})
        assert missing_page.value.message == "url: the server answered HTTP 404"

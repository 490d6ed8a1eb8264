"""Transmission's own web client (Debian's transmission-common, 3.00), served by btd's
``web_root`` and loaded in a real Chromium, drives btd through the Transmission RPC: it lists
a torrent a libtorrent seeder is feeding with its progress moving, pauses it, and adds a
.torrent through its upload dialog. Every effect is checked through btd's own socket, and
the page must raise no JavaScript error and show no alert (a bad RPC reply shows as one)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import chromium_page
from btdtest import BtdProcess, free_port, make_torrent, missing, wait_until, write_files

pytestmark = [pytest.mark.interop, pytest.mark.integration]

WEB = Path("/usr/share/transmission/web")
SIZE = 6 * 2**20
PIECE = 64 * 1024
HANDSHAKE = "status of 409 (Conflict)"
LIMIT = 300_000  # the seeder's upload limit, bytes/s: ~20 s, so the page sees it move


@pytest.fixture()
def web_root() -> Path:
    if not (WEB / "index.html").exists():
        missing("Transmission's web client (apt-get install transmission-common)")
    return WEB


class PageProblems:
    """JavaScript errors, console errors and alerts of one page."""

    def __init__(self, page: Any) -> None:
        self.seen: list[str] = []
        page.on("pageerror", lambda exc: self.seen.append(f"pageerror: {exc}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, msg: Any) -> None:
        if msg.type != "error" or HANDSHAKE in msg.text:
            return  # the first RPC is answered 409 with the session id, by design
        self.seen.append(f"console: {msg.text}")

    def _dialog(self, dialog: Any) -> None:
        self.seen.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


@pytest.fixture()
def btd(tmp_path: Path, web_root: Path) -> Iterator[BtdProcess]:
    port = free_port()
    config = (
        "session:\n  listen_host: 127.0.0.1\n"
        f"plugins:\n  rarest_first: {{}}\n  http:\n    port: {port}\n"
        f"    web_root: {web_root}\n"
    )
    proc = BtdProcess(tmp_path / "btd", config=config)
    proc.http_port = port  # type: ignore[attr-defined]
    yield proc.start()
    proc.close()


def state(btd: BtdProcess, info_hash: str) -> str | None:
    rows = [t for t in btd.call("torrent.list") if t["info_hash"] == info_hash]
    return rows[0]["state"] if rows else None


def test_transmission_web_client_drives_btd(
    tmp_path: Path, btd: BtdProcess, lt_factory: Any
) -> None:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, {"movie/movie.bin": SIZE, "extra/extra.bin": 100_000}, seed=5)
    torrent = tmp_path / "movie.torrent"
    info_hash = make_torrent(seed_dir / "movie", torrent, PIECE)
    extra = tmp_path / "extra.torrent"
    extra_hash = make_torrent(seed_dir / "extra", extra, PIECE)
    seeder = lt_factory("seed", torrent, seed_dir, upload_limit=LIMIT)
    btd.add(torrent)
    btd.call(
        "torrent.add_peer", {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port}
    )

    base = f"http://127.0.0.1:{btd.http_port}"  # type: ignore[attr-defined]
    with chromium_page() as page:
        problems = PageProblems(page)
        page.context.add_cookies([{"name": "refresh_rate", "value": "1", "url": base}])
        page.goto(f"{base}/transmission/")  # redirected to /transmission/web/
        assert page.url == f"{base}/transmission/web/"
        row = page.locator("#torrent_list li.torrent").filter(has_text="movie")
        details = row.locator(".torrent_progress_details")
        details.wait_for()
        # the progress moves: two different percentages seen in the page
        first = page.wait_for_function(
            """el => { const m = el.textContent.match(/\\(([0-9.]+)%\\)/);
                       return m && parseFloat(m[1]) > 0 && m[1]; }""",
            arg=details.element_handle(),
        ).json_value()
        second = page.wait_for_function(
            """([el, first]) => { const m = el.textContent.match(/\\(([0-9.]+)%\\)/);
                                 return m && m[1] !== first && m[1]; }""",
            arg=[details.element_handle(), first],
        ).json_value()
        assert float(second) != float(first)

        # pause it in the page: paused in btd
        row.locator(".torrent_pause").click()
        wait_until(lambda: state(btd, info_hash) == "paused", what="paused through the page")
        row.locator(".torrent_resume").wait_for()

        # add a .torrent through the upload dialog
        page.locator("#toolbar-open").click()
        page.locator("#upload_container").wait_for(state="visible")
        page.set_input_files("#torrent_upload_file", str(extra))
        page.locator("#upload_confirm_button").click()
        wait_until(lambda: state(btd, extra_hash) is not None, what="added through the page")
        page.locator("#torrent_list li.torrent").filter(has_text="extra").wait_for()

        # the inspector asks for the detail fields (files, peers, trackers)
        row.click()
        page.locator("#toolbar-inspector").click()
        page.locator("#torrent_inspector").wait_for(state="visible")
        page.locator("#inspector-tab-files").click()
        page.locator("#inspector_file_list").get_by_text("movie.bin").wait_for()
        assert re.search(r"\d", page.locator("#inspector-info-size").text_content() or "")
        for tab in ("peers", "trackers", "info"):
            page.locator(f"#inspector-tab-{tab}").click()
        # the turtle (session-set alt-speed-enabled) and the preferences (session-get)
        page.locator("#turtle-button").click()
        wait_until(lambda: btd.call("session.get")["alt_enabled"], what="the turtle")
        page.locator("#prefs-button").click()
        page.locator("#prefs-dialog").wait_for(state="visible")
        page.screenshot(path=str(tmp_path / "transmission-web.png"))
        shown = page.locator("body").inner_text()
        assert "NaN" not in shown and "undefined" not in shown, shown
        assert problems.seen == []
    print(f"progress seen in the page: {first}% then {second}%")

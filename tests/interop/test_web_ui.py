"""btd's own web UI in a real Chromium (Debian's, driven by playwright), against a real btd
with the http plugin and a libtorrent seeder feeding it.

The page shows the torrent with its progress moving; its Pause button pauses it in the
daemon; a .torrent uploaded through the page (one file skipped) is added; the detail view
shows files, peers and the piece map; a phone-sized screen shows the list without
horizontal scrolling; with a password configured, the login form refuses a wrong one, lets
the right one in, and a cookie POST without the CSRF token is refused.

``BTD_WEB_UI_SCREENSHOT=PATH`` saves a screenshot of the page (docs/img/web-ui.png).
"""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from browser import chromium_page
from btdtest import free_port, make_torrent, write_files

from btd.plugins.http.passwords import hash_password

pytestmark = [pytest.mark.interop, pytest.mark.integration]

SIZE = 24 * 2**20
PIECE = 256 * 1024
LIMIT = 1_000_000  # the seeder's upload limit, bytes/s: ~25 s for the download
USER, PASSWORD = "me", "correct horse"


def config(port: int, auth: bool = False) -> str:
    text = (
        "session:\n  listen_host: 127.0.0.1\n"
        f"plugins:\n  rarest_first: {{}}\n  http:\n    port: {port}\n"
    )
    if auth:
        text += f"    username: {USER}\n    password_hash: '{hash_password(PASSWORD)}'\n"
    return text


def row(info_hash: str) -> str:
    return f'li.torrent[data-hash="{info_hash}"]'


def progress_changes(page: Any, selector: str, old: str) -> str:
    """Wait (playwright's deadline) until the text at ``selector`` is another one."""
    page.wait_for_function(
        "([sel, old]) => { const e = document.querySelector(sel);"
        " return e && e.textContent && e.textContent !== old; }",
        arg=[selector, old],
        timeout=30_000,
    )
    return str(page.text_content(selector))


def no_horizontal_scroll(page: Any) -> bool:
    return bool(
        page.evaluate(
            "() => document.documentElement.scrollWidth <= window.innerWidth"
            " && document.body.scrollWidth <= window.innerWidth"
        )
    )


def test_web_ui_shows_progress_pauses_and_adds(
    tmp_path: Path, btd_factory: Any, lt_factory: Any
) -> None:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, {"movie/movie.bin": SIZE}, seed=5)
    torrent = tmp_path / "movie.torrent"
    info_hash = make_torrent(seed_dir / "movie", torrent, piece_size=PIECE)
    seeder = lt_factory("seed", torrent, seed_dir, upload_limit=LIMIT)

    other_dir = tmp_path / "other"
    write_files(other_dir, {"album/a.flac": 300_000, "album/b.flac": 200_000}, seed=6)
    upload = tmp_path / "album.torrent"
    upload_hash = make_torrent(other_dir / "album", upload)

    port = free_port()
    btd = btd_factory(config=config(port)).start()
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent, labels=["films"])
        btd.call(
            "torrent.add_peer",
            {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port},
        )

        with chromium_page(viewport={"width": 1100, "height": 700}) as page:
            page.goto(f"http://127.0.0.1:{port}/")
            pct = f"{row(info_hash)} .pct"
            page.wait_for_selector(row(info_hash))
            assert page.text_content(f"{row(info_hash)} .labels") == "films"
            first = progress_changes(page, pct, "0.0%")  # bytes arrived
            second = progress_changes(page, pct, first)  # and keep arriving
            assert float(first.rstrip("%")) < float(second.rstrip("%")) < 100

            # upload a .torrent, skipping its second file
            page.click("#open-add")
            page.set_input_files("#add-file", str(upload))
            page.wait_for_selector("#add-file-list li >> nth=1")
            page.uncheck("#add-file-list input[data-index='1']")
            page.fill("#add-labels", "music, new")
            page.check("#add-paused")
            page.click("#add-submit")
            btd.wait_event(events, "added", upload_hash)
            page.wait_for_selector(row(upload_hash))
            added = btd.call("torrent.get", {"info_hash": upload_hash})
            assert added["labels"] == ["music", "new"] and added["state"] in ("paused", "checking")
            assert [f["wanted"] for f in added["files"]] == [True, False]

            if os.environ.get("BTD_WEB_UI_SCREENSHOT"):
                progress_changes(page, pct, second)
                box = page.locator("#torrents").bounding_box()
                assert box is not None
                height = min(700, box["y"] + box["height"] + 12)
                page.screenshot(
                    path=os.environ["BTD_WEB_UI_SCREENSHOT"],
                    clip={"x": 0, "y": 0, "width": 1100, "height": height},
                )

            # the detail view: files, peers (the seeder), the piece map
            page.click(f"{row(info_hash)} .row-main")
            page.wait_for_selector("#detail-dialog[open] [data-panel=files] table")
            assert "movie.bin" in page.text_content("#detail-dialog [data-panel=files]")
            page.click("#detail-dialog [data-tab=peers]")
            page.wait_for_selector("#detail-dialog [data-panel=peers] td")
            page.click("#detail-dialog [data-tab=pieces]")
            page.wait_for_function(
                "() => /^\\d+ of 96 pieces verified/.test("
                "document.querySelector('#piece-text').textContent)"
            )
            if os.environ.get("BTD_WEB_UI_SHOTS"):
                page.screenshot(path=os.environ["BTD_WEB_UI_SHOTS"] + "-detail.png")
            page.click("#detail-close")

            # pause in the page -> paused in the daemon
            page.click(f"{row(info_hash)} .toggle")
            btd.wait_event(events, "paused", info_hash)
            assert btd.call("torrent.get", {"info_hash": info_hash})["state"] == "paused"
            page.wait_for_selector(f"{row(info_hash)} .toggle:text('Resume')")

            # a URL: torrent.add_url's answer (an error until it exists) shows in the dialog
            page.click("#open-add")
            page.fill("#add-link", "http://127.0.0.1:1/none.torrent")
            page.click("#add-submit")
            page.wait_for_function("() => document.querySelector('#add-error').textContent")
            assert page.is_visible("#add-dialog")
            shown = page.text_content("#add-error")
            methods = btd.call("session.methods")
            if "torrent.add_url" not in methods:
                assert shown == "torrent.add_url: this daemon does not have that method"
            page.click("#add-cancel")

            # a magnet
            magnet_hash = "ab" * 20
            page.click("#open-add")
            name = "<img src=x onerror=alert(1)><b>x</b>"  # names are text, never markup
            page.fill("#add-link", f"magnet:?xt=urn:btih:{magnet_hash}&dn={quote(name)}")
            page.click("#add-submit")
            btd.wait_event(events, "added", magnet_hash)
            page.wait_for_selector(f"{row(magnet_hash)} .state:text('metadata')")
            assert page.text_content(f"{row(magnet_hash)} .name") == name
            assert page.locator(f"{row(magnet_hash)} .name *").count() == 0

            # filters
            page.select_option("#filter-label", "music")
            page.wait_for_selector(row(info_hash), state="hidden")
            assert page.is_visible(row(upload_hash))
            page.select_option("#filter-label", "")
            page.fill("#search", "movie")
            page.wait_for_selector(row(upload_hash), state="hidden")

        with chromium_page(viewport={"width": 390, "height": 844}, is_mobile=True) as phone:
            phone.goto(f"http://127.0.0.1:{port}/")
            phone.wait_for_selector(row(info_hash))
            phone.wait_for_selector(row(upload_hash))
            assert no_horizontal_scroll(phone)
            if os.environ.get("BTD_WEB_UI_SHOTS"):
                phone.screenshot(path=os.environ["BTD_WEB_UI_SHOTS"] + "-phone.png")
            box = phone.locator(row(info_hash)).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
            phone.click(f"{row(upload_hash)} .row-main")
            phone.wait_for_selector("#detail-dialog[open] [data-panel=files] table")
            assert no_horizontal_scroll(phone)
            if os.environ.get("BTD_WEB_UI_SHOTS"):
                phone.screenshot(path=os.environ["BTD_WEB_UI_SHOTS"] + "-phone-detail.png")

            # a file's priority, edited in the detail view
            with phone.expect_response(
                lambda r: "torrent.set_files" in (r.request.post_data or "")
            ) as answer:
                phone.select_option("#detail-dialog select >> nth=0", "high")
            assert answer.value.ok and "error" not in answer.value.json()
            files = btd.call("torrent.files", {"info_hash": upload_hash})
            assert [f["priority"] for f in files] == ["high", "normal"]

            # remove with data: confirmed first (cancel keeps it)
            phone.click("#detail-dialog [data-act=remove-data]")
            phone.wait_for_selector("#confirm-dialog[open]")
            assert "DELETE" in phone.text_content("#confirm-text")
            phone.click("#confirm-dialog button[value=cancel]")
            phone.wait_for_selector("#confirm-dialog", state="hidden")
            assert upload_hash in [t["info_hash"] for t in btd.call("torrent.list")]
            phone.click("#detail-dialog [data-act=remove-data]")
            phone.click("#confirm-ok")
            removed = btd.wait_event(events, "removed", upload_hash)
            assert removed["deleted_data"] is True
            phone.wait_for_selector(row(upload_hash), state="detached")


def test_web_ui_login_and_csrf(tmp_path: Path, btd_factory: Any) -> None:
    port = free_port()
    btd = btd_factory(config=config(port, auth=True)).start()
    with chromium_page() as page:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#login")
        assert not page.is_visible("#app")
        page.fill("#login [name=username]", USER)
        page.fill("#login [name=password]", "wrong")
        page.click("#login button[type=submit]")
        page.wait_for_selector("#login-error:text('wrong user name or password')")
        assert not page.is_visible("#app")

        page.fill("#login [name=password]", PASSWORD)
        page.click("#login button[type=submit]")
        page.wait_for_selector("#app")
        page.wait_for_selector("#empty")  # the list answered: no torrents yet
        assert page.is_visible("#logout")

        # the turtle switch and the speed limits, through the page's own (CSRF-carrying) calls
        page.click("#turtle")
        page.wait_for_selector("#turtle[aria-pressed=true]")
        assert btd.call("session.get")["alt_enabled"] is True
        page.click("#open-limits")
        page.fill("#limit-down", "500")
        page.fill("#limit-alt-up", "20")
        page.click("#limits-form button[type=submit]")
        page.wait_for_selector("#limits-dialog", state="hidden")
        settings = btd.call("session.get")
        assert settings["download_limit"] == 500 * 1024
        assert settings["alt_upload_limit"] == 20 * 1024

        call = json.dumps({"jsonrpc": "2.0", "method": "session.info", "id": 1})
        status = page.evaluate(
            "(body) => fetch('/rpc', {method: 'POST', body,"
            " headers: {'Content-Type': 'application/json'}}).then(r => r.status)",
            call,
        )
        assert status == 403  # the cookie alone does not do
        status = page.evaluate(
            "(body) => fetch('/session').then(r => r.json()).then(s => fetch('/rpc',"
            " {method: 'POST', body, headers: {'Content-Type': 'application/json',"
            " 'X-Btd-Csrf': s.csrf}})).then(r => r.status)",
            call,
        )
        assert status == 200

        (cookie,) = [c for c in page.context.cookies() if c["name"] == "btd_session"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        page.click("#logout")
        page.wait_for_selector("#login")
        assert not [c for c in page.context.cookies() if c["name"] == "btd_session"]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/rpc", headers={"Cookie": f"btd_session={cookie['value']}"})
        assert conn.getresponse().status == 401  # the old cookie is dead in the daemon too
        conn.close()

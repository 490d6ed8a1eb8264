"""`btctl watch`: its pure parts (render, on_key, keys, piece map) and its loops against a
fake daemon that answers batches and pushes events (plain mode; the screen in a pty)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fake_daemon
import pytest
from fake_daemon import METHOD_NOT_FOUND, reply
from hypothesis import given
from hypothesis import strategies as st

from btd.core.rpc.client import RpcClient
from btd.core.rpc.errors import NOT_FOUND
from btd.ctl import main as ctl
from btd.ctl.base import Output
from btd.ctl.format import PIECE_CELLS, piece_cells
from btd.ctl.watch import perform, refresh, run_screen
from btd.ctl.watch_view import (
    Action,
    WatchState,
    decode_keys,
    on_key,
    plain_line,
    render,
    with_data,
    with_detail,
)

HASH_A = "3f9a" + "11" * 18
HASH_B = "3f9b" + "22" * 18
HASH_C = "c0ff" + "33" * 18
BTCTL = Path(sys.executable).parent / "btctl"


def summary(info_hash: str, name: str, **over: Any) -> dict[str, Any]:
    base = {
        "info_hash": info_hash, "name": name, "state": "downloading", "progress": 0.5,
        "size": 3 * 2**20, "left": 3 * 2**19, "downloaded": 3 * 2**19, "uploaded": 2**19,
        "ratio": 0.3333, "download_rate": 1536 * 1024, "upload_rate": 2048, "peers": 7,
        "seeds": 2, "eta": 3723, "pieces": 12, "pieces_have": 6, "piece_length": 262144,
        "save_path": "/srv/dl", "error": None,
    }  # fmt: skip
    return {**base, **over}


def torrents() -> list[dict[str, Any]]:
    return [
        summary(HASH_A, "debian-12.iso"),
        summary(HASH_B, "[bold]odd\x1b[31m name", state="paused", progress=1.0, left=0,
                eta=0, download_rate=0, upload_rate=0, peers=0, ratio=2.5),
    ]  # fmt: skip


FILES = [
    {"index": 0, "path": "debian/a.bin", "length": 2**20, "completed": 2**20, "progress": 1.0},
    {"index": 1, "path": "debian/b.bin", "length": 2**21, "completed": 0, "progress": 0.0},
]
TRACKERS = [{"url": "http://127.0.0.1:6969/announce", "tier": 0, "status": "working",
             "last_error": None, "next_announce": 1795.2}]  # fmt: skip
PEERS = [{"address": "127.0.0.1", "port": 6881, "client": "LT2090", "progress": 1.0,
          "download_rate": 2**20, "upload_rate": 0, "am_choking": True, "am_interested": True,
          "peer_choking": False, "peer_interested": False, "snubbed": False}]  # fmt: skip
STATS = {"torrents": 2, "states": {"downloading": 1, "paused": 1}, "peers": 7,
         "download_rate": 1536 * 1024, "upload_rate": 2048, "downloaded": 10 * 2**30,
         "uploaded": 2**30, "uptime": 93784.2, "listen_port": 6881}  # fmt: skip


def detail(info_hash: str = HASH_A) -> dict[str, Any]:
    return {**summary(info_hash, "debian-12.iso"), "files": FILES, "trackers": TRACKERS,
            "piece_map": "fc00", "sources": {}, "banned": [], "wasted": 0}  # fmt: skip


def loaded(**over: Any) -> WatchState:
    return with_data(WatchState(title="test.sock", **over), torrents(), STATS)


def text_of(state: WatchState, width: int = 100, height: int | None = None) -> str:
    console = __import__("rich.console").console.Console(
        width=width, record=True, file=io.StringIO(), color_system=None
    )
    console.print(render(state, width, height))
    return console.export_text()


# -- piece map ----------------------------------------------------------------------------


def test_piece_cells_one_cell_per_piece_when_few() -> None:
    assert piece_cells("e0", 3) == "███"
    assert piece_cells("a0", 3) == "█░█"
    assert piece_cells("00", 0) == ""
    assert piece_cells("", 5) == ""
    assert piece_cells("zz", 8) == ""  # not hex: no map rather than a crash
    assert piece_cells("ff", None) == "█" * 8  # count unknown: every bit of the field
    assert piece_cells("ff", 100) == "█" * 8  # more pieces claimed than bits sent


def test_piece_cells_groups_pieces_into_64_cells() -> None:
    # 256 pieces, 4 per cell: 13 cells of 4/4 verified, of 1/4, 2/4, 3/4, then 12 of 0/4
    bits = "1111" * 13 + "1000" * 13 + "1100" * 13 + "1110" * 13 + "0000" * 12
    cells = piece_cells(f"{int(bits, 2):064x}", 256)
    assert cells == "█" * 13 + "▒" * 13 + "▓" * 26 + "░" * 12
    assert len(cells) == PIECE_CELLS
    # the last partial byte's spare bits are ignored: 10 pieces, all had
    assert piece_cells("ffc0", 10) == "█" * 10


@given(st.integers(min_value=1, max_value=3000), st.booleans())
def test_piece_cells_shape(pieces: int, full: bool) -> None:
    nbytes = (pieces + 7) // 8
    value = ((1 << pieces) - 1) << (nbytes * 8 - pieces) if full else 0
    cells = piece_cells(f"{value:0{nbytes * 2}x}", pieces)
    assert len(cells) == min(PIECE_CELLS, pieces)
    assert set(cells) == ({"█"} if full else {"░"})


# -- keys and state -------------------------------------------------------------------------


def test_decode_keys() -> None:
    assert decode_keys("\x1b[A\x1b[Bjk") == ["up", "down", "j", "k"]
    assert decode_keys("\x1bOA\x1bOB") == ["up", "down"]  # application cursor mode
    assert decode_keys("\r\n\x03q") == ["enter", "enter", "ctrl-c", "q"]
    assert decode_keys("\x1b") == ["escape"]
    assert decode_keys("\x1b[1;5Cp\x1b[5~d") == ["p", "d"]  # other keys' sequences skipped


def test_selection_moves_and_stays_in_bounds() -> None:
    state = loaded()
    assert state.selected == HASH_A  # the first torrent is selected at first
    state, action = on_key(state, "up")
    assert (state.selected, action) == (HASH_A, None)
    state, _ = on_key(state, "down")
    assert state.selected == HASH_B
    state, _ = on_key(state, "j")
    assert state.selected == HASH_B
    state, _ = on_key(state, "k")
    assert state.selected == HASH_A


def test_selection_follows_its_torrent_across_refreshes() -> None:
    state, _ = on_key(loaded(), "down")
    assert state.selected == HASH_B
    new_order = [summary(HASH_C, "new"), *torrents()]
    assert with_data(state, new_order, STATS).selected == HASH_B
    # the selected torrent is removed: the selection stays on its row
    assert with_data(state, [torrents()[0], summary(HASH_C, "c")], None).selected == HASH_C
    assert with_data(state, [torrents()[0]], None).selected == HASH_A
    assert with_data(state, [], None).selected is None


def test_detail_pane_toggles_and_follows_the_selection() -> None:
    state, action = on_key(loaded(), "enter")
    assert state.detail_open and action == Action("detail", HASH_A)
    state = with_detail(state, detail(), PEERS)
    assert state.detail is not None and state.peers == tuple(PEERS)
    assert with_detail(state, detail(HASH_B), []).detail["info_hash"] == HASH_A  # stale: dropped
    moved, action = on_key(state, "down")
    assert moved.detail is None and action == Action("detail", HASH_B)
    closed, action = on_key(moved, "i")
    assert not closed.detail_open and action is None
    closed, _ = on_key(moved, "escape")
    assert not closed.detail_open


def test_pause_resume_and_remove_with_confirmation() -> None:
    state = loaded()
    assert on_key(state, "p")[1] == Action("pause", HASH_A)
    paused, _ = on_key(state, "down")
    assert on_key(paused, "p")[1] == Action("resume", HASH_B)
    asking, action = on_key(state, "d")
    assert action is None and asking.confirm == HASH_A and "[y/n]" in asking.message
    assert "debian-12.iso" in asking.message
    done, action = on_key(asking, "y")
    assert action == Action("remove", HASH_A) and done.confirm is None
    kept, action = on_key(asking, "n")
    assert action is None and kept.confirm is None and kept.message == "not removed"
    kept, action = on_key(asking, "q")  # any other key cancels; it does not quit
    assert action is None and kept.confirm is None


def test_quit_refresh_and_empty_list() -> None:
    assert on_key(loaded(), "q")[1] == Action("quit")
    assert on_key(loaded(), "ctrl-c")[1] == Action("quit")
    assert on_key(loaded(), "r")[1] == Action("refresh")
    assert on_key(loaded(), "x") == (loaded(), None)
    empty = WatchState()
    for key in ("p", "d", "enter", "down"):
        state, action = on_key(empty, key)
        assert action is None and state.confirm is None and not state.detail_open


# -- rendering --------------------------------------------------------------------------------


def test_render_lists_every_torrent_with_totals() -> None:
    text = text_of(loaded())
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines)
    row = next(line for line in lines if "debian-12.iso" in line)
    assert row.startswith("› debian-12.iso")  # the selected row is marked
    for cell in ("downloading", "50.0%", "1.5 MiB/s", "2.0 KiB/s", "1h 02m 03s", "0.33"):
        assert cell in row
    assert "█" in row and "░" in row  # a progress bar
    other = next(line for line in lines if "odd" in line)
    assert "[bold]odd?[31m na" in other  # no markup, no escape reaches the terminal
    assert "paused" in other and "100.0%" in other and "2.50" in other
    assert "2 torrents (1 downloading, 1 paused) · 7 peers · ↓ 1.5 MiB/s" in text
    assert "q quit" in text and "test.sock" in text


def test_render_drops_columns_before_the_name_on_narrow_screens() -> None:
    for width in (40, 60, 80):
        text = text_of(loaded(), width)
        assert all(len(line) <= width for line in text.splitlines())
        row = next(line for line in text.splitlines() if line.startswith("› "))
        assert row.startswith("› debian-12.iso") and "50.0%" in row
    assert "RATIO" not in text_of(loaded(), 80) and "RATIO" in text_of(loaded(), 100)


def test_render_detail_pane() -> None:
    state, _ = on_key(loaded(), "enter")
    assert "loading…" in text_of(state)
    text = text_of(with_detail(state, detail(), PEERS))
    for needle in ("debian/a.bin", "debian/b.bin", "LT2090", "127.0.0.1:6881", "1.0 MiB/s",
                   "I..c.", "http://127.0.0.1:6969/announce", "working", "6/12 pieces",
                   "pieces " + piece_cells("fc00", 12)):  # fmt: skip
        assert needle in text, needle
    assert all(len(line) <= 100 for line in text.splitlines())


def test_render_confirmation_and_empty_list() -> None:
    asking, _ = on_key(loaded(), "d")
    assert "remove debian-12.iso? its data stays on disk [y/n]" in text_of(asking)
    assert "no torrents" in text_of(WatchState())


def test_render_fits_the_height_and_keeps_the_selection_visible() -> None:
    many = [summary(f"{i:040x}", f"torrent-{i:02d}") for i in range(50)]
    state = with_data(WatchState(), many, STATS)
    for _ in range(40):
        state, _ = on_key(state, "down")
    text = text_of(state, 100, 20)
    assert len(text.splitlines()) <= 20
    assert "› torrent-40" in text and "of 50 torrents" in text
    state, _ = on_key(state, "enter")
    many_files = {**detail(many[40]["info_hash"]), "files": FILES * 20}
    text = text_of(with_detail(state, many_files, PEERS * 5), 100, 30)
    assert len(text.splitlines()) <= 30
    assert "› torrent-40" in text and "more" in text and "LT2090" in text


def test_plain_line() -> None:
    first, second = torrents()
    assert plain_line(first) == "3f9a1111 downloading 50.0% 1.5MiB/s 2.0KiB/s 7 debian-12.iso"
    assert plain_line(second) == "3f9b2222 paused 100.0% 0B/s 0B/s 0 [bold]odd?[31m name"


# -- against a fake daemon -------------------------------------------------------------------


class FakeDaemon(fake_daemon.FakeDaemon):
    """Answers single and batch requests; pushes events to subscribed connections."""

    def __init__(self, path: Path) -> None:
        self.torrents = torrents()
        super().__init__(path)

    def answer(self, request: dict[str, Any], conn: fake_daemon.Connection) -> Any:
        method, params = request["method"], request.get("params") or {}
        if method == "events.subscribe":
            return reply(request, result={"events": None})
        hashes = [t["info_hash"] for t in self.torrents]
        if "info_hash" in params and params["info_hash"] not in hashes:
            return reply(request, error={"code": NOT_FOUND, "message": "no torrent matches"})
        results: dict[str, Callable[[], Any]] = {
            "torrent.list": lambda: self.torrents,
            "session.stats": lambda: STATS,
            "torrent.get": lambda: detail(params["info_hash"]),
            "torrent.peers": lambda: PEERS,
            "torrent.pause": lambda: {"info_hash": params["info_hash"], "state": "paused"},
            "torrent.remove": lambda: {"info_hash": params["info_hash"], "removed": True},
        }  # fmt: skip
        if method not in results:
            return reply(request, error=METHOD_NOT_FOUND)
        return reply(request, result=results[method]())


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDaemon]:
    monkeypatch.delenv("BTD_SOCKET", raising=False)
    fake = FakeDaemon(tmp_path / "btd.sock")
    yield fake
    fake.stop()


def test_plain_mode_prints_rounds_of_lines(daemon: FakeDaemon, capsys) -> None:
    code = ctl.main(["--socket", str(daemon.path), "watch", "--count", "2", "--interval", "0.1"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    expected = [plain_line(t) for t in torrents()] * 2
    assert out.splitlines() == expected
    assert "\x1b" not in out
    assert daemon.methods().count("torrent.list") == 2
    assert "events.subscribe" in daemon.methods()  # its own connection, read by a thread


def test_plain_mode_json_lines(daemon: FakeDaemon, capsys) -> None:
    code = ctl.main(["--socket", str(daemon.path), "--json", "watch", "--count", "1"])
    out, _ = capsys.readouterr()
    assert code == 0 and [json.loads(line) for line in out.splitlines()] == [torrents()]


def test_plain_mode_stops_when_the_daemon_hangs_up(daemon: FakeDaemon, capsys) -> None:
    daemon.hang_up_subscribers = True
    started = time.monotonic()
    code = ctl.main(["--socket", str(daemon.path), "watch", "--interval", "0.2"])
    _, err = capsys.readouterr()
    assert code == 3 and "the daemon closed the connection" in err
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("option", [["--interval", "0"], ["--interval", "nan"], ["--count", "0"]])
def test_bad_options_are_usage_errors(daemon: FakeDaemon, capsys, option: list[str]) -> None:
    assert ctl.main(["--socket", str(daemon.path), "watch", *option]) == 2
    assert "watch: --" in capsys.readouterr().err


def test_plain_mode_stops_on_sigint_and_loads_no_rich(daemon: FakeDaemon) -> None:
    program = (
        "import sys\nfrom btd.ctl.main import main\n"
        f"code = main(['--socket', {str(daemon.path)!r}, 'watch', '--interval', '0.1'])\n"
        "print('rich' in sys.modules, code, file=sys.stderr)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("3f9a1111 downloading")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0 and err.split() == ["False", "0"]


def test_refresh_batches_list_stats_and_the_open_torrent(daemon: FakeDaemon) -> None:
    with RpcClient(daemon.path, timeout=10) as client:
        state = refresh(client, WatchState())
        assert state.selected == HASH_A and state.stats == STATS
        state, _ = on_key(state, "enter")
        state = refresh(client, state)
    assert state.detail is not None and state.detail["files"] == FILES
    assert state.peers == tuple(PEERS)
    batch = daemon.requests[-1]
    assert [r["method"] for r in batch] == [
        "torrent.list", "session.stats", "torrent.get", "torrent.peers"]  # fmt: skip


def test_perform_never_deletes_data(daemon: FakeDaemon) -> None:
    with RpcClient(daemon.path, timeout=10) as client:
        state = perform(client, loaded(), Action("remove", HASH_A))
        assert state.message == "removed debian-12.iso"
        assert daemon.requests[-1]["params"] == {"info_hash": HASH_A, "delete_data": False}
        state = perform(client, state, Action("resume", HASH_A))  # the fake lacks it
        assert state.message == "resume: method not found"


def test_screen_follows_events_and_quits_on_q(daemon: FakeDaemon, monkeypatch) -> None:
    """The full-screen loop in a pty: an event refreshes at once (the interval is 60 s)."""
    master, slave = os.openpty()
    screen = os.fdopen(slave, "w", encoding="utf-8", closefd=False)
    keys = os.fdopen(os.dup(slave), "r", encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", keys)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "30")
    seen = Screen(master)
    args = type("Args", (), {"interval": 60.0, "count": None})()
    from btd.ctl.watch import EventFeed

    result: list[int] = []
    with RpcClient(daemon.path, timeout=10) as client:
        feed = EventFeed(client.path, 10)
        loop = threading.Thread(
            target=lambda: result.append(run_screen(client, feed, args, Output(False, screen,
                                                                                 screen))),
            daemon=True,
        )  # fmt: skip
        loop.start()
        try:
            seen.wait_for(b"debian-12.iso")
            daemon.torrents.append(summary(HASH_C, "fresh-one"))
            daemon.push({"event": "added", "info_hash": HASH_C, "name": "fresh-one"})
            seen.wait_for(b"added: fresh-one")
            seen.wait_for(b"fresh-one  ")  # the list itself was refreshed, not just the line
            os.write(master, b"q")
            loop.join(10)
        finally:
            feed.close()
            os.close(master)
            keys.close()
            screen.close()
            os.close(slave)
    assert result == [0]
    assert daemon.methods().count("torrent.list") == 2  # start and the event: no polling


class Screen:
    """Everything written to the pty, read by a thread that wakes waiters on new bytes."""

    def __init__(self, fd: int) -> None:
        self.data = bytearray()
        self.changed = threading.Condition()
        threading.Thread(target=self._read, args=(fd,), daemon=True).start()

    def _read(self, fd: int) -> None:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self.changed:
                self.data += chunk
                self.changed.notify_all()

    def wait_for(self, needle: bytes, timeout: float = 10) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: needle in self.data, timeout):
                raise AssertionError(f"{needle!r} never shown:\n{bytes(self.data)[-2000:]!r}")

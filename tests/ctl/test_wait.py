"""`btctl wait` and `btctl add --wait` against a fake daemon that pushes events."""

from __future__ import annotations

import argparse
import base64
import functools
import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fake_daemon
import pytest
from fake_daemon import METHOD_NOT_FOUND, Refused, reply, run_btctl

from btd.core.rpc.errors import INVALID_TORRENT, NOT_FOUND
from btd.ctl import main as ctl
from btd.ctl.base import parse_duration
from btd.ctl.wait import ProgressBar, Waiter

HASH_A = "3f9a" + "11" * 18
HASH_B = "8c02" + "22" * 18
HASH_C = "c0ff" + "33" * 18
GOOD = b"d4:infod4:name3:newee"
FIELD = {"field": "info_hash"}


def record(info_hash: str, name: str, **over: Any) -> dict[str, Any]:
    base = {
        "info_hash": info_hash,
        "name": name,
        "state": "downloading",
        "progress": 0.5,
        "size": 4 * 2**20,
        "left": 2 * 2**20,
        "download_rate": 2**20,
        "error": None,
    }
    return {**base, **over}  # fmt: skip


class FakeDaemon(fake_daemon.FakeDaemon):
    """torrent.get/list/add from ``torrents``; events.subscribe; ``push`` sends events.

    ``after[method]`` runs once a reply to ``method`` has been written, to script what the
    daemon does next (e.g. push ``completed``). ``log`` is every request in arrival order.
    """

    def __init__(self, path: Path) -> None:
        self.torrents: dict[str, dict[str, Any]] = {}
        super().__init__(path)

    @property
    def log(self) -> list[tuple[str, Any]]:
        return self.calls()

    def push(self, event: str, info_hash: str, **data: Any) -> None:  # type: ignore[override]
        params = {"event": event, "info_hash": info_hash, "name": "x", "save_path": "/d", **data}
        super().push(params)

    def resolve(self, prefix: str) -> str:
        matches = [h for h in self.torrents if h.startswith(prefix.lower())]
        if len(matches) != 1:
            raise Refused(NOT_FOUND, f"no torrent matches {prefix!r}", FIELD)
        return matches[0]

    def answer(self, request: dict[str, Any], conn: fake_daemon.Connection) -> Any:
        method, params = request["method"], request.get("params") or {}
        try:
            if method == "events.subscribe":
                result: Any = {"events": sorted(params.get("events") or [])}
            elif method == "torrent.get":
                result = {**self.torrents[self.resolve(params["info_hash"])], "files": []}
            elif method == "torrent.list":
                fields = params.get("fields")
                result = [
                    {k: v for k, v in t.items() if fields is None or k in fields}
                    for t in self.torrents.values()
                ]
            elif method == "torrent.add":
                if base64.b64decode(params["metainfo"]) != GOOD:
                    raise Refused(INVALID_TORRENT, "invalid torrent: not bencoded", FIELD)
                self.torrents.setdefault(HASH_C, record(HASH_C, "new", progress=0.0, left=4))
                result = {"info_hash": HASH_C, "name": "new", "added": True}
            else:
                return reply(request, error=METHOD_NOT_FOUND)
        except Refused as exc:
            return reply(request, error=exc.error)
        return reply(request, result=result)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BTD_SOCKET", raising=False)
    monkeypatch.setattr(ProgressBar, "wanted", staticmethod(lambda stream: False))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(tmp_path / "btd.sock")
    fake.torrents = {HASH_A: record(HASH_A, "debian.iso"), HASH_B: record(HASH_B, "ubuntu.iso")}
    yield fake
    fake.stop()


@pytest.fixture
def btctl(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    return functools.partial(run_btctl, capsys, "--socket", str(daemon.path))


# -- durations ------------------------------------------------------------------------------------


def test_parse_duration() -> None:
    cases = {"90": 90, "90s": 90, "1.5": 1.5, ".5": 0.5, "15m": 900, "2h": 7200, "1d": 86400,
             " 2H ": 7200, "0": 0}  # fmt: skip
    assert {text: parse_duration(text) for text in cases} == cases
    for bad in ("", "m", "-5", "1h30m", "5 minutes", "1e3"):
        with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
            parse_duration(bad)


def test_bad_duration_is_a_usage_error(btctl, daemon) -> None:
    code, _, err = btctl("wait", "3f9a", "--timeout", "soon")
    assert code == ctl.EXIT_USAGE and "invalid duration 'soon'" in err
    assert daemon.log == []


# -- outcomes ---------------------------------------------------------------------------------------


def test_already_complete_returns_at_once_after_subscribing(btctl, daemon) -> None:
    daemon.torrents[HASH_A].update(state="seeding", progress=1.0, left=0)
    code, out, err = btctl("wait", "3f9a")
    assert (code, out, err) == (0, f"completed {HASH_A} debian.iso\n", "")
    assert daemon.methods() == ["events.subscribe", "torrent.get"]  # subscribed FIRST
    assert daemon.log[0][1] == {"events": ["completed", "error", "removed", "started", "verified"]}


def test_completed_event_ends_the_wait(btctl, daemon) -> None:
    daemon.after["torrent.get"] = lambda p: daemon.push("completed", HASH_A)
    code, out, err = btctl("wait", "3f9a", "--timeout", "30s")
    assert (code, out, err) == (0, f"completed {HASH_A} debian.iso\n", "")


def test_events_of_other_torrents_are_ignored(btctl, daemon) -> None:
    def script(_: Any) -> None:
        daemon.push("completed", HASH_B)
        daemon.push("error", HASH_B, error="disk full", state="error")
        daemon.push("paused", HASH_A)
        daemon.push("completed", HASH_A)

    daemon.after["torrent.get"] = script
    assert btctl("wait", "3f9a")[:2] == (0, f"completed {HASH_A} debian.iso\n")


def test_error_event_exits_7(btctl, daemon) -> None:
    daemon.after["torrent.get"] = lambda p: daemon.push(
        "error", HASH_A, error="Not a directory: '/srv/file/sub'", state="error"
    )
    code, out, err = btctl("wait", "3f9a")
    assert code == ctl.EXIT_TORRENT_FAILED == 7
    assert out == f"failed {HASH_A} debian.iso: Not a directory: '/srv/file/sub'\n"
    assert "torrent failed: Not a directory" in err


def test_torrent_already_in_error_exits_7_at_once(btctl, daemon) -> None:
    daemon.torrents[HASH_A].update(state="error", error="disk full")
    code, out, _ = btctl("wait", "3f9a")
    assert code == 7 and out == f"failed {HASH_A} debian.iso: disk full\n"


def test_timeout_exits_5(btctl, daemon) -> None:
    code, out, err = btctl("wait", "3f9a", "--timeout", "0.3")
    assert code == ctl.EXIT_TIMEOUT == 5
    assert out == f"timeout {HASH_A} debian.iso (50.0%)\n"
    assert "gave up after 0.3s (--timeout): 1 of 1 not complete" in err
    assert daemon.methods()[-1] == "torrent.list"  # a last look before giving up


def test_removed_while_waiting_exits_4(btctl, daemon) -> None:
    daemon.after["torrent.get"] = lambda p: daemon.push("removed", HASH_A, deleted_data=False)
    code, out, err = btctl("wait", "3f9a")
    assert code == ctl.EXIT_NOT_FOUND == 4
    assert out == f"removed {HASH_A} debian.iso\n" and "removed while waiting" in err


def test_unknown_hash_exits_4_but_the_others_are_waited_for(btctl, daemon) -> None:
    daemon.after["torrent.get"] = lambda p: daemon.push("completed", HASH_A)
    code, out, err = btctl("wait", "beef", "3f9a")
    assert code == 4 and out == f"completed {HASH_A} debian.iso\n"
    assert f"beef: no torrent matches 'beef' (error {NOT_FOUND})" in err


def test_a_check_that_completes_is_seen_through_started(btctl, daemon) -> None:
    """A recheck finishing with every piece emits started/verified, not completed."""

    def finish_check(_: Any) -> None:
        daemon.torrents[HASH_A].update(state="seeding", progress=1.0, left=0)
        daemon.push("verified", HASH_A, pieces=16)

    daemon.torrents[HASH_A].update(state="checking")
    daemon.after["torrent.get"] = finish_check
    assert btctl("wait", "3f9a")[:2] == (0, f"completed {HASH_A} debian.iso\n")
    assert daemon.methods() == ["events.subscribe", "torrent.get", "torrent.list"]


def test_several_torrents_worst_code_wins_and_json_shape(btctl, daemon) -> None:
    def script(_: Any) -> None:
        daemon.push("completed", HASH_A)
        daemon.push("error", HASH_B, error="disk full", state="error")

    daemon.after["torrent.get"] = lambda p: daemon.after.update({"torrent.get": script})
    code, out, _ = btctl("--json", "wait", "3f9a", "8c02", "beef")
    assert code == 7
    assert json.loads(out) == [
        {"info_hash": HASH_A, "name": "debian.iso", "state": "seeding", "progress": 1.0,
         "result": "completed", "error": None},
        {"info_hash": HASH_B, "name": "ubuntu.iso", "state": "error", "progress": 0.5,
         "result": "failed", "error": "disk full"},
        {"info_hash": "beef", "name": None, "state": None, "progress": None,
         "result": "not_found", "error": "no torrent matches 'beef'"},
    ]  # fmt: skip


def test_json_timeout(btctl, daemon) -> None:
    code, out, _ = btctl("wait", "--json", "8c02", "--timeout", "0.2")
    assert code == 5 and json.loads(out) == [
        {"info_hash": HASH_B, "name": "ubuntu.iso", "state": "downloading", "progress": 0.5,
         "result": "timeout", "error": None},
    ]  # fmt: skip


def test_daemon_going_away_exits_3(btctl, daemon) -> None:
    daemon.after["torrent.get"] = lambda p: daemon.hang_up()
    code, _, err = btctl("wait", "3f9a")
    assert code == ctl.EXIT_UNREACHABLE == 3 and "closed the connection" in err


def test_ctrl_c_exits_130_and_clears_the_bar(btctl, daemon, monkeypatch) -> None:
    monkeypatch.setattr(ProgressBar, "wanted", staticmethod(lambda stream: True))

    def interrupted(self: Waiter, timeout: float | None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Waiter, "_next_event", interrupted)
    code, out, err = btctl("wait", "3f9a")
    assert code == ctl.EXIT_INTERRUPTED == 130 and out == ""
    empty, bar, blank, message = err.split("\r")
    assert empty == "" and bar.startswith("debian.iso [") and "50.0%" in bar
    assert blank == " " * len(bar) and message == "btctl: interrupted\n"


# -- the progress bar -----------------------------------------------------------------------------


def test_progress_bar_on_a_terminal(btctl, daemon, monkeypatch) -> None:
    monkeypatch.setattr(ProgressBar, "wanted", staticmethod(lambda stream: True))
    monkeypatch.setenv("COLUMNS", "80")

    def progress(_: Any) -> None:  # after the first refresh: the download moves on, then ends
        daemon.torrents[HASH_A].update(progress=0.75, left=2**20)
        daemon.push("completed", HASH_A)

    daemon.after["torrent.list"] = progress
    code, out, err = btctl("wait", "3f9a")
    assert (code, out) == (0, f"completed {HASH_A} debian.iso\n")
    assert "\rdebian.iso [##########----------]  50.0%  1.0 MiB/s  ETA 2s" in err
    assert err.endswith("\r")  # the line is blanked before the result is printed


def test_progress_bar_draw_and_clear() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, width=50)
    bar.draw(0.5, "name", "1.0 MiB/s")
    bar.draw(1.0, "name")
    bar.clear()
    first, second, blank = stream.getvalue().split("\r")[1:4]
    assert first == "name [######------]  50.0%  1.0 MiB/s"
    assert second.startswith("name [############] 100.0%")
    assert len(second) == len(first)  # padded over the longer line before it
    assert blank == " " * len(second.rstrip())  # what is left on screen
    bar.draw(0.1, "a very long name " * 10, "x")
    assert len(stream.getvalue().split("\r")[-1]) == 49


def test_no_terminal_no_bar_no_polling(btctl, daemon) -> None:
    daemon.after["torrent.get"] = lambda p: daemon.push("completed", HASH_A)
    code, _, err = btctl("wait", "3f9a")
    assert code == 0 and err == "" and "torrent.list" not in daemon.methods()


# -- add --wait -----------------------------------------------------------------------------------


def test_add_wait_subscribes_adds_then_waits(btctl, daemon, tmp_path) -> None:
    good = tmp_path / "good.torrent"
    good.write_bytes(GOOD)
    daemon.after["torrent.get"] = lambda p: daemon.push("completed", HASH_C)
    code, out, err = btctl("add", "--wait", "--timeout", "1m", str(good))
    assert (code, err) == (0, "")
    assert out == f"added {HASH_C} new\ncompleted {HASH_C} new\n"
    assert daemon.methods() == ["events.subscribe", "torrent.add", "torrent.get"]


def test_add_wait_json_with_a_bad_file(btctl, daemon, tmp_path) -> None:
    good, bad = tmp_path / "good.torrent", tmp_path / "bad.torrent"
    good.write_bytes(GOOD)
    bad.write_bytes(b"nope")
    missing = tmp_path / "missing.torrent"
    daemon.after["torrent.get"] = lambda p: daemon.push("completed", HASH_C)
    code, out, err = btctl("--json", "add", "--wait", str(bad), str(good), str(missing))
    assert code == ctl.EXIT_BAD_INPUT == 6  # the worst of 1 (refused), 0 and 6 (unreadable)
    assert json.loads(out) == [
        {"file": str(bad), "info_hash": None, "name": None, "state": None, "progress": None,
         "result": "not_added", "error": "invalid torrent: not bencoded"},
        {"file": str(good), "info_hash": HASH_C, "name": "new", "state": "seeding",
         "progress": 1.0, "result": "completed", "error": None},
        {"file": str(missing), "info_hash": None, "name": None, "state": None,
         "progress": None, "result": "not_added",
         "error": f"cannot read {missing}: No such file or directory"},
    ]  # fmt: skip
    assert err.count("btctl: ") == 2


def test_add_wait_timeout_and_failure(btctl, daemon, tmp_path) -> None:
    good = tmp_path / "good.torrent"
    good.write_bytes(GOOD)
    code, out, _ = btctl("add", "--wait", "--timeout", "0.2", str(good))
    assert code == 5 and out.splitlines()[-1] == f"timeout {HASH_C} new (0.0%)"
    daemon.after["torrent.get"] = lambda p: daemon.push("error", HASH_C, error="EACCES")
    code, out, _ = btctl("add", "--wait", "--timeout", "30", str(good))
    assert code == 7 and out.splitlines() == [f"added {HASH_C} new", f"failed {HASH_C} new: EACCES"]


def test_add_without_wait_is_unchanged(btctl, daemon, tmp_path) -> None:
    good = tmp_path / "good.torrent"
    good.write_bytes(GOOD)
    assert btctl("add", str(good))[:2] == (0, f"added {HASH_C} new\n")
    assert daemon.methods() == ["torrent.add"]


def test_rpc_timeout_still_means_an_answer_timeout(btctl, daemon) -> None:
    """For other commands --timeout is the answer timeout, now also with units."""
    code, out, _ = btctl("--timeout", "1m", "--json", "wait", "3f9a", "--timeout", "0.1")
    assert code == 5 and json.loads(out)[0]["result"] == "timeout"


def test_stdout_piped_gets_only_final_lines(daemon, tmp_path) -> None:
    """A subprocess with pipes: nothing but the result line (no bar, no control chars)."""
    import subprocess

    daemon.torrents[HASH_A].update(state="seeding", progress=1.0, left=0)
    done = subprocess.run(
        [sys.executable, "-m", "btd.ctl.main", "--socket", str(daemon.path), "wait", "3f9a"],
        capture_output=True, check=False, text=True, timeout=30,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"completed {HASH_A} debian.iso\n",
        "",
    )

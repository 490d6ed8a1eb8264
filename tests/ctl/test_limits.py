"""btctl limit / alt against a fake daemon; parse_rate."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_daemon import FakeDaemon, run_btctl

from btd.ctl.format import parse_rate

HASH = "3f9a" + "11" * 18
KiB, MiB = 1024, 1024 * 1024


def test_parse_rate() -> None:
    cases = {
        "0": 0, "none": 0, "Unlimited": 0, "off": 0, "1000": 1000, "500k": 500 * KiB,
        "500K": 500 * KiB, "5M": 5 * MiB, "1.5M": 3 * MiB // 2, "5MiB": 5 * MiB,
        "5MB/s": 5 * MiB, "2g": 2 * 1024**3, " 64 k ": 64 * KiB, "100b": 100,
    }  # fmt: skip
    assert {text: parse_rate(text) for text in cases} == cases
    for bad in ("", "-1", "5X", "k", "fast", "nan", "1e13", "5 M M"):
        with pytest.raises(ValueError, match="invalid rate"):
            parse_rate(bad)


class State:
    def __init__(self) -> None:
        self.session = {
            "download_limit": 0, "upload_limit": 0, "alt_download_limit": 0,
            "alt_upload_limit": 100 * KiB, "alt_enabled": False,
            "alt_schedule": {"days": ["mon", "tue"], "start": "08:00", "end": "18:00"},
        }  # fmt: skip
        self.torrent = {"info_hash": HASH, "download_limit": 0, "upload_limit": 0}

    def session_set(self, params: dict[str, Any]) -> dict[str, Any]:
        self.session.update(params["settings"])
        return {"applied": list(params["settings"])}

    def torrent_set(self, params: dict[str, Any]) -> dict[str, Any]:
        self.torrent.update({k: v for k, v in params.items() if k != "info_hash"})
        return dict(self.torrent)

    def methods(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "session.config": lambda p: {"source": None, "session": dict(self.session)},
            "session.set": self.session_set,
            "torrent.set": self.torrent_set,
            "torrent.get": lambda p: {**self.torrent, "name": "x", "files": []},
        }


@pytest.fixture
def state() -> State:
    return State()


@pytest.fixture
def daemon(tmp_path: Path, state: State) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(tmp_path / "btd.sock", state.methods())
    yield fake
    fake.stop()


@pytest.fixture
def btctl(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    return functools.partial(run_btctl, capsys, "--socket", str(daemon.path))


def test_limit_shows_the_global_limits(btctl, daemon) -> None:
    code, out, _ = btctl("limit")
    assert code == 0
    assert daemon.methods() == ["session.config"]  # nothing changed
    assert "upload:        unlimited" in out
    assert "alt upload:    100.0 KiB/s" in out
    assert "alt schedule:  mon,tue 08:00-18:00" in out


def test_limit_sets_the_global_limits_through_session_set(btctl, daemon, state) -> None:
    code, out, _ = btctl("--json", "limit", "--up", "1M", "--down", "0")
    assert code == 0
    assert daemon.calls()[0] == (
        "session.set",
        {"settings": {"download_limit": 0, "upload_limit": MiB}},
    )
    assert json.loads(out)["upload_limit"] == MiB


def test_limit_of_one_torrent(btctl, daemon, state) -> None:
    code, out, _ = btctl("limit", "--down", "500k", HASH[:4])
    assert code == 0
    assert daemon.calls() == [("torrent.set", {"info_hash": HASH[:4], "download_limit": 512000})]
    assert out.strip() == f"{HASH} download 500.0 KiB/s, upload unlimited"
    code, out, _ = btctl("--json", "limit", HASH[:4])
    assert json.loads(out) == {"info_hash": HASH, "download_limit": 512000, "upload_limit": 0}
    assert daemon.methods()[-1] == "torrent.get"


def test_a_bad_rate_sends_nothing(btctl, daemon) -> None:
    code, _, err = btctl("limit", "--up", "fast")
    assert code == 2 and "invalid rate 'fast'" in err
    assert daemon.requests == []


def test_alt_on_off(btctl, daemon, state) -> None:
    code, out, _ = btctl("alt", "on")
    assert code == 0 and state.session["alt_enabled"] is True
    assert daemon.calls()[0] == ("session.set", {"settings": {"alt_enabled": True}})
    assert "alt:           on" in out
    btctl("alt", "off")
    assert state.session["alt_enabled"] is False
    code, _, err = btctl("alt", "maybe")
    assert code == 2

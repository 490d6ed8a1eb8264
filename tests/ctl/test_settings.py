"""btctl settings / label / list --label / add --label against a fake daemon; the value
parser (YAML scalars and rates)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_daemon import FakeDaemon, Refused, run_btctl

from btd.core.rpc.errors import INVALID_PARAMS
from btd.ctl.format import LIST_FIELDS, parse_rate, parse_value

HASH = "3f9a" + "11" * 18
VALUES = {"upload_slots": 4, "download_limit": 0, "daemon.log_level": "info", "umask": "0022"}


def m_set(p: dict[str, Any]) -> Any:
    settings = p["settings"]
    for key in settings:
        if key not in VALUES:
            raise Refused(INVALID_PARAMS, f"{key}: unknown setting", {"field": key})
    return {"applied": settings, "saved": {k: k != "umask" for k in settings}, "file": "/s"}


def m_torrent_set(p: dict[str, Any]) -> Any:
    return {"info_hash": HASH, "strategy": "rarest-first", "labels": p["labels"]}


METHODS: dict[str, Callable[[Any], Any]] = {
    "session.get": lambda p: VALUES,
    "session.set": m_set,
    "session.reset": lambda p: {"reset": {k: VALUES[k] for k in p["keys"]}, "file": "/s"},
    "torrent.set": m_torrent_set,
    "torrent.list": lambda p: [],
    "torrent.add": lambda p: {"info_hash": HASH, "name": "x", "added": True},
}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(tmp_path / "btd.sock", METHODS)
    yield fake
    fake.stop()


@pytest.fixture
def btctl(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    return functools.partial(run_btctl, capsys, "--socket", str(daemon.path))


@pytest.mark.parametrize(
    "text, value",
    [
        ("5M", 5 << 20), ("500k", 500 << 10), ("1.5MiB/s", 3 << 19), ("2G", 2 << 30),
        ("5MB", 5 << 20), ("0", 0), ("0022", 22), ("-1", -1), ("2.5", 2.5), ("on", True),
        ("No", False), ("null", None), ("", None), ("/srv/tv", "/srv/tv"), ('"5M"', "5M"),
        ("'on'", "on"), ("nan", "nan"), ("inf", "inf"), ("5 apples", "5 apples"),
    ],
)  # fmt: skip
def test_parse_value(text: str, value: Any) -> None:
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


def test_parse_rate_refuses_what_is_not_one() -> None:
    assert parse_rate("4 MiB/s") == 4 << 20
    for bad in ("fast", "5X", "-5M", ""):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_settings_shows_all_or_some(btctl: Any, daemon: FakeDaemon) -> None:
    code, out, _ = btctl("settings")
    assert code == 0
    assert out.splitlines()[0].split() == ["upload_slots", "4"]
    assert "daemon.log_level  info" in out
    code, out, _ = btctl("settings", "umask", "upload_slots")
    assert code == 0 and out.split() == ["umask", "0022", "upload_slots", "4"]
    code, out, _ = btctl("--json", "settings")
    assert json.loads(out) == VALUES
    code, _, err = btctl("settings", "nonsense")
    assert code == 2 and "unknown key(s) nonsense" in err


def test_settings_set_sends_typed_values(btctl: Any, daemon: FakeDaemon) -> None:
    code, out, _ = btctl("settings", "download_limit=5M", "daemon.log_level=debug", "umask=0027")
    assert code == 0
    assert daemon.calls()[-1] == (
        "session.set",
        {"settings": {"download_limit": 5 << 20, "daemon.log_level": "debug", "umask": 27}},
    )
    assert "download_limit = 5242880 (saved)" in out
    assert "umask = 27 (not saved: lasts until the daemon restarts)" in out
    code, _, err = btctl("settings", "nonsense=1")
    assert code == 1 and "nonsense: unknown setting" in err


@pytest.mark.parametrize(
    "argv", [("upload_slots=1", "upload_slots=2"), ("upload_slots=1", "umask"), ("=3",)]
)
def test_settings_usage_errors_send_nothing(
    btctl: Any, daemon: FakeDaemon, argv: tuple[str, ...]
) -> None:
    code, _, err = btctl("settings", *argv)
    assert code == 2 and err
    assert daemon.calls() == []


def test_settings_reset(btctl: Any, daemon: FakeDaemon) -> None:
    code, out, _ = btctl("settings", "--reset", "upload_slots")
    assert code == 0 and out.split() == ["upload_slots", "4"]
    assert daemon.calls()[-1] == ("session.reset", {"keys": ["upload_slots"]})
    code, _, err = btctl("settings", "upload_slots=3", "--reset", "umask")
    assert code == 2 and "--reset" in err


def test_label_replaces_and_clears(btctl: Any, daemon: FakeDaemon) -> None:
    code, out, _ = btctl("label", "3f9a", "tv", "season 2")
    assert code == 0 and out.strip() == f"{HASH} labels: tv, season 2"
    assert daemon.calls()[-1] == (
        "torrent.set",
        {"info_hash": "3f9a", "labels": ["tv", "season 2"]},
    )
    code, out, _ = btctl("label", "3f9a", "--clear")
    assert code == 0 and out.strip() == f"{HASH} labels: (none)"
    assert daemon.calls()[-1] == ("torrent.set", {"info_hash": "3f9a", "labels": []})
    for argv in (("label", "3f9a"), ("label", "3f9a", "tv", "--clear")):
        assert btctl(*argv)[0] == 2


def test_list_and_add_pass_labels(btctl: Any, daemon: FakeDaemon, tmp_path: Path) -> None:
    assert btctl("list", "--label", "tv")[0] == 0
    assert daemon.calls()[-1] == (
        "torrent.list",
        {"label": "tv", "fields": list(LIST_FIELDS), "format": "table"},
    )
    assert btctl("--json", "list")[0] == 0
    assert daemon.calls()[-1] == ("torrent.list", None)
    file = tmp_path / "x.torrent"
    file.write_bytes(
        b"d4:infod6:lengthi1e4:name1:x12:piece lengthi16384e6:pieces20:" + b"0" * 20 + b"ee"
    )
    assert btctl("add", "--label", "tv", "--label", "hd", str(file))[0] == 0
    method, params = daemon.calls()[-1]
    assert method == "torrent.add"
    sent = params["torrents"][0] if "torrents" in params else params
    assert sent["labels"] == ["tv", "hd"]

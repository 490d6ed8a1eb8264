"""`btctl plugins` against a fake daemon answering canned JSON-RPC on a Unix socket."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fake_daemon
import pytest
from fake_daemon import btctl_in_new_python
from fake_daemon import run_btctl as run

from btd.ctl.parser import COMMANDS

REPO = Path(__file__).resolve().parents[2]

PLUGINS = [
    {"name": "notify_command", "enabled": True, "builtin": True, "version": None,
     "hooks": ["btd_configure", "btd_session_started", "btd_session_stopping",
               "btd_torrent_event"]},
    {"name": "rarest_first", "enabled": True, "builtin": True, "version": None,
     "hooks": ["btd_configure", "btd_piece_picker"]},
    {"name": "sequential", "enabled": False, "builtin": True, "version": None, "hooks": []},
    {"name": "third\x1b[31mparty", "enabled": False, "builtin": False, "version": "2.1.0",
     "hooks": []},
]  # fmt: skip


class FakeDaemon(fake_daemon.FakeDaemon):
    """Answers ``session.plugins`` with ``result``; anything else: method not found."""

    def __init__(self, path: Path, result: Any) -> None:
        super().__init__(path, {"session.plugins": lambda params: result})

    @property
    def methods(self) -> list[str]:  # type: ignore[override]
        return super().methods()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(tmp_path / "btd.sock", PLUGINS)
    yield fake
    fake.stop()


def test_plugins_human_table(daemon: FakeDaemon, capsys) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "plugins")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert re.fullmatch(r"NAME +ENABLED +VERSION +HOOKS", lines[0])
    assert re.fullmatch(
        r"notify_command +yes +- +btd_configure, btd_session_started, "
        r"btd_session_stopping, btd_torrent_event",
        lines[1],
    )
    assert re.fullmatch(r"rarest_first +yes +- +btd_configure, btd_piece_picker", lines[2])
    assert re.fullmatch(r"sequential +no +- +-", lines[3])
    assert re.fullmatch(r"third\?\[31mparty +no +2\.1\.0 +-", lines[4])  # no escape codes
    assert len(lines) == 5
    # columns line up
    assert len({line.index("yes") for line in lines[1:3]}) == 1
    assert daemon.methods == ["session.plugins"]


@pytest.mark.parametrize("argv", [["--json", "plugins"], ["plugins", "--json"]])
def test_plugins_json_is_the_raw_result(daemon: FakeDaemon, capsys, argv: list[str]) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), *argv)
    assert (code, err) == (0, "")
    assert json.loads(out) == PLUGINS


def test_no_plugins(tmp_path: Path, capsys) -> None:
    fake = FakeDaemon(tmp_path / "empty.sock", [])
    try:
        code, out, _ = run(capsys, "--socket", str(fake.path), "plugins")
    finally:
        fake.stop()
    assert (code, out) == (0, "no plugins\n")


def test_unreachable_daemon_exits_3(tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, "--socket", str(tmp_path / "none.sock"), "plugins")
    assert code == 3 and out == "" and "none.sock" in err


def test_registered_and_documented() -> None:
    assert "plugins" in COMMANDS
    text = (REPO / "docs" / "CLI.md").read_text()
    assert "### `btctl plugins`" in text


def test_plugins_run_imports_nothing_heavy(daemon: FakeDaemon) -> None:
    done = btctl_in_new_python("--socket", str(daemon.path), "plugins")
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert done.stdout.startswith("NAME")

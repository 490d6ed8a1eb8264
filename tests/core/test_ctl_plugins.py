"""`btctl plugins` against a fake daemon answering canned JSON-RPC on a Unix socket."""

from __future__ import annotations

import json
import re
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from btd.core import ctl
from btd.core.ctl_base import COMMANDS

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("twisted", "yaml", "jsonrpcserver", "pluggy", "rich")

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


class FakeDaemon:
    """Answers ``session.plugins`` with ``result``; anything else: method not found."""

    def __init__(self, path: Path, result: Any) -> None:
        self.path = path
        self.result = result
        self.methods: list[str] = []
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while line := self.rfile.readline():
                    request = json.loads(line)
                    fake.methods.append(request["method"])
                    if request["method"] == "session.plugins":
                        answer: dict[str, Any] = {"result": fake.result}
                    else:
                        answer = {"error": {"code": -32601, "message": "method not found"}}
                    reply = {"jsonrpc": "2.0", "id": request["id"], **answer}
                    self.wfile.write(json.dumps(reply).encode() + b"\n")
                    self.wfile.flush()

        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(tmp_path / "btd.sock", PLUGINS)
    yield fake
    fake.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = ctl.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


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
    program = (
        "import json, sys\n"
        "from btd.core.ctl import main\n"
        f"code = main(['--socket', {str(daemon.path)!r}, 'plugins'])\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=False
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert done.stdout.startswith("NAME")

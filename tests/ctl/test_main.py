"""btctl end to end against a fake daemon answering canned JSON-RPC on a Unix socket."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fake_daemon
import pytest
from fake_daemon import HEAVY, btctl_in_new_python
from fake_daemon import run_btctl as run

from btd.core import paths
from btd.core.rpc.client import RpcClient
from btd.core.rpc.errors import AMBIGUOUS, INVALID_PARAMS, NOT_FOUND
from btd.ctl import main as ctl
from btd.ctl.base import EXIT_CODES
from btd.ctl.format import format_bytes, format_duration
from btd.ctl.parser import COMMANDS

REPO = Path(__file__).resolve().parents[2]

INFO = {
    "version": "0.1.0",
    "pid": 4242,
    "uptime": 3723.5,
    "started_at": 1796625906.8,
    "config": "/etc/btd/btd.yaml",
    "plugins": ["rarest_first", {"name": "udp_tracker", "version": "1.0"}],
    "torrents": 3,
}
METHODS = [
    {"name": "torrent.add", "doc": "Add a torrent.\n\nLonger text."},
    {"name": "session.info", "doc": "What the daemon is and runs."},
]


def error(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "data": data}}


CANNED: dict[str, Any] = {
    "session.info": {"result": INFO},
    "session.methods": {"result": METHODS},
    "session.shutdown": {"result": None},
    "echo": "echo",  # answers with the params it got
    "boom": error(INVALID_PARAMS, "info_hash: not hex", {"field": "info_hash", "got": "zz"}),
    "missing": error(NOT_FOUND, "no torrent matches 'ab12'", {"field": "info_hash"}),
    "ambiguous": error(AMBIGUOUS, "'ab' matches 2 torrents", {"matches": ["ab1", "ab2"]}),
    "hang": "hang",  # never answers
    "garbage": "garbage",  # answers with a line that is not JSON
}


class FakeDaemon(fake_daemon.FakeDaemon):
    """Canned answers per method; optionally an event first and the answer in pieces."""

    def __init__(self, path: Path, *, push_event: bool = False, split: bool = False) -> None:
        self.push_event = push_event
        super().__init__(path, split=split)

    def answer(self, request: dict[str, Any], conn: fake_daemon.Connection) -> Any:
        canned = CANNED.get(request["method"], error(-32601, "method not found"))
        if canned == "hang":
            return None
        if canned == "garbage":
            conn.write(b"this is not json\n")
            return None
        if canned == "echo":
            canned = {"result": {"params": request.get("params")}}
        if self.push_event:
            conn.send({"jsonrpc": "2.0", "method": "event", "params": {"type": "added"}})
        return fake_daemon.reply(request, **canned)

    def methods_called(self) -> list[str]:
        return self.methods()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BTD_SOCKET", raising=False)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(tmp_path / "btd.sock", push_event=True)
    yield fake
    fake.stop()


# -- commands ------------------------------------------------------------------------


def test_status_human(daemon: FakeDaemon, capsys) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "status")
    assert (code, err) == (0, "")
    assert re.search(r"^version:\s+0\.1\.0$", out, re.M)
    assert re.search(r"^pid:\s+4242$", out, re.M)
    assert re.search(r"^uptime:\s+1h 02m 03s$", out, re.M)
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1796625906.8))
    assert re.search(rf"^started_at:\s+{started}$", out, re.M)
    assert re.search(r"^config:\s+/etc/btd/btd.yaml$", out, re.M)
    assert re.search(r"^plugins:\s+rarest_first, udp_tracker 1\.0$", out, re.M)
    assert re.search(r"^torrents:\s+3$", out, re.M)
    assert daemon.methods_called() == ["session.info"]


@pytest.mark.parametrize("argv", [["--json", "status"], ["status", "--json"]])
def test_status_json(daemon: FakeDaemon, capsys, argv: list[str]) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), *argv)
    assert (code, err) == (0, "")
    assert json.loads(out) == INFO


def test_methods_human_and_json(daemon: FakeDaemon, capsys) -> None:
    code, out, _ = run(capsys, "--socket", str(daemon.path), "methods")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["METHOD", "DESCRIPTION"]
    assert re.match(r"session\.info\s+What the daemon is and runs\.$", lines[1])
    assert re.match(r"torrent\.add\s+Add a torrent\.$", lines[2])
    assert len(lines) == 3
    code, out, _ = run(capsys, "--socket", str(daemon.path), "--json", "methods")
    assert code == 0 and json.loads(out) == METHODS


def test_shutdown_human_and_json(daemon: FakeDaemon, capsys) -> None:
    code, out, _ = run(capsys, "--socket", str(daemon.path), "shutdown")
    assert code == 0 and "shutting down" in out
    code, out, _ = run(capsys, "--socket", str(daemon.path), "--json", "shutdown")
    assert code == 0 and json.loads(out) is None
    assert daemon.methods_called() == ["session.shutdown", "session.shutdown"]


@pytest.mark.parametrize(
    "params", ['{"info_hash": "ab", "n": [1, 2]}', '["ab", {"x": null}]', None]
)
def test_call_prints_json_result(daemon: FakeDaemon, capsys, params: str | None) -> None:
    argv = ["--socket", str(daemon.path), "call", "echo"] + ([params] if params else [])
    code, out, err = run(capsys, *argv)
    assert (code, err) == (0, "")
    expected = None if params is None else json.loads(params)
    assert json.loads(out) == {"params": expected}
    assert daemon.requests[-1].get("params") == expected


@pytest.mark.parametrize("bad", ["{not json", "3", '"text"', "null"])
def test_call_bad_params_is_usage_error(daemon: FakeDaemon, capsys, bad: str) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "call", "echo", bad)
    assert code == ctl.EXIT_USAGE == 2
    assert out == "" and err.startswith("btctl: call: JSON-PARAMS")
    assert daemon.requests == []  # nothing was sent


def test_call_params_from_stdin(daemon: FakeDaemon, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO('{"a": 1}'))
    code, out, _ = run(capsys, "--socket", str(daemon.path), "call", "echo", "-")
    assert code == 0 and json.loads(out) == {"params": {"a": 1}}


def test_unknown_command_and_missing_command_are_usage_errors(capsys) -> None:
    assert run(capsys, "frobnicate")[0] == 2
    code, _, err = run(capsys)
    assert code == 2 and "btctl: error:" in err


def test_help_lists_commands_and_exit_codes(capsys) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in COMMANDS:
        assert name in out
    for number, meaning in EXIT_CODES:
        assert re.search(rf"^\s+{number}\s+{re.escape(meaning)}$", out, re.M)


# -- errors and exit codes -------------------------------------------------------------


def test_daemon_error_exits_1_with_code_and_message(daemon: FakeDaemon, capsys) -> None:
    code, out, err = run(capsys, "--socket", str(daemon.path), "call", "boom", "{}")
    assert code == ctl.EXIT_REMOTE_ERROR == 1 and out == ""
    assert f"btctl: info_hash: not hex (error {INVALID_PARAMS})" in err
    assert '"got": "zz"' in err  # data beyond the field name is shown


def test_unknown_method_exits_1(daemon: FakeDaemon, capsys) -> None:
    code, _, err = run(capsys, "--socket", str(daemon.path), "call", "nope")
    assert code == 1 and "method not found (error -32601)" in err


@pytest.mark.parametrize("method", ["missing", "ambiguous"])
def test_not_found_and_ambiguous_exit_4(daemon: FakeDaemon, capsys, method: str) -> None:
    code, _, err = run(capsys, "--socket", str(daemon.path), "--json", "call", method, "[]")
    assert code == ctl.EXIT_NOT_FOUND == 4
    assert err.startswith("btctl: ") and ("no torrent matches" in err or "matches 2" in err)


def test_missing_socket_exits_3_naming_the_path(tmp_path: Path, capsys) -> None:
    path = tmp_path / "gone.sock"
    code, out, err = run(capsys, "--socket", str(path), "status")
    assert code == ctl.EXIT_UNREACHABLE == 3 and out == ""
    assert str(path) in err and "no such socket file" in err and err.startswith("btctl: ")


def test_refused_socket_exits_3(tmp_path: Path, capsys) -> None:
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    code, _, err = run(capsys, "--socket", str(path), "status")
    assert code == 3 and "refused" in err and str(path) in err


def test_btd_socket_env_is_honoured(daemon: FakeDaemon, capsys, monkeypatch) -> None:
    monkeypatch.setenv("BTD_SOCKET", str(daemon.path))
    code, out, _ = run(capsys, "--json", "status")
    assert code == 0 and json.loads(out)["pid"] == 4242


def test_socket_option_overrides_env(daemon: FakeDaemon, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("BTD_SOCKET", str(tmp_path / "elsewhere.sock"))
    code, _, _ = run(capsys, "--socket", str(daemon.path), "status")
    assert code == 0
    monkeypatch.setenv("BTD_SOCKET", str(daemon.path))
    code, _, err = run(capsys, "--socket", str(tmp_path / "wrong.sock"), "status")
    assert code == 3 and "wrong.sock" in err


def test_env_path_named_when_unreachable(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("BTD_SOCKET", str(tmp_path / "env.sock"))
    code, _, err = run(capsys, "status")
    assert code == 3 and str(tmp_path / "env.sock") in err and "$BTD_SOCKET" in err


def test_default_socket_is_the_daemons(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    assert ctl.resolve_socket(None) == (paths.default_socket(), "the default location")
    fake = FakeDaemon(tmp_path / paths.SOCKET_NAME)
    try:
        code, out, _ = run(capsys, "--json", "status")
    finally:
        fake.stop()
    assert code == 0 and json.loads(out) == INFO


def test_split_response_is_reassembled(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(RpcClient, "recv_size", 4)  # each piece arrives on its own
    fake = FakeDaemon(tmp_path / "s.sock", push_event=True, split=True)
    try:
        code, out, _ = run(capsys, "--socket", str(fake.path), "--json", "status")
    finally:
        fake.stop()
    assert code == 0 and json.loads(out) == INFO


def test_no_answer_exits_5(daemon: FakeDaemon, capsys) -> None:
    code, _, err = run(capsys, "--socket", str(daemon.path), "--timeout", "0.2", "call", "hang")
    assert code == ctl.EXIT_TIMEOUT == 5 and "in time" in err


def test_garbage_answer_exits_1(daemon: FakeDaemon, capsys) -> None:
    code, _, err = run(capsys, "--socket", str(daemon.path), "call", "garbage")
    assert code == 1 and "not JSON" in err


def test_ctrl_c_exits_130(capsys, monkeypatch) -> None:
    def interrupted(client, args, out) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("btd.ctl.session.cmd_status", interrupted)
    code, _, err = run(capsys, "status")
    assert code == ctl.EXIT_INTERRUPTED == 130 and "btctl: interrupted" in err


def test_formatters() -> None:
    assert [format_duration(s) for s in (0, 59, 61, 3723, 93784, None)] == [
        "0s", "59s", "1m 01s", "1h 02m 03s", "1d 2h 03m", "-",
    ]  # fmt: skip
    assert [format_bytes(n) for n in (0, 1023, 1536, 5 * 2**30)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 GiB",
    ]  # fmt: skip


def test_docs_cover_every_command_and_exit_code() -> None:
    text = (REPO / "docs" / "CLI.md").read_text()
    for name in COMMANDS:
        assert f"### `btctl {name}" in text, name
    for number, _ in EXIT_CODES:
        assert re.search(rf"^\| {number} +\|", text, re.M), number


# -- real processes --------------------------------------------------------------------


def test_console_script_runs(daemon: FakeDaemon) -> None:
    script = Path(sys.executable).parent / "btctl"
    if not script.exists():
        pytest.skip("btctl console script not installed")
    done = subprocess.run(
        [str(script), "--socket", str(daemon.path), "status"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "4242" in done.stdout


def test_help_imports_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "btd.ctl.main", "--help"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0 and "exit codes" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "btd.ctl.base" in imported  # the parse below works
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert heavy == []


def test_help_imports_no_command_and_no_client() -> None:
    """`btctl --help` builds the whole parser without importing a command or the RPC client."""
    done = btctl_in_new_python("--help", btd=True)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0 and "exit codes" in done.stdout
    assert report["btd"] == ["btd.ctl", "btd.ctl.base", "btd.ctl.main", "btd.ctl.parser"]
    for name in COMMANDS:
        assert f"    {name}" in done.stdout, name


def test_every_handler_resolves() -> None:
    for cmd in COMMANDS.values():
        assert callable(ctl.handler_of(cmd)), cmd.handler


def test_status_run_imports_nothing_heavy(daemon: FakeDaemon) -> None:
    done = btctl_in_new_python("--socket", str(daemon.path), "--json", "status")
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert json.loads(done.stdout) == INFO

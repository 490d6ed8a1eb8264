"""A real ``btd`` process: status, stop signals, exit codes, the socket file, the lock, the
watchdog and bad configurations. Readiness comes from sd_notify, never from sleeping."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from btdtest import BIN, BtdProcess

from btd.core.config import load_config
from btd.core.version import __version__

pytestmark = pytest.mark.integration

EX_TEMPFAIL = 75
EX_CONFIG = 78


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """No user configuration, data or runtime directory leaks in."""
    env = {k: v for k, v in os.environ.items() if k not in ("BTD_CONFIG", "NOTIFY_SOCKET")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "xdg-run")
    return env


def run_btd(tmp_path: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``btd`` expected to exit by itself (bad config, refused start)."""
    return subprocess.run(
        [str(BIN / "btd"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=isolated_env(tmp_path),
    )


def status(btd: BtdProcess) -> dict[str, Any]:
    done = btd.btctl("--json", "status")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_socket_answers(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))  # raises if nothing listens


# -- running and stopping ----------------------------------------------------------------------
def test_status_methods_and_btctl_shutdown(btd_factory: Any) -> None:
    btd = btd_factory(config="session:\n  upload_slots: 5\n").start()
    assert btd.proc is not None

    human = btd.btctl("status")
    assert human.returncode == 0, human.stderr
    assert str(btd.proc.pid) in human.stdout
    assert __version__ in human.stdout

    info = status(btd)
    assert info["version"] == __version__
    assert info["pid"] == btd.proc.pid
    assert info["config_path"] == str(btd.config)
    assert info["state_dir"] == str(btd.state)
    assert info["listen_port"] > 0

    methods = btd.btctl("methods")
    assert methods.returncode == 0, methods.stderr
    for name in ("session.info", "session.methods", "session.shutdown", "torrent.add"):
        assert name in methods.stdout

    assert stat.S_ISSOCK(os.lstat(btd.socket).st_mode)
    assert stat.S_IMODE(os.lstat(btd.socket).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(btd.socket.parent).st_mode) == 0o750

    down = btd.btctl("shutdown")
    assert down.returncode == 0, down.stderr
    assert btd.proc.wait(30) == 0
    btd.wait_notify("STOPPING=1", 5)
    assert not os.path.lexists(btd.socket)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly(btd_factory: Any, sig: int) -> None:
    btd = btd_factory().start()
    assert btd.call("session.info")["pid"] == btd.proc.pid  # type: ignore[union-attr]
    assert btd.stop(sig) == 0
    btd.wait_notify("STOPPING=1", 5)
    assert not os.path.lexists(btd.socket)
    assert "btd stopped" in btd.log_text()


def test_ready_means_the_socket_accepts(btd_factory: Any) -> None:
    btd = btd_factory()
    btd.start()  # returns as soon as READY=1 arrives
    assert_socket_answers(btd.socket)  # no retry: READY=1 promised it listens
    assert btd.call("session.info")["pid"] == btd.proc.pid  # type: ignore[union-attr]
    assert btd.stop() == 0


def test_watchdog_pings(btd_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # BtdProcess passes os.environ through
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    btd = btd_factory().start()
    for _ in range(3):  # one at start, then every 0.1 s
        btd.wait_notify("WATCHDOG=1", 5)
    assert btd.stop() == 0


# -- one daemon at a time -----------------------------------------------------------------------
def test_second_daemon_on_the_same_state_dir_exits_75(btd_factory: Any, tmp_path: Path) -> None:
    first = btd_factory("first").start()
    assert first.proc is not None
    other_socket = tmp_path / "second" / "btd.sock"
    second = run_btd(
        tmp_path,
        "--state-dir",
        str(first.state),
        "--socket",
        str(other_socket),
        "--download-dir",
        str(tmp_path / "dl2"),
        "--listen-port",
        "0",
    )
    assert second.returncode == EX_TEMPFAIL, second.stderr
    assert f"pid {first.proc.pid}" in second.stderr
    assert not os.path.lexists(other_socket)
    assert status(first)["pid"] == first.proc.pid
    assert first.stop() == 0


def test_second_daemon_on_the_same_socket_exits_75(btd_factory: Any, tmp_path: Path) -> None:
    first = btd_factory("first").start()
    assert first.proc is not None
    second = run_btd(
        tmp_path,
        "--state-dir",
        str(tmp_path / "state2"),
        "--socket",
        str(first.socket),
        "--download-dir",
        str(tmp_path / "dl2"),
        "--listen-port",
        "0",
    )
    assert second.returncode == EX_TEMPFAIL, second.stderr
    assert "another daemon is listening" in second.stderr
    # the loser must not have removed the winner's socket file
    assert status(first)["pid"] == first.proc.pid
    assert first.stop() == 0


def test_stale_socket_of_a_killed_daemon_is_replaced(btd_factory: Any) -> None:
    btd = btd_factory().start()
    assert btd.proc is not None
    old_pid = btd.proc.pid
    btd.proc.kill()
    assert btd.proc.wait(10) == -signal.SIGKILL
    assert stat.S_ISSOCK(os.lstat(btd.socket).st_mode)  # left behind

    btd.start()  # same state dir, same socket
    info = status(btd)
    assert info["pid"] == btd.proc.pid != old_pid
    assert "removed stale control socket" in btd.log_text()
    assert btd.stop() == 0


# -- configuration ------------------------------------------------------------------------------
BAD = "daemon:\n  log_level: info\nsession:\n  upload_slots: 4\n  listen_port: 99999\n"


def test_bad_config_exits_78_and_names_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(BAD.encode())
    before = bad.read_bytes()
    done = run_btd(
        tmp_path,
        "--config",
        str(bad),
        "--state-dir",
        str(tmp_path / "state"),
        "--socket",
        str(tmp_path / "run" / "btd.sock"),
    )
    assert done.returncode == EX_CONFIG
    assert "bad.yaml:5: session.listen_port: " in done.stderr
    assert bad.read_bytes() == before
    assert not (tmp_path / "state").exists()  # refused before touching anything


def test_check_config_prints_the_effective_yaml(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("session:\n  upload_slots: 7\nplugins:\n  sequential: {}\n")
    done = run_btd(tmp_path, "--check-config", str(good))
    assert done.returncode == 0, done.stderr
    comments = [line for line in done.stdout.splitlines() if line.startswith("#")]
    assert comments == [done.stdout.splitlines()[0]]  # exactly one header comment, first
    assert str(good) in comments[0]
    printed = yaml.safe_load(done.stdout)
    assert printed["session"]["upload_slots"] == 7
    assert printed["plugins"] == {"sequential": {}}
    again = tmp_path / "printed.yaml"
    again.write_text(done.stdout)
    env = isolated_env(tmp_path)
    assert load_config(again, env) == load_config(good, env)  # the effective config, reread


def test_check_config_of_a_bad_file_exits_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    done = run_btd(tmp_path, "--check-config", str(bad))
    assert done.returncode == EX_CONFIG
    assert "bad.yaml:5: session.listen_port: " in done.stderr
    assert done.stdout == ""


def test_unknown_plugin_exits_78(tmp_path: Path) -> None:
    conf = tmp_path / "plugins.yaml"
    conf.write_text("plugins:\n  rarest_first: {}\n  no_such_plugin: {}\n")
    done = run_btd(
        tmp_path,
        "--config",
        str(conf),
        "--state-dir",
        str(tmp_path / "state"),
        "--socket",
        str(tmp_path / "run" / "btd.sock"),
    )
    assert done.returncode == EX_CONFIG
    assert "plugins.no_such_plugin" in done.stderr
    checked = run_btd(tmp_path, "--check-config", str(conf))
    assert checked.returncode == EX_CONFIG
    assert "plugins.no_such_plugin" in checked.stderr


def test_unknown_allowed_group_exits_78(btd_factory: Any) -> None:
    btd = btd_factory(config="control:\n  allowed_group: no-such-group-btd-test\n")
    with pytest.raises(AssertionError, match="exited with 78"):
        btd.start(timeout=30)
    assert "control.allowed_group" in btd.log_text()
    assert not os.path.lexists(btd.socket)


@pytest.mark.parametrize("kind", ["missing parent", "regular file"])
def test_a_download_dir_btd_cannot_use_stops_the_start(tmp_path: Path, kind: str) -> None:
    """Issue 13, class 8: exit 78 with a clear message, nothing created (it used to start)."""
    target = tmp_path / "unmounted" / "dl"
    if kind == "regular file":
        target = tmp_path / "plain"
        target.write_text("x")
    done = run_btd(
        tmp_path,
        "--state-dir",
        str(tmp_path / "state"),
        "--socket",
        str(tmp_path / "btd.sock"),
        "--listen-port",
        "0",
        "--download-dir",
        str(target),
        timeout=20,
    )
    assert done.returncode == 78, done.stderr
    assert "session.download_dir" in done.stderr and str(target) in done.stderr
    assert not (tmp_path / "unmounted").exists()

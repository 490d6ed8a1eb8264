"""SIGHUP on a real ``btd``: live keys apply, restart-only keys are reported (every time),
and a broken file changes nothing. Each reload is awaited as RELOADING=1 then READY=1."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from btdtest import BtdProcess, free_port

pytestmark = pytest.mark.integration

RESTART_PORT = "session.listen_port changed; it takes effect after a restart"


class FileConfiguredBtd(BtdProcess):
    """btd whose listen port comes from its config file (no ``--listen-port`` flag, which
    would override the file on every reload too)."""

    def argv(self) -> list[str]:
        args = super().argv()
        i = args.index("--listen-port")
        return args[:i] + args[i + 2 :]


def config_text(level: str, slots: int, port: int) -> str:
    return (
        f"daemon:\n  log_level: {level}\n"
        f"session:\n  upload_slots: {slots}\n  listen_host: 127.0.0.1\n  listen_port: {port}\n"
    )


@pytest.fixture()
def btd(tmp_path: Path) -> Any:
    proc = FileConfiguredBtd(tmp_path / "btd", config=config_text("info", 4, free_port()))
    yield proc
    proc.close()


def sighup(btd: BtdProcess) -> None:
    """Send SIGHUP and wait for the reload to finish: RELOADING=1 first, then READY=1."""
    assert btd.proc is not None and btd.proc.poll() is None
    btd.proc.send_signal(signal.SIGHUP)
    btd.wait_notify("RELOADING=1", 10)
    assert not any("READY=1" in m for m in btd.messages), "READY=1 came before RELOADING=1"
    btd.wait_notify("READY=1", 10)


def debug_lines(btd: BtdProcess) -> list[str]:
    return [line for line in btd.log_text().splitlines() if " debug " in line]


def test_sighup_applies_live_keys_and_reports_restart_keys(btd: FileConfiguredBtd) -> None:
    btd.start()
    assert btd.config is not None
    port = btd.call("session.info")["listen_port"]
    assert not debug_lines(btd)

    btd.config.write_text(config_text("debug", 8, free_port()))
    sighup(btd)
    debug = debug_lines(btd)
    assert any("live settings in force" in line for line in debug), btd.log_text()
    applied = next(line for line in debug if "live settings in force" in line)
    assert "daemon.log_level='debug'" in applied
    assert "session.upload_slots=8" in applied
    assert btd.log_text().count(RESTART_PORT) == 1
    assert btd.call("session.info")["listen_port"] == port  # still the old port

    # The port is still waiting for a restart: the same file again says so again.
    sighup(btd)
    assert btd.log_text().count(RESTART_PORT) == 2
    assert "configuration reloaded (0 live change(s))" in btd.log_text()

    # Lowering the level takes effect too: the info line of the next reload is filtered out.
    reloaded = btd.log_text().count("configuration reloaded")
    btd.config.write_text(config_text("warning", 8, free_port()))
    sighup(btd)
    assert btd.log_text().count(RESTART_PORT) == 3  # a warning: still shown
    assert btd.log_text().count("configuration reloaded") == reloaded
    assert btd.stop() == 0


def test_sighup_with_a_broken_file_keeps_the_running_config(btd: FileConfiguredBtd) -> None:
    btd.start()
    assert btd.config is not None and btd.proc is not None
    port = btd.call("session.info")["listen_port"]

    btd.config.write_text("session:\n  upload_slots: [\n")
    sighup(btd)
    log = btd.log_text()
    assert "reload refused, keeping the running configuration" in log
    assert "btd.yaml:" in log
    assert btd.proc.poll() is None
    info = btd.call("session.info")
    assert info["pid"] == btd.proc.pid and info["listen_port"] == port

    btd.config.write_text(config_text("debug", 0, port))  # well-formed, invalid value
    sighup(btd)
    assert "btd.yaml:4: session.upload_slots:" in btd.log_text()
    assert not debug_lines(btd)  # log_level: debug was not applied from a refused file

    btd.config.write_text(config_text("debug", 6, port))  # fixed: now it applies
    sighup(btd)
    assert any("session.upload_slots=6" in line for line in debug_lines(btd))
    assert btd.stop() == 0


def process_umask(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    pytest.skip("this kernel does not show the umask in /proc/PID/status")


def test_sighup_loads_a_new_file_and_its_umask(tmp_path: Path) -> None:
    """Started on the defaults (umask 0022 over the inherited 0077); a file that appears
    later is loaded by SIGHUP, named by session.info and session.config, its umask applied."""
    btd = BtdProcess(tmp_path / "btd")
    saved = os.umask(0o077)
    try:
        btd.start()
    finally:
        os.umask(saved)
    try:
        assert btd.proc is not None
        assert btd.call("session.info")["config_path"] is None
        assert process_umask(btd.proc.pid) == 0o022

        found = btd.base / "xdg-config" / "btd" / "btd.yaml"  # where btd looks by default
        found.parent.mkdir(parents=True)
        found.write_text("session:\n  umask: 0002\n  upload_slots: 6\n")
        sighup(btd)
        assert btd.call("session.info")["config_path"] == str(found)
        config = btd.call("session.config")
        assert config["source"] == str(found)
        assert config["session"]["umask"] == "0002"
        assert config["session"]["upload_slots"] == 6
        assert config["daemon"]["state_dir"] == str(btd.state)  # the flag still wins
        assert process_umask(btd.proc.pid) == 0o002

        found.write_text("session:\n  umask: null\n")
        sighup(btd)
        assert process_umask(btd.proc.pid) == 0o077  # back to the one it was started with
        assert btd.stop() == 0
    finally:
        btd.close()

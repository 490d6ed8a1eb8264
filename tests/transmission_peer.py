"""Transmission (Debian ``transmission-daemon`` 3.00) as a test peer, loopback only.

One daemon per ``Transmission``, with its own config folder and a ``settings.json`` that turns
off DHT, LPD, PEX, port forwarding (UPnP/NAT-PMP), uTP and the blocklist, binds peers and RPC
to 127.0.0.1 and lets only 127.0.0.1 use the RPC. Driven by ``transmission-remote`` (the real
RPC client from ``transmission-cli``). On loopback Transmission only takes *incoming* peers:
a seeder must dial its ``peer_port`` (btd: ``torrent.add_peer``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from btdtest import free_port, missing


def _binaries() -> tuple[str, str]:
    daemon = shutil.which("transmission-daemon")
    remote = shutil.which("transmission-remote")
    if daemon is None or remote is None:
        missing("Transmission (apt-get install transmission-daemon transmission-cli)")
    assert daemon is not None and remote is not None
    return daemon, remote


class Transmission:
    """``transmission-daemon -f -g CONFIG`` in a child process."""

    def __init__(self, base: Path, encryption: int = 1) -> None:
        """``encryption``: Transmission's setting, 0 prefer plain, 1 prefer encrypted (its
        default), 2 require encryption."""
        daemon, self._remote = _binaries()
        self.encryption = encryption
        base.mkdir(parents=True, exist_ok=True)
        self.config = base / "config"
        self.config.mkdir(exist_ok=True)
        self.dir = base / "downloads"
        self.dir.mkdir(exist_ok=True)
        self.rpc_port = free_port()
        self.peer_port = free_port()
        settings = {
            "dht-enabled": False,
            "lpd-enabled": False,
            "pex-enabled": False,
            "utp-enabled": False,
            "port-forwarding-enabled": False,
            "blocklist-enabled": False,
            "bind-address-ipv4": "127.0.0.1",
            "bind-address-ipv6": "::1",
            "rpc-bind-address": "127.0.0.1",
            "rpc-whitelist": "127.0.0.1",
            "rpc-whitelist-enabled": True,
            "rpc-authentication-required": False,
            "rpc-port": self.rpc_port,
            "peer-port": self.peer_port,
            "peer-port-random-on-start": False,
            "download-dir": str(self.dir),
            "incomplete-dir-enabled": False,
            "speed-limit-down-enabled": False,
            "speed-limit-up-enabled": False,
            "ratio-limit-enabled": False,
            "message-level": 2,
            "encryption": encryption,
        }
        (self.config / "settings.json").write_text(json.dumps(settings, indent=1))
        self._session_id = ""
        self.log = base / "transmission.log"
        self.proc = subprocess.Popen(
            [daemon, "-f", "-g", str(self.config)],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"transmission-daemon exited:\n{self.log_text()}")
            if self._run("-si", check=False).returncode == 0 and self._peer_port_open():
                return  # its RPC answers and its peer port takes connections (opened later)
            if time.monotonic() > deadline:
                raise AssertionError(f"Transmission's RPC did not answer:\n{self.log_text()}")
            time.sleep(0.1)  # it has no readiness signal; bounded by the deadline

    def _peer_port_open(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.peer_port), timeout=1).close()
        except OSError:
            return False
        return True

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self._remote, f"127.0.0.1:{self.rpc_port}", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"transmission-remote {args}: {done.stdout}{done.stderr}")
        return done

    def add(self, torrent: Path) -> None:
        self._run("--add", str(torrent), "--download-dir", str(self.dir))

    def rpc(self, method: str, **arguments: Any) -> Any:
        """One call of Transmission's JSON RPC (with its session-id handshake)."""
        body = json.dumps({"method": method, "arguments": arguments}).encode()
        for _ in range(2):
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.rpc_port}/transmission/rpc",
                data=body,
                headers={"X-Transmission-Session-Id": self._session_id},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:
                    answer = json.loads(reply.read())
            except urllib.error.HTTPError as exc:
                if exc.code != 409:
                    raise
                self._session_id = exc.headers.get("X-Transmission-Session-Id", "")
                continue
            if answer.get("result") != "success":
                raise AssertionError(f"transmission {method}: {answer}")
            return answer["arguments"]
        raise AssertionError("transmission kept refusing the session id")

    def torrent(self) -> dict[str, Any]:
        """The (only) torrent's progress: haveValid, percentDone, status, rateDownload."""
        fields = ["haveValid", "percentDone", "status", "rateDownload", "peersConnected"]
        torrents = self.rpc("torrent-get", fields=fields)["torrents"]
        assert len(torrents) == 1, torrents
        return dict(torrents[0])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

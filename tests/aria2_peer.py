"""aria2 (Debian ``aria2``, 1.36) as a test peer, driven by its JSON-RPC (loopback only).

One ``aria2c`` process per ``Aria2``: DHT (v4 and v6), LPD and peer exchange off, bound to
127.0.0.1, IPv6 off (aria2 speaks no UPnP or NAT-PMP). Its readiness is its RPC answering,
polled with a deadline (aria2 gives no other signal). aria2 has no "add a peer" call: it
finds peers through a tracker (``--bt-tracker``) or they dial its ``listen_port``.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from btdtest import free_port, missing

SAFE_FLAGS = [
    "--no-conf",
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--interface=127.0.0.1",
    "--disable-ipv6=true",
]


def aria2c() -> str:
    binary = shutil.which("aria2c")
    if binary is None:
        missing("aria2 (apt-get install aria2)")
    assert binary is not None
    return binary


class Aria2:
    """An ``aria2c --enable-rpc`` daemon with its own download folder and log."""

    def __init__(self, base: Path, *, extra: list[str] | None = None) -> None:
        binary = aria2c()
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.dir = base / "downloads"
        self.dir.mkdir(exist_ok=True)
        self.rpc_port = free_port()
        self.listen_port = free_port()
        self.log = base / "aria2.log"
        argv = [
            binary,
            *SAFE_FLAGS,
            "--enable-rpc",
            "--rpc-listen-all=false",
            f"--rpc-listen-port={self.rpc_port}",
            f"--listen-port={self.listen_port}",
            f"--dir={self.dir}",
            "--check-integrity=true",  # a seeder hashes its files instead of trusting them
            "--bt-hash-check-seed=true",
            "--file-allocation=none",
            "--rpc-save-upload-metadata=false",  # no copy of the .torrent in the folder
            "--console-log-level=warn",
            f"--log={self.log}",
            "--log-level=info",
            *(extra or []),
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"aria2c exited: {self.proc.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                self.call("aria2.getVersion")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("aria2c's RPC did not answer") from None
                time.sleep(0.05)  # aria2 has no readiness signal; bounded by the deadline

    def call(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": "t", "method": method, "params": list(params)})
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.rpc_port}/jsonrpc",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            answer = json.loads(reply.read())
        if "error" in answer:
            raise AssertionError(f"aria2 {method}: {answer['error']}")
        return answer["result"]

    def add_torrent(self, torrent: Path, **options: str) -> str:
        """Add a .torrent (options as aria2's command-line names, e.g. ``seed_time="0"``);
        returns its gid."""
        data = base64.b64encode(torrent.read_bytes()).decode()
        opts = {name.replace("_", "-"): value for name, value in options.items()}
        return str(self.call("aria2.addTorrent", data, [], opts))

    def status(self, gid: str) -> dict[str, Any]:
        keys = ["status", "completedLength", "totalLength", "downloadSpeed", "uploadLength"]
        return dict(self.call("aria2.tellStatus", gid, keys))

    def completed(self, gid: str) -> int:
        return int(self.status(gid)["completedLength"])

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

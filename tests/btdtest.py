"""Test helpers: a real btd process, libtorrent peers, opentracker, torrent files.

Everything listens on 127.0.0.1 only. Readiness is signalled, never guessed: btd says
READY=1 on a notify socket we own, libtorrent peers print their port, opentracker is
polled on its scrape URL with a bounded deadline.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LT_PEER = ROOT / "tests" / "interop" / "lt_peer.py"
REQUIRE_INTEROP = os.environ.get("BTD_REQUIRE_INTEROP") == "1"


def missing(what: str) -> None:
    """Skip with a reason, or fail when CI demands the real peers."""
    if REQUIRE_INTEROP:
        pytest.fail(f"{what} is required (BTD_REQUIRE_INTEROP=1)")
    pytest.skip(f"{what} is not available")


def import_libtorrent() -> Any:
    try:
        import libtorrent
    except ImportError:
        missing("libtorrent (pip install libtorrent)")
    return libtorrent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the global reactor, turned in-process --------------------------------------------------------
def wait_fired(d: Any, deadline: float = 10.0) -> Any:
    """Turn the global reactor until Deferred ``d`` fires; its result (a Failure on error).

    pytest has no Twisted plugin here, so tests iterate the reactor (bounded, no sleeping)
    and never run or stop it, so that every module can share it.
    """
    from twisted.internet import reactor

    out: list[Any] = []
    d.addBoth(out.append)
    end = time.monotonic() + deadline
    while not out and time.monotonic() < end:
        reactor.iterate(0.01)  # type: ignore[attr-defined]
    assert out, f"Deferred did not fire within {deadline} s"
    return out[0]


# -- torrents -------------------------------------------------------------------------------
def write_files(root: Path, sizes: dict[str, int], seed: int = 1) -> None:
    """Deterministic pseudo-random content (fast: repeats a random 1 MiB block, shifted)."""
    import random

    rng = random.Random(seed)
    block = rng.randbytes(1 << 20)
    for n, (rel, size) in enumerate(sorted(sizes.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            shift = (n * 7919) % len(block)
            pattern = block[shift:] + block[:shift]
            remaining = size
            while remaining:
                chunk = pattern[: min(remaining, len(pattern))]
                f.write(chunk)
                remaining -= len(chunk)


def make_torrent(
    content: Path, out: Path, piece_size: int = 64 * 1024, trackers: list[str] | None = None
) -> str:
    """A .torrent for ``content`` made by libtorrent (v1 only); returns the info hash hex."""
    lt = import_libtorrent()
    with warnings.catch_warnings():  # the bindings' file_storage API is deprecated, not gone
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = lt.file_storage()
        lt.add_files(fs, str(content))
        ct = lt.create_torrent(fs, piece_size, flags=lt.create_torrent.v1_only)
    for tier, url in enumerate(trackers or []):
        ct.add_tracker(url, tier)
    lt.set_piece_hashes(ct, str(content.parent))
    out.write_bytes(lt.bencode(ct.generate()))
    return str(lt.torrent_info(str(out)).info_hashes().v1)


def seeded_torrent(
    tmp_path: Path,
    sizes: dict[str, int],
    top: str,
    torrent: str,
    *,
    seed: int = 1,
    piece_size: int = 64 * 1024,
) -> tuple[Path, Path, str]:
    """``sizes`` written under tmp_path/seed and a .torrent of its folder ``top`` (no
    trackers) at tmp_path/``torrent``: (seed dir, .torrent path, info hash hex)."""
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, sizes, seed=seed)
    path = tmp_path / torrent
    info_hash = make_torrent(seed_dir / top, path, piece_size=piece_size)
    return seed_dir, path, info_hash


def same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    if files_a != files_b:
        return False
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


# -- a real btd --------------------------------------------------------------------------------
class BtdProcess:
    """``btd`` in a child process with its own state, downloads and socket."""

    def __init__(self, base: Path, *, config: str | None = None, extra: list[str] | None = None):
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.state = base / "state"
        self.downloads = base / "downloads"
        self.socket = base / "run" / "btd.sock"
        self.log = base / "btd.log"
        self.config = None
        if config is not None:
            self.config = base / "btd.yaml"
            self.config.write_text(config)
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify_path = base / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.messages: list[str] = []

    def argv(self) -> list[str]:
        args = [
            str(BIN / "btd"),
            "--state-dir",
            str(self.state),
            "--download-dir",
            str(self.downloads),
            "--socket",
            str(self.socket),
            "--listen-port",
            "0",
        ]
        if self.config is not None:
            args += ["--config", str(self.config)]
        return args + self.extra

    def start(self, timeout: float = 30) -> BtdProcess:
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path)}
        env.pop("BTD_CONFIG", None)
        env["XDG_CONFIG_HOME"] = str(self.base / "xdg-config")  # no user config leaks in
        self.proc = subprocess.Popen(
            self.argv(), stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env
        )
        self.wait_notify("READY=1", timeout)
        return self

    def wait_notify(self, what: str, timeout: float = 30) -> str:
        """Block on the notify socket until a datagram containing ``what`` (or the process dies)."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages:
                if what in message:
                    self.messages.remove(message)
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"btd sent no {what} within {timeout} s:\n{self.log_text()}")
            self.notify.settimeout(min(remaining, 0.5))
            try:
                self.messages.append(self.notify.recv(4096).decode())
            except TimeoutError:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(
                        f"btd exited with {self.proc.returncode}:\n{self.log_text()}"
                    ) from None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, timeout: float = 30) -> Any:
        from btd.core.rpc.client import RpcClient

        return RpcClient(self.socket, timeout=timeout)

    def call(self, method: str, params: Any = None) -> Any:
        with self.client() as c:
            return c.call(method, params)

    def btctl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "btctl"), "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=60,
            input=input,
        )

    def add(self, torrent: Path, **options: Any) -> str:
        data = base64.b64encode(torrent.read_bytes()).decode()
        return self.call("torrent.add", {"metainfo": data, **options})["info_hash"]

    def start_seeding(self, seed_dir: Path, torrent: Path) -> str:
        """Start with the complete data in downloads; add ``torrent`` and wait until it has
        started (checked, so seeding). Returns its info hash."""
        shutil.copytree(seed_dir, self.downloads)
        self.start()
        with self.client() as events:
            events.call("events.subscribe")
            info_hash = self.add(torrent)
            self.wait_event(events, "started", info_hash)
        return info_hash

    def wait_event(self, client: Any, event: str, info_hash: str, timeout: float = 60) -> dict:
        """Read pushed events on a subscribed client until ``event`` for ``info_hash``."""
        for note in client.notifications(timeout=timeout):
            params = note.params
            if params.get("info_hash") == info_hash and params.get("event") == event:
                return params
            if params.get("info_hash") == info_hash and params.get("event") == "error":
                raise AssertionError(f"torrent error: {params}\n{self.log_text()}")
        raise AssertionError(f"connection closed before {event}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.notify.close()


# -- libtorrent peers ---------------------------------------------------------------------------
class LtPeer:
    """A libtorrent session in a child process (see tests/interop/lt_peer.py)."""

    def __init__(
        self,
        mode: str,
        torrent: Path | str,
        save: Path,
        peers: list[str] = (),  # type: ignore[assignment]
        upload_limit: int = 0,
        encryption: str | None = None,  # "rc4" or "both": MSE forced (lt_peer.py)
        host: str = "127.0.0.1",  # "::1": an IPv6-only peer
        utp_only: bool = False,  # uTP on, TCP off both ways (lt_peer.py --utp-only)
    ):
        import_libtorrent()
        save.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, str(LT_PEER), mode, str(torrent), str(save)]  # or a magnet
        for peer in peers:
            args += ["--peer", peer]
        if upload_limit:
            args += ["--upload-limit", str(upload_limit)]
        if encryption:
            args += ["--encryption", encryption]
        if host != "127.0.0.1":
            args += ["--host", host]
        if utp_only:
            args += ["--utp-only"]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("PORT "):
            raise AssertionError(f"lt_peer failed: {line}{self.proc.stderr.read()}")  # type: ignore[union-attr]
        self.port = int(line.split()[1])

    def wait_done(self) -> float:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("DONE"):
            raise AssertionError(f"libtorrent leecher did not finish: {line!r}")
        return float(line.split()[1])

    def close(self) -> None:
        end_child(self.proc)


def end_child(proc: subprocess.Popen) -> None:
    """Close a child driver's stdin (its signal to quit), then wait; kill it after 10 s."""
    if proc.poll() is None:
        proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- opentracker -----------------------------------------------------------------------------------
class OpenTracker:
    def __init__(self, base: Path, info_hashes: list[str]):
        binary = shutil.which("opentracker")
        if binary is None:
            missing("opentracker (apt-get install opentracker)")
        self.port = free_port()
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o755)
        whitelist = base / "whitelist.txt"
        whitelist.write_text("".join(f"{h}\n" for h in info_hashes))
        whitelist.chmod(0o644)
        self.proc = subprocess.Popen(
            [
                binary,
                "-i",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-P",
                str(self.port),
                "-d",
                str(base),
                "-w",
                "whitelist.txt",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.announce = f"http://127.0.0.1:{self.port}/announce"
        self.udp_announce = f"udp://127.0.0.1:{self.port}/announce"
        self._wait_ready(info_hashes[0])

    def _wait_ready(self, info_hash: str, timeout: float = 10) -> None:
        url = f"http://127.0.0.1:{self.port}/scrape?info_hash=" + "".join(
            f"%{b:02x}" for b in bytes.fromhex(info_hash)
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"opentracker exited: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                urllib.request.urlopen(url, timeout=1).read()
                return
            except OSError:
                time.sleep(0.05)  # the tracker has no readiness signal; bounded by the deadline
        raise AssertionError("opentracker did not answer")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# -- a hostile peer -------------------------------------------------------------------------------
class CorruptSeeder:
    """A minimal seeder (thread, blocking sockets) that answers every request with garbage.

    It claims every piece, unchokes at once and sends blocks of the right size and wrong
    content: a peer only a hash check can unmask.
    """

    def __init__(self, info_hash: str, num_pieces: int) -> None:
        import threading

        from btd.core.wire import messages as m
        from btd.core.wire.codec import WireDecoder, encode, encode_handshake

        self._m, self._encode, self._decoder = m, encode, WireDecoder
        self._handshake = encode_handshake(
            m.Handshake(bytes.fromhex(info_hash), b"-EV0001-" + b"x" * 12)
        )
        self.num_pieces = num_pieces
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.blocks_sent = 0
        self._threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        m, encode = self._m, self._encode
        decoder = self._decoder(expect_handshake=True)
        full = bytearray(b"\xff" * ((self.num_pieces + 7) // 8))
        spare = len(full) * 8 - self.num_pieces
        if spare:
            full[-1] = (0xFF << spare) & 0xFF
        try:
            conn.sendall(self._handshake + encode(m.Bitfield(bytes(full))) + encode(m.UNCHOKE_MSG))
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                for msg in decoder.feed(data):
                    if isinstance(msg, m.Request):
                        conn.sendall(encode(m.Piece(msg.index, msg.begin, os.urandom(msg.length))))
                        self.blocks_sent += 1
        except Exception:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.server.close()


def wait_until(predicate: Any, timeout: float = 20, what: str = "condition") -> Any:
    """For state only an outside program knows (a tracker's swarm): bounded re-checks.

    Used where no signal exists; everything btd itself does is awaited through events.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def scrape(announce_url: str, info_hash: str) -> dict[str, int]:
    """One scrape of an HTTP tracker (opentracker) for one torrent."""
    from btd.core.bencode import decode

    url = (
        announce_url.replace("/announce", "/scrape")
        + "?info_hash="
        + "".join(f"%{b:02x}" for b in bytes.fromhex(info_hash))
    )
    body = decode(urllib.request.urlopen(url, timeout=5).read())
    stats = body[b"files"].get(bytes.fromhex(info_hash), {})
    return {k.decode(): v for k, v in stats.items()}


def pieces_had(btd: BtdProcess, info_hash: str) -> set[int]:
    """The pieces btd says the torrent has (its ``piece_map``)."""
    from btd.core.bitfield import Bitfield

    got = btd.call("torrent.get", {"info_hash": info_hash})
    return set(Bitfield.from_bytes(bytes.fromhex(got["piece_map"]), got["pieces"]))


def assert_every_piece_checks_out(btd: BtdProcess, torrent: Path, pieces: set[int]) -> None:
    """Hash what is on disk for every piece btd says it has."""
    from btd.core.metainfo import parse_metainfo

    meta = parse_metainfo(torrent.read_bytes())
    parts = []
    for f in meta.files:
        path = btd.downloads.joinpath(*f.path)
        parts.append(path.read_bytes() if path.exists() else bytes(f.length))  # not written yet
    blob = b"".join(parts)
    for i in sorted(pieces):
        data = blob[i * meta.piece_length : (i + 1) * meta.piece_length]
        assert hashlib.sha1(data).digest() == meta.piece_hash(i), f"piece {i} is claimed but bad"

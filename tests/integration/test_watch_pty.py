"""`btctl watch` in a real pseudo-terminal (tmux) against a real btd that downloads from an
upload-limited libtorrent seeder: the screen shows the torrent, `enter` opens its details
(files, the peer's client), `p` pauses it, `q` quits and leaves the terminal as it was.

tmux is the only witness of what a person would see, so the test re-reads its screen with
bounded re-checks (``wait_until``); there is no other signal to wait on.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from btdtest import BIN, seeded_torrent, wait_until

pytestmark = [pytest.mark.integration]

SIZES = {"watchme/alpha.bin": 6 * 2**20, "watchme/beta.txt": 100_000}
UPLOAD_LIMIT = 200_000  # bytes/s: the download takes ~30 s, long enough to watch it


class Tmux:
    """A private tmux server (its own socket, no user config) holding one 120x40 session."""

    def __init__(self, base: Path, command: str) -> None:
        binary = shutil.which("tmux")
        if binary is None:
            pytest.skip("tmux is not installed (apt-get install tmux); it plays the terminal")
        self.argv = [binary, "-S", str(base / "tmux.sock"), "-f", os.devnull]
        self.env = {**os.environ, "TERM": "xterm-256color"}
        self.run("new-session", "-d", "-x", "120", "-y", "40", "-s", "watch", command)

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [*self.argv, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
            env=self.env,
        )
        assert done.returncode == 0, f"tmux {args[0]}: {done.stderr}"
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "watch")

    def flag(self, name: str) -> str:
        return self.run("display-message", "-p", "-t", "watch", f"#{{{name}}}").strip()

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "watch", *keys)

    def shows(self, *needles: str, timeout: float = 20) -> str:
        """The screen once it shows every needle (bounded re-checks of capture-pane)."""
        last = [""]

        def ready() -> bool:
            last[0] = self.screen()
            return all(n in last[0] for n in needles)

        try:
            wait_until(ready, timeout=timeout, what=f"{needles} on screen")
        except AssertionError:
            raise AssertionError(f"screen never showed {needles}:\n{last[0]}") from None
        return last[0]

    def close(self) -> None:
        subprocess.run([*self.argv, "kill-server"], check=False, capture_output=True, timeout=10)


@pytest.fixture
def tmux_factory(tmp_path: Path) -> Iterator[Callable[[str], Tmux]]:
    made: list[Tmux] = []

    def make(command: str) -> Tmux:
        made.append(Tmux(tmp_path, command))
        return made[-1]

    yield make
    for t in made:
        t.close()


def test_watch_in_a_terminal(tmp_path: Path, btd_factory, lt_factory, tmux_factory) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(tmp_path, SIZES, "watchme", "watchme.torrent")
    seeder = lt_factory("seed", torrent, seed_dir, upload_limit=UPLOAD_LIMIT)
    btd = btd_factory().start()
    assert btd.add(torrent) == info_hash
    btd.call("torrent.add_peer", {"info_hash": info_hash, "address": "127.0.0.1",
                                  "port": seeder.port})  # fmt: skip

    btctl = shlex.join([str(BIN / "btctl"), "--socket", str(btd.socket), "watch",
                        "--interval", "0.5"])  # fmt: skip
    # after watch: its exit code and the tty's modes; `read` keeps the pane open to read them
    term = tmux_factory(f"{btctl}; echo watch-exit=$?; stty -a; read _")

    term.shows("watchme", "downloading")
    assert term.flag("alternate_on") == "1"  # full-screen: the alternate screen
    row = re.compile(r"› watchme\s+(\w+)\s+\S+\s+(\d+\.\d)%")
    wait_until(lambda: (m := row.search(term.screen())) and float(m.group(2)) > 0,
               what="progress on screen")  # fmt: skip

    term.keys("Enter")
    term.shows("watchme/alpha.bin", "watchme/beta.txt", "peers (1)", "pieces ")

    def peer_on_screen() -> bool:  # the client's name may change once its handshake is read
        peers = btd.call("torrent.peers", {"info_hash": info_hash})
        return bool(peers) and peers[0]["client"] in term.screen()

    wait_until(peer_on_screen, what="the peer's client name in the detail pane")
    assert "127.0.0.1:" in term.screen()
    assert btd.call("torrent.get", {"info_hash": info_hash})["state"] == "downloading"

    term.keys("p")
    wait_until(
        lambda: btd.call("torrent.get", {"info_hash": info_hash})["state"] == "paused",
        what="the torrent paused by `p`",
    )
    wait_until(lambda: (m := row.search(term.screen())) and m.group(1) == "paused",
               what="paused on screen")  # fmt: skip

    term.keys("q")
    screen = term.shows("watch-exit=")
    assert "watch-exit=0" in screen
    assert term.flag("alternate_on") == "0"  # back on the normal screen
    assert term.flag("cursor_flag") == "1"  # the cursor is visible again
    modes = set(re.split(r"[\s;]+", screen))
    assert {"icanon", "echo"} <= modes  # cooked mode again: cbreak was undone
    assert not {"-icanon", "-echo"} & modes

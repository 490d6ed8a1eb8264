"""A real ``btd`` with notify_command and notify_webhook: a torrent whose name is a shell
injection attempt is added; the command's child and a webhook receiver in this test get
the name exactly, and nothing in it is ever executed."""

from __future__ import annotations

import hashlib
import http.server
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from btd.core.bencode import encode
from btd.core.metainfo import sanitize_element

pytestmark = pytest.mark.integration

SCRIPT = """\
import json, os, sys
out = sys.argv[1]
with open(out + ".tmp", "w", encoding="utf-8") as f:
    json.dump({"env": dict(os.environ), "argv": sys.argv[2:]}, f)
os.rename(out + ".tmp", out)
print("wrote", out)
"""


class Receiver:
    """A tiny HTTP server in a thread: keeps the first POST to /hook and signals it."""

    def __init__(self) -> None:
        self.got = threading.Event()
        self.posts: list[dict[str, Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.posts.append(
                    {"path": self.path, "type": self.headers.get("Content-Type"),
                     "body": self.rfile.read(length)}
                )  # fmt: skip
                self.send_response(204)
                self.end_headers()
                receiver.got.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def hostile_torrent(path: Path, name: str) -> None:
    data = b"notify me\n" * 100
    info = {
        b"name": name.encode("utf-8"),
        b"length": len(data),
        b"piece length": 16384,
        b"pieces": hashlib.sha1(data).digest(),
    }
    path.write_bytes(encode({b"info": info}))


def wait_for_file(path: Path, btd: Any, timeout: float = 30) -> None:
    """The child writes the file: an outside program, so bounded re-checks."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not written within {timeout} s:\n{btd.log_text()}")
        time.sleep(0.05)


def test_hostile_name_reaches_command_and_webhook_exactly(
    btd_factory: Any, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # btd's (and its children's) working directory
    script = tmp_path / "record_env.py"
    script.write_text(SCRIPT)
    outfile = tmp_path / "env.json"
    raw_name = f"'\"; $(touch {tmp_path}/pwned) `touch {tmp_path}/pwned2` ; touch pwned3\n & |"
    torrent = tmp_path / "hostile.torrent"
    hostile_torrent(torrent, raw_name)

    config = {
        "plugins": {
            "rarest_first": {},
            "notify_command": {
                "commands": [
                    {"events": ["added"],
                     "argv": [sys.executable, str(script), str(outfile), "$BTD_NAME", "`id`"]},
                ]
            },
            "notify_webhook": {
                "urls": [{"url": f"http://127.0.0.1:{receiver.port}/hook", "events": ["added"]}]
            },
        }
    }  # fmt: skip
    btd = btd_factory(config=json.dumps(config)).start()  # JSON is YAML
    info_hash = btd.add(torrent)
    reported = btd.call("torrent.get", {"info_hash": info_hash})["name"]
    # The metainfo parser makes the name a safe path element ("/" and the newline become
    # "_"); everything a shell would act on is still there.
    assert reported == sanitize_element(raw_name)
    for dangerous in ("'", '"', ";", "$(", "`", "&", "|"):
        assert dangerous in reported

    wait_for_file(outfile, btd)
    record = json.loads(outfile.read_text(encoding="utf-8"))
    env = record["env"]
    assert env["BTD_NAME"] == reported
    assert (env["BTD_EVENT"], env["BTD_INFO_HASH"]) == ("added", info_hash)
    assert env["BTD_SAVE_PATH"] == str(btd.downloads)
    assert json.loads(env["BTD_DATA"]) == {}
    assert record["argv"] == ["$BTD_NAME", "`id`"]  # passed as is, never interpolated

    assert receiver.got.wait(30), f"no webhook POST within 30 s:\n{btd.log_text()}"
    (post,) = receiver.posts
    assert post["path"] == "/hook" and post["type"] == "application/json"
    body = json.loads(post["body"].decode("utf-8"))
    assert (body["event"], body["info_hash"], body["name"]) == ("added", info_hash, reported)
    assert body["save_path"] == str(btd.downloads) and body["data"] == {}
    assert abs(body["time"] - time.time()) < 120

    assert btd.stop() == 0
    # A shell would have created pwned3 in the working directory, and pwned/pwned2 there
    # too under their sanitized names ("_tmp_..._pwned"); only the download may match.
    made = [p for p in tmp_path.rglob("*pwned*") if p.name != reported]
    assert made == [], "something ran a shell"
    log = btd.log_text()
    assert "exited with status 0" in log, log
    assert "Traceback" not in log, log

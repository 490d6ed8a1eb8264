"""A real btd with the http plugin and a password: the front door's refusals, btd's own
JSON-RPC and events over HTTP, and the ``transmission-rpc`` library (PyPI) as a client."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from btdtest import BIN, BtdProcess, free_port, seeded_torrent, wait_until

from btd.plugins.http.passwords import hash_password

pytestmark = pytest.mark.integration

USER, PASSWORD = "me", "correct horse"


def config(port: int, *, bind: str = "127.0.0.1", auth: bool = True) -> str:
    text = (
        "session:\n  listen_host: 127.0.0.1\n"
        f"plugins:\n  rarest_first: {{}}\n  http:\n    bind: '{bind}'\n    port: {port}\n"
    )
    if auth:
        text += f"    username: {USER}\n    password_hash: '{hash_password(PASSWORD)}'\n"
    return text


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    port = free_port()
    proc = BtdProcess(tmp_path_factory.mktemp("http") / "btd", config=config(port))
    proc.http_port = port  # type: ignore[attr-defined]
    proc.start()
    yield proc
    proc.close()


def auth_header(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(
    btd: BtdProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", btd.http_port, timeout=30)  # type: ignore[attr-defined]
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def raw(btd: BtdProcess, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; what came back until the server closed."""
    with socket.create_connection(("127.0.0.1", btd.http_port), timeout=30) as s:  # type: ignore[attr-defined]
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def rpc(btd: BtdProcess, payload: Any) -> tuple[int, Any]:
    headers = {"Authorization": auth_header(), "Content-Type": "application/json"}
    status, _, body = request(btd, "POST", "/rpc", json.dumps(payload).encode(), headers)
    return status, json.loads(body) if body else None


def test_no_credentials_401_wrong_401_right_200(daemon: BtdProcess) -> None:
    call = json.dumps({"jsonrpc": "2.0", "method": "session.info", "id": 1}).encode()
    json_type = {"Content-Type": "application/json"}
    status, headers, _ = request(daemon, "POST", "/rpc", call, json_type)
    assert status == 401 and headers["www-authenticate"].startswith("Basic")
    wrong = {**json_type, "Authorization": auth_header(password="nope")}
    assert request(daemon, "POST", "/rpc", call, wrong)[0] == 401
    status, _, body = request(
        daemon, "POST", "/rpc", call, {**json_type, "Authorization": auth_header()}
    )
    assert status == 200 and json.loads(body)["result"]["pid"] > 0


def test_foreign_host_refused(daemon: BtdProcess) -> None:
    headers = {"Host": "evil.example:9091", "Authorization": auth_header()}
    assert request(daemon, "GET", "/", headers=headers)[0] == 421
    ok = {"Host": f"localhost:{daemon.http_port}", "Authorization": auth_header()}  # type: ignore[attr-defined]
    assert request(daemon, "GET", "/", headers=ok)[0] == 200
    cross = {**ok, "Origin": "http://evil.example"}
    assert request(daemon, "GET", "/", headers=cross)[0] == 403


def test_missing_session_id_409_then_call(daemon: BtdProcess) -> None:
    body = json.dumps({"method": "session-stats", "tag": 7}).encode()
    status, headers, _ = request(
        daemon, "POST", "/transmission/rpc", body, {"Authorization": auth_header()}
    )
    assert status == 409
    sid = headers["x-transmission-session-id"]
    status, _, answer = request(
        daemon,
        "POST",
        "/transmission/rpc",
        body,
        {"Authorization": auth_header(), "X-Transmission-Session-Id": sid},
    )
    reply = json.loads(answer)
    assert status == 200 and reply["result"] == "success" and reply["tag"] == 7
    assert "torrentCount" in reply["arguments"]


def test_100_mb_body_refused_without_reading_it(daemon: BtdProcess) -> None:
    head = (
        f"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth_header()}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000000\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    answer = raw(daemon, head + b"{" * 1000)  # 1 KB of the promised 100 MB, then wait
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in answer


def test_dot_dot_in_url_404(daemon: BtdProcess) -> None:
    for path in ("/../../etc/passwd", "/transmission/%2e%2e/%2e%2e/etc/passwd", "/nothing"):
        answer = raw(
            daemon,
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth_header()}\r\n"
            "Connection: close\r\n\r\n".encode(),
        )
        assert answer.startswith(b"HTTP/1.1 404 "), (path, answer[:200])
        assert b"root:" not in answer


def test_rpc_same_methods_errors_and_batch_cap(daemon: BtdProcess) -> None:
    status, reply = rpc(daemon, {"jsonrpc": "2.0", "method": "torrent.list", "id": 1})
    assert status == 200 and reply == {"jsonrpc": "2.0", "result": [], "id": 1}
    _, reply = rpc(daemon, {"jsonrpc": "2.0", "method": "torrent.pause", "params": {}, "id": 2})
    assert reply["error"]["code"] == -32602  # the socket's own parameter check
    batch = [{"jsonrpc": "2.0", "method": "session.info", "id": i} for i in range(3)]
    _, reply = rpc(daemon, batch)
    assert [r["id"] for r in reply] == [0, 1, 2]
    too_many = [{"jsonrpc": "2.0", "method": "session.info", "id": i} for i in range(101)]
    _, reply = rpc(daemon, too_many)
    assert reply["error"]["code"] == -32600 and reply["error"]["data"]["max_batch"] == 100
    _, reply = rpc(daemon, {"jsonrpc": "2.0", "method": "events.subscribe", "id": 3})
    assert "/events" in reply["error"]["message"]
    assert rpc(daemon, {"jsonrpc": "2.0", "method": "session.info"})[0] == 204  # notification
    form = {"Authorization": auth_header(), "Content-Type": "text/plain"}
    assert request(daemon, "POST", "/rpc", b"{}", form)[0] == 415


def test_events_stream_gets_the_socket_notifications(daemon: BtdProcess, tmp_path: Path) -> None:
    _, torrent, info_hash = seeded_torrent(tmp_path, {"e/x.bin": 70_000}, "e", "e.torrent")
    with socket.create_connection(("127.0.0.1", daemon.http_port), timeout=30) as s:  # type: ignore[attr-defined]
        s.sendall(
            f"GET /events?events=added HTTP/1.0\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {auth_header()}\r\n\r\n".encode()
        )
        seen = b""
        while b": btd events" not in seen:
            seen += s.recv(65536)
        assert b"text/event-stream" in seen
        daemon.add(torrent, paused=True)
        while b"\n\n" not in seen.split(b": btd events\n\n", 1)[1]:
            seen += s.recv(65536)
    line = seen.split(b": btd events\n\n", 1)[1].split(b"\n\n")[0]
    assert line.startswith(b"data: ")
    note = json.loads(line[len(b"data: ") :])
    assert note["method"] == "event" and note["params"]["event"] == "added"
    assert note["params"]["info_hash"] == info_hash
    daemon.call("torrent.remove", {"info_hash": info_hash})


def test_transmission_rpc_library(daemon: BtdProcess, tmp_path: Path) -> None:
    transmission_rpc = pytest.importorskip("transmission_rpc")
    _, torrent, info_hash = seeded_torrent(tmp_path, {"lib/a.bin": 200_000}, "lib", "lib.torrent")
    client = transmission_rpc.Client(
        host="127.0.0.1",
        port=daemon.http_port,  # type: ignore[attr-defined]
        username=USER,
        password=PASSWORD,
    )
    folder = tmp_path / "folder"
    added = client.add_torrent(
        torrent.read_bytes(), download_dir=str(folder), labels=["tv", "hd"], paused=True
    )
    assert added.hash_string == info_hash
    row = next(t for t in daemon.call("torrent.list") if t["info_hash"] == info_hash)
    assert row["save_path"] == str(folder) and sorted(row["labels"]) == ["hd", "tv"]
    # Added paused, it still checks its (missing) files first: "checking", then "stopped".
    wait_until(
        lambda: daemon.call("torrent.get", {"info_hash": info_hash})["state"] == "paused",
        what="the paused torrent's file check",
    )
    t = client.get_torrent(added.id)  # every field the library knows
    assert t.name == "lib" and t.total_size == 200_000 and t.download_dir == str(folder)
    assert t.status == "stopped" and sorted(t.labels) == ["hd", "tv"]
    assert [f.name for f in t.get_files()] == ["lib/a.bin"]
    assert t.percent_done == 0.0 and t.error == 0
    client.change_torrent(
        added.id,
        download_limit=120,
        download_limited=True,
        upload_limit=30,
        upload_limited=True,
        seed_ratio_limit=2.5,
        seed_ratio_mode=1,
    )
    row = next(t for t in daemon.call("torrent.list") if t["info_hash"] == info_hash)
    assert (row["download_limit"], row["upload_limit"], row["ratio_limit"]) == (
        120_000,
        30_000,
        2.5,
    )
    t = client.get_torrent(added.id)
    assert t.seed_ratio_limit == 2.5 and t.seed_ratio_mode.value == 1
    client.remove_torrent(added.id, delete_data=True)
    assert info_hash not in [t["info_hash"] for t in daemon.call("torrent.list")]
    assert client.get_torrents() == []


def test_non_loopback_bind_without_password_refuses_to_start(tmp_path: Path) -> None:
    proc = BtdProcess(tmp_path / "btd", config=config(free_port(), bind="0.0.0.0", auth=False))
    try:
        done = subprocess.run(proc.argv(), capture_output=True, text=True, timeout=60)
    finally:
        proc.close()
    assert done.returncode == 78
    assert "plugins.http.bind" in done.stderr and "password_hash" in done.stderr


def test_hash_password_reads_stdin(tmp_path: Path) -> None:
    from btd.plugins.http.passwords import verify_password

    done = subprocess.run(
        [str(BIN / "btd"), "--hash-password"],
        input="s3cret\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert verify_password(b"s3cret", done.stdout.strip())
    assert not verify_password(b"s3cret!", done.stdout.strip())


def test_tls_endpoint_serves_https(tmp_path: Path) -> None:
    import shutil
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    port = free_port()
    text = config(port, auth=False) + f"    tls_certificate: {cert}\n    tls_key: {key}\n"
    proc = BtdProcess(tmp_path / "btd", config=text)
    try:
        proc.start()
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("localhost", port, timeout=30, context=context)
        body = json.dumps({"jsonrpc": "2.0", "method": "session.info", "id": 1}).encode()
        conn.request("POST", "/rpc", body=body, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["result"]["pid"] > 0
        conn.close()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")  # plain HTTP: no answer
            assert not s.recv(100).startswith(b"HTTP/")
    finally:
        proc.close()

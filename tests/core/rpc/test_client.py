"""RpcClient against a scripted fake daemon on a real Unix socket (loopback only)."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fake_daemon
import pytest
from fake_daemon import frame

from btd.core.rpc import client as client_module
from btd.core.rpc.client import (
    DaemonUnreachable,
    Notification,
    RemoteError,
    RpcClient,
    RpcProtocolError,
    RpcTimeout,
)
from btd.core.rpc.errors import FRAME_TOO_LARGE, INVALID_PARAMS, NOT_FOUND

# A responder gets one decoded request (object or batch list) and returns the chunks
# to write back, in order; None in the list closes the connection.
Responder = Callable[[Any], list[bytes | None]]


def ok(request: dict[str, Any], result: Any) -> bytes:
    return frame({"jsonrpc": "2.0", "id": request["id"], "result": result})


def event(params: Any) -> bytes:
    return frame({"jsonrpc": "2.0", "method": "event", "params": params})


class FakeDaemon(fake_daemon.FakeDaemon):
    """Writes back what ``responder`` returns for each line it reads."""

    def __init__(self, path: Path, responder: Responder) -> None:
        self.responder = responder
        super().__init__(path)

    def respond(self, request: Any, conn: fake_daemon.Connection) -> Any:
        for chunk in self.responder(request):
            if chunk is None:
                return fake_daemon.HANG_UP
            conn.write(chunk)
        return None


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Responder], Path]]:
    daemons: list[FakeDaemon] = []

    def start(responder: Responder) -> Path:
        path = tmp_path / "d.sock"
        daemons.append(FakeDaemon(path, responder))
        return path

    yield start
    for daemon in daemons:
        daemon.stop()


def echo(request: Any) -> list[bytes | None]:
    return [ok(request, {"method": request["method"], "params": request.get("params")})]


def test_call_returns_result_and_sends_a_jsonrpc_request(serve) -> None:
    path = serve(echo)
    with RpcClient(path) as client:
        assert client.call("session.info") == {"method": "session.info", "params": None}
        assert client.call("torrent.info", {"info_hash": "ab"})["params"] == {"info_hash": "ab"}
        assert client.call("torrent.pause", ["ab", "cd"])["params"] == ["ab", "cd"]


def test_request_shape(serve, tmp_path: Path) -> None:
    seen: list[Any] = []

    def record(request: Any) -> list[bytes | None]:
        seen.append(request)
        return [ok(request, None)]

    with RpcClient(serve(record)) as client:
        client.call("a")
        client.call("b", {"x": 1})
    assert seen[0] == {"jsonrpc": "2.0", "method": "a", "id": seen[0]["id"]}
    assert seen[1]["params"] == {"x": 1} and seen[1]["id"] != seen[0]["id"]


def test_error_response_raises_remote_error(serve) -> None:
    def fail(request: Any) -> list[bytes | None]:
        error = {"code": NOT_FOUND, "message": "no torrent matches 'ab'", "data": {"field": "x"}}
        return [frame({"jsonrpc": "2.0", "id": request["id"], "error": error})]

    with RpcClient(serve(fail)) as client, pytest.raises(RemoteError) as info:
        client.call("torrent.info", {"info_hash": "ab"})
    assert (info.value.code, info.value.message) == (NOT_FOUND, "no torrent matches 'ab'")
    assert info.value.data == {"field": "x"}


def test_notifications_are_queued_while_waiting_then_yielded(serve) -> None:
    def chatty(request: Any) -> list[bytes | None]:
        return [event({"type": "added", "n": 1}), ok(request, "done"), event({"n": 2}), None]

    with RpcClient(serve(chatty)) as client:
        assert client.call("events.subscribe") == "done"
        got = list(client.notifications(timeout=5))
    assert got == [
        Notification("event", {"type": "added", "n": 1}),
        Notification("event", {"n": 2}),
    ]


def test_response_written_in_pieces_is_reassembled(serve) -> None:
    def split(request: Any) -> list[bytes | None]:
        data = ok(request, {"text": "é" * 50, "list": list(range(20))})
        cut = [0, 1, 7, 8, 30, len(data) - 1, len(data)]
        return [data[a:b] for a, b in zip(cut, cut[1:], strict=False)]

    with RpcClient(serve(split)) as client:
        client.recv_size = 3  # cuts UTF-8 sequences too
        assert client.call("x") == {"text": "é" * 50, "list": list(range(20))}
        assert client.call("y")["list"][-1] == 19


def test_several_messages_in_one_write_are_all_kept(serve) -> None:
    def bunched(request: Any) -> list[bytes | None]:
        return [event(1) + ok(request, "first") + b"\n" + event(2)]

    with RpcClient(serve(bunched)) as client:
        assert client.call("a") == "first"
        assert client.call("b") == "first"
        first_four = itertools.islice(client.notifications(timeout=5), 4)
        assert [n.params for n in first_four] == [1, 2, 1, 2]


def test_stale_answer_to_another_id_is_ignored(serve) -> None:
    def stale(request: Any) -> list[bytes | None]:
        return [frame({"jsonrpc": "2.0", "id": 999, "result": "old"}), ok(request, "new")]

    with RpcClient(serve(stale)) as client:
        assert client.call("a") == "new"


def test_connection_level_error_without_id_is_raised(serve) -> None:
    def too_big(request: Any) -> list[bytes | None]:
        error = {"code": FRAME_TOO_LARGE, "message": "frame too large"}
        return [frame({"jsonrpc": "2.0", "id": None, "error": error}), None]

    with RpcClient(serve(too_big)) as client, pytest.raises(RemoteError) as info:
        client.call("a")
    assert info.value.code == FRAME_TOO_LARGE


def test_batch_results_in_request_order_with_errors_in_place(serve) -> None:
    def answer(batch: Any) -> list[bytes | None]:
        replies = []
        for request in reversed(batch):  # the server may answer in any order
            if request["method"] == "bad":
                error = {"code": INVALID_PARAMS, "message": "x: wrong", "data": {"field": "x"}}
                replies.append({"jsonrpc": "2.0", "id": request["id"], "error": error})
            else:
                replies.append({"jsonrpc": "2.0", "id": request["id"], "result": request["method"]})
        return [event("noise"), frame(replies)]

    with RpcClient(serve(answer)) as client:
        results = client.batch([("one", None), ("bad", {"x": 1}), ("three", [3])])
        assert client.batch([]) == []
    assert results[0] == "one" and results[2] == "three"
    assert isinstance(results[1], RemoteError) and results[1].code == INVALID_PARAMS


def test_missing_socket_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.sock"
    with pytest.raises(DaemonUnreachable) as info:
        RpcClient(path).connect()
    assert str(path) in str(info.value) and "no such" in info.value.reason
    assert info.value.path == path


def test_socket_file_without_listener_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    with pytest.raises(DaemonUnreachable) as info:
        RpcClient(path).call("session.info")
    assert "refused" in info.value.reason and str(path) in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied_on_the_socket(serve, tmp_path: Path) -> None:
    path = serve(echo)
    path.chmod(0)
    with pytest.raises(DaemonUnreachable) as info:
        RpcClient(path).connect()
    assert "permission denied" in info.value.reason


def test_permission_denied_is_reported(monkeypatch, tmp_path: Path) -> None:
    class DeniedSocket(socket.socket):
        def connect(self, address: Any) -> None:
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(client_module.socket, "socket", DeniedSocket)
    with pytest.raises(DaemonUnreachable) as info:
        RpcClient(tmp_path / "x.sock").connect()
    assert "permission denied" in str(info.value) and "x.sock" in str(info.value)


def test_daemon_closing_without_answer_is_unreachable(serve) -> None:
    with RpcClient(serve(lambda request: [None])) as client, pytest.raises(DaemonUnreachable):
        client.call("a")


def test_no_answer_times_out(serve) -> None:
    with RpcClient(serve(lambda request: []), timeout=0.2) as client:
        with pytest.raises(RpcTimeout):
            client.call("a")
        with pytest.raises(RpcTimeout):
            next(client.notifications(timeout=0.05))


def test_frame_over_the_cap_is_refused(serve) -> None:
    with RpcClient(serve(lambda request: [ok(request, "x" * 500)]), max_line=100) as client:
        client.recv_size = 16
        with pytest.raises(RpcProtocolError, match="longer than 100"):
            client.call("a")


def test_frame_over_the_cap_in_one_read_is_refused(serve) -> None:
    with RpcClient(serve(lambda request: [ok(request, "x" * 500)]), max_line=100) as client:
        with pytest.raises(RpcProtocolError, match="longer than 100"):
            client.call("a")


def test_garbage_frame_is_a_protocol_error(serve) -> None:
    with RpcClient(serve(lambda request: [b"{nope\n"])) as client:
        with pytest.raises(RpcProtocolError, match="not JSON"):
            client.call("a")


def test_context_manager_closes_and_notifications_need_a_connection(serve) -> None:
    client = RpcClient(serve(echo))
    with client:
        assert client.call("a")["method"] == "a"
    with pytest.raises(DaemonUnreachable):
        next(client.notifications())
    client.close()  # idempotent


def test_frame_of_exactly_the_cap_passes_and_one_byte_more_fails(serve) -> None:
    sizes: list[int] = []

    def sized(request: Any) -> list[bytes | None]:
        empty = len(ok(request, "")) - 1  # the cap counts the frame without its newline
        reply = ok(request, "x" * (100 - empty + (request["method"] == "over")))
        sizes.append(len(reply) - 1)
        return [reply[i : i + 7] for i in range(0, len(reply), 7)]  # many small writes

    with RpcClient(serve(sized), max_line=100) as client:
        client.recv_size = 5
        assert set(client.call("fits")) == {"x"}
        with pytest.raises(RpcProtocolError, match="longer than 100"):
            client.call("over")
    assert sizes == [100, 101]


def test_answer_before_an_oversized_frame_is_still_read(serve) -> None:
    def then_too_big(request: Any) -> list[bytes | None]:
        return [ok(request, "mine") + event("x" * 500)]

    with RpcClient(serve(then_too_big), max_line=100) as client:
        assert client.call("a") == "mine"
        with pytest.raises(RpcProtocolError, match="longer than 100"):
            next(client.notifications(timeout=5))


def test_client_module_stays_light() -> None:
    """btctl imports the client on every start: no Twisted, no YAML behind it."""
    import subprocess
    import sys

    code = (
        "import sys, btd.core.rpc.client\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('twisted', 'yaml'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""ControlServer over StringTransport (protocol) and a real Unix socket (listen())."""

from __future__ import annotations

import json
import os
import select
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from btd.core import limits
from btd.core.errors import BtdError
from btd.core.rpc import errors as codes
from btd.core.rpc import server as server_module
from btd.core.rpc.dispatch import Dispatcher
from btd.core.rpc.errors import RpcError
from btd.core.rpc.peercred import PeerCred
from btd.core.rpc.replies import ENCODE_SLICE, Budget, encode_sliced
from btd.core.rpc.server import ControlConnection, ControlServer, listen, require, with_connection

ME = PeerCred(pid=4321, uid=1000, gid=1000)
STRANGER = PeerCred(pid=666, uid=1001, gid=1001)
STAFF = 4242
LATER: dict[str, Deferred[Any]] = {}


def square(n: Any) -> int:
    """Square an integer."""
    require("n", n, int)
    return int(n) * int(n)


def later(key: str) -> Deferred[Any]:
    LATER[key] = Deferred()
    return LATER[key]


def boom() -> None:
    raise ValueError("kaput")


def missing(info_hash: str) -> None:
    raise RpcError(codes.NOT_FOUND, "no such torrent", {"field": "info_hash", "value": info_hash})


@with_connection
def whoami(connection: ControlConnection) -> int:
    assert connection.peer is not None
    return connection.peer.uid


async def coro(x: int) -> int:
    return x + 1


METHODS: dict[str, Callable[..., Any]] = {
    "square": square,
    "add": lambda a, b: a + b,
    "later": later,
    "boom": boom,
    "missing": missing,
    "whoami": whoami,
    "nan": lambda: float("nan"),
    "object": lambda: object(),
    "coro": coro,
    "ready": lambda: succeed("already"),
    "named": lambda context, **rest: [context, sorted(rest)],
}


def make_server(**kw: Any) -> ControlServer:
    kw.setdefault("clock", Clock())
    kw.setdefault("our_uid", ME.uid)
    kw.setdefault("peer_cred", lambda transport: getattr(transport, "cred", None))
    kw.setdefault("groups_of", lambda uid, gid: [gid, STAFF] if uid == 2000 else [gid])
    return ControlServer(kw.pop("methods", METHODS), **kw)


def connect(server: ControlServer, cred: PeerCred | None = ME) -> tuple[Any, StringTransport]:
    transport = StringTransport()
    transport.cred = cred  # type: ignore[attr-defined]
    proto = server.buildProtocol(None)
    proto.makeConnection(transport)
    return proto, transport


def lost(proto: Any) -> None:
    proto.connectionLost(Failure(ConnectionDone()))


def replies(transport: StringTransport) -> list[Any]:
    data = transport.value()
    transport.clear()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


def req(method: str, params: Any = None, id: Any = 1) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if id is not None:
        msg["id"] = id
    return json.dumps(msg).encode() + b"\n"


def turns(clock: Any) -> None:
    """Run the reactor turns a batch or a big reply may take (no time passes)."""
    while isinstance(clock, Clock) and any(c.getTime() <= clock.seconds() for c in clock.calls):
        clock.advance(0)


def ask(transport_proto: tuple[Any, StringTransport], data: bytes) -> list[Any]:
    proto, transport = transport_proto
    proto.dataReceived(data)
    turns(proto.server.clock)
    return replies(transport)


@pytest.fixture
def server() -> ControlServer:
    return make_server()


@pytest.fixture
def conn(server: ControlServer) -> tuple[Any, StringTransport]:
    return connect(server)


def test_request_in_one_byte_writes(conn: tuple[Any, StringTransport]) -> None:
    proto, transport = conn
    data = req("square", [7], id="x")
    for i in range(len(data) - 1):
        proto.dataReceived(data[i : i + 1])
        assert transport.value() == b""
    proto.dataReceived(data[-1:])
    assert replies(transport) == [{"jsonrpc": "2.0", "result": 49, "id": "x"}]


def test_three_requests_in_one_write(conn: tuple[Any, StringTransport]) -> None:
    got = ask(conn, req("square", [1], 1) + req("square", {"n": 2}, 2) + req("add", [1, 2], 3))
    assert [(r["id"], r["result"]) for r in got] == [(1, 1), (2, 4), (3, 3)]


def test_batch(conn: tuple[Any, StringTransport]) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "square", "params": [3], "id": 1},
        {"jsonrpc": "2.0", "method": "square", "params": [4]},  # notification: no member
        {"jsonrpc": "2.0", "method": "nope", "id": 2},
    ]
    (got,) = ask(conn, json.dumps(batch).encode() + b"\n")
    assert got[0] == {"jsonrpc": "2.0", "result": 9, "id": 1}
    assert got[1]["id"] == 2 and got[1]["error"]["code"] == codes.METHOD_NOT_FOUND
    assert len(got) == 2


def test_notification_gets_no_reply(conn: tuple[Any, StringTransport]) -> None:
    assert ask(conn, req("square", [2], id=None)) == []
    assert ask(conn, b'[{"jsonrpc":"2.0","method":"square","params":[2]}]\n') == []


def test_invalid_json_then_still_usable(conn: tuple[Any, StringTransport]) -> None:
    (err,) = ask(conn, b'{"jsonrpc": "2.0", "method": \n')
    assert err["error"]["code"] == codes.PARSE_ERROR and err["id"] is None
    assert ask(conn, req("square", [5]))[0]["result"] == 25
    assert not conn[1].disconnecting


@pytest.mark.parametrize(
    "line", [b"\xff\xfe{}\n", b'{"jsonrpc":"2.0","method":"add","params":[NaN,1]}\n']
)
def test_not_utf8_or_nan_is_a_parse_error(conn: tuple[Any, StringTransport], line: bytes) -> None:
    assert ask(conn, line)[0]["error"]["code"] == codes.PARSE_ERROR


def test_blank_lines_ignored(conn: tuple[Any, StringTransport]) -> None:
    assert ask(conn, b"\n  \r\n") == []


def test_not_a_request_is_invalid(conn: tuple[Any, StringTransport]) -> None:
    for line in (b"[]\n", b"42\n", b'{"method": "square"}\n'):
        assert ask(conn, line)[0]["error"]["code"] == codes.INVALID_REQUEST


def test_unknown_method(conn: tuple[Any, StringTransport]) -> None:
    (err,) = ask(conn, req("torrent.nope"))
    assert err["error"]["code"] == codes.METHOD_NOT_FOUND and err["id"] == 1


def test_wrong_parameter_type_names_the_parameter(conn: tuple[Any, StringTransport]) -> None:
    for params in (["7"], {"n": True}, [7.5]):
        (err,) = ask(conn, req("square", params))
        assert err["error"]["code"] == codes.INVALID_PARAMS
        assert err["error"]["message"].startswith("n: expected an integer")
        assert err["error"]["data"] == {"field": "n"}


def test_wrong_arity_is_invalid_params(conn: tuple[Any, StringTransport]) -> None:
    for params in ([1, 2], {"m": 1}, []):
        (err,) = ask(conn, req("square", params))
        assert err["error"]["code"] == codes.INVALID_PARAMS


def test_parameter_names_do_not_clash_with_ours(conn: tuple[Any, StringTransport]) -> None:
    params = {"context": 1, "__btd_context": 2, "connection": 3}
    assert ask(conn, req("named", params))[0]["result"] == [1, ["__btd_context", "connection"]]


def test_require_optional_and_number() -> None:
    assert require("x", None, int, optional=True) is None
    assert require("x", 3, float) == 3
    with pytest.raises(RpcError) as info:
        require("x", [1], (int, str), optional=True)
    assert info.value.message == "x: expected an integer or a string or null, got an array"


def test_json_depth_limit(conn: tuple[Any, StringTransport]) -> None:
    def nested(depth: int) -> bytes:  # the request object is level 1
        params = "[" * (depth - 1) + "]" * (depth - 1)
        return b'{"jsonrpc":"2.0","method":"add","params":' + params.encode() + b',"id":1}\n'

    assert ask(conn, nested(64))[0]["error"]["code"] == codes.INVALID_PARAMS  # parsed, ran
    assert ask(conn, nested(65))[0]["error"]["code"] == codes.INVALID_REQUEST
    assert ask(conn, nested(100_000))[0]["error"]["code"] == codes.INVALID_REQUEST
    assert ask(conn, req("square", [3]))[0]["result"] == 9


def test_oversized_frame_closes_only_that_connection() -> None:
    server = make_server(max_frame=64)
    proto, transport = connect(server)
    proto.dataReceived(req("square", [2]) + b"[" * 40)
    assert not transport.disconnecting
    proto.dataReceived(b"[" * 40)  # 80 bytes of one line: over the cap before any newline
    ok, err = replies(transport)
    assert ok["result"] == 4
    assert err == {
        "jsonrpc": "2.0",
        "error": {
            "code": codes.FRAME_TOO_LARGE,
            "message": "message longer than 64 bytes",
            "data": {"max_frame": 64},
        },
        "id": None,
    }
    assert transport.disconnecting
    proto.dataReceived(req("square", [3]))
    assert transport.value() == b""  # nothing more on that connection
    lost(proto)
    assert ask(connect(server), req("square", [3]))[0]["result"] == 9


def test_deferred_result(conn: tuple[Any, StringTransport]) -> None:
    proto, transport = conn
    assert ask(conn, req("later", ["a"], 1) + req("square", [2], 2)) == [
        {"jsonrpc": "2.0", "result": 4, "id": 2}
    ]
    LATER.pop("a").callback({"done": True})
    assert replies(transport) == [{"jsonrpc": "2.0", "result": {"done": True}, "id": 1}]
    assert ask(conn, req("ready"))[0]["result"] == "already"
    assert ask(conn, req("coro", [1]))[0]["result"] == 2


def test_deferred_failure_becomes_an_error(conn: tuple[Any, StringTransport]) -> None:
    ask(conn, req("later", ["b"], 5) + req("later", ["c"], 6))
    LATER.pop("b").errback(RpcError(codes.STORAGE, "disk full", {"field": "save_path"}))
    LATER.pop("c").errback(RuntimeError("oops"))
    first, second = replies(conn[1])
    assert first["error"] == {
        "code": codes.STORAGE,
        "message": "disk full",
        "data": {"field": "save_path"},
    }
    assert second["id"] == 6 and second["error"]["code"] == codes.INTERNAL_ERROR
    assert "oops" in second["error"]["message"]


def test_batch_waits_for_all_members(conn: tuple[Any, StringTransport]) -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "later", "params": ["d"], "id": 1},
        {"jsonrpc": "2.0", "method": "square", "params": [3], "id": 2},
        {"jsonrpc": "2.0", "method": "later", "params": ["e"], "id": 3},
    ]
    assert ask(conn, json.dumps(batch).encode() + b"\n") == []
    LATER.pop("e").callback("E")
    assert conn[1].value() == b""
    LATER.pop("d").callback("D")
    (got,) = replies(conn[1])
    assert [(m["id"], m["result"]) for m in got] == [(1, "D"), (2, 9), (3, "E")]


def test_half_close_answers_then_closes(conn: tuple[Any, StringTransport]) -> None:
    proto, transport = conn
    proto.dataReceived(req("later", ["h"], 1) + req("square", [2], 2))
    proto.readConnectionLost()  # e.g. `printf ... | socat`
    assert replies(transport)[0]["result"] == 4
    assert not transport.disconnecting  # id 1 is still owed
    LATER.pop("h").callback("late")
    assert replies(transport)[0]["result"] == "late"
    assert transport.disconnecting


def test_half_close_with_nothing_owed(conn: tuple[Any, StringTransport]) -> None:
    conn[0].readConnectionLost()
    assert conn[1].disconnecting


def test_rpc_error_with_data(conn: tuple[Any, StringTransport]) -> None:
    (err,) = ask(conn, req("missing", {"info_hash": "abc"}))
    assert err["error"] == {
        "code": codes.NOT_FOUND,
        "message": "no such torrent",
        "data": {"field": "info_hash", "value": "abc"},
    }


def test_unexpected_exception_is_internal_error(conn: tuple[Any, StringTransport]) -> None:
    (err,) = ask(conn, req("boom"))
    assert err["error"]["code"] == codes.INTERNAL_ERROR
    assert err["error"]["message"] == "Internal error: kaput"
    assert ask(conn, req("square", [4]))[0]["result"] == 16


def test_result_that_is_not_json(conn: tuple[Any, StringTransport]) -> None:
    (err,) = ask(conn, req("object", id=9))
    assert err["id"] == 9 and err["error"]["code"] == codes.INTERNAL_ERROR


def test_a_float_that_is_not_finite_is_null(conn: tuple[Any, StringTransport]) -> None:
    """JSON has no NaN: written as null (as a browser's JSON.stringify does), not an error
    that would fail a whole torrent.list for one bad rate."""
    assert ask(conn, req("nan", id=9))[0]["result"] is None


def test_with_connection_gets_the_connection(conn: tuple[Any, StringTransport]) -> None:
    assert ask(conn, req("whoami"))[0]["result"] == ME.uid
    assert ask(conn, req("whoami", [1]))[0]["error"]["code"] == codes.INVALID_PARAMS


def test_other_uid_refused() -> None:
    server = make_server()
    proto, transport = connect(server, STRANGER)
    (err,) = replies(transport)
    assert err["error"]["code"] == codes.ACCESS_DENIED and err["id"] is None
    assert transport.disconnecting
    proto.dataReceived(req("square", [2]))
    assert transport.value() == b""
    assert server.connections == frozenset()


def test_unknown_peer_refused() -> None:
    _, transport = connect(make_server(), None)
    assert replies(transport)[0]["error"]["code"] == codes.ACCESS_DENIED


def test_allowed_group_changes_live() -> None:
    server = make_server()
    member = PeerCred(pid=7, uid=2000, gid=2000)  # STAFF is a supplementary group
    _, refused = connect(server, member)
    assert refused.disconnecting
    server.set_allowed_gid(STAFF)
    proto, transport = connect(server, member)
    assert ask((proto, transport), req("square", [2]))[0]["result"] == 4
    server.set_allowed_gid(None)
    assert replies(transport)[0]["error"]["code"] == codes.ACCESS_DENIED
    assert transport.disconnecting


def test_max_clients() -> None:
    server = make_server(max_clients=2)
    first, _ = connect(server)
    connect(server)
    _, third = connect(server)
    (err,) = replies(third)
    assert err["error"]["code"] == codes.TOO_MANY_CLIENTS and third.disconnecting
    lost(first)
    _, fourth = connect(server)
    assert not fourth.disconnecting and fourth.value() == b""


def test_subscribe_and_publish(server: ControlServer) -> None:
    watcher, everything = connect(server)
    picky, only_completed = connect(server)
    _, silent = connect(server)
    assert ask((watcher, everything), req("events.subscribe"))[0]["result"] == {"events": None}
    assert ask((picky, only_completed), req("events.subscribe", {"events": ["completed"]}))[0][
        "result"
    ] == {"events": ["completed"]}
    server.publish("added", {"info_hash": "ab" * 20, "event": "ignored"})
    server.publish("completed", {"info_hash": "cd" * 20})
    assert replies(everything) == [
        {"jsonrpc": "2.0", "method": "event", "params": {"event": "added", "info_hash": "ab" * 20}},
        {
            "jsonrpc": "2.0",
            "method": "event",
            "params": {"event": "completed", "info_hash": "cd" * 20},
        },
    ]
    assert [m["params"]["event"] for m in replies(only_completed)] == ["completed"]
    assert silent.value() == b""
    assert ask((watcher, everything), req("events.unsubscribe"))[0]["result"] == {"events": []}
    server.publish("added", {})
    assert everything.value() == b""


def test_an_event_nobody_subscribed_to_is_not_encoded(
    server: ControlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch add of 10,000 torrents makes 20,000 events: with no subscriber, no JSON."""
    encoded: list[str] = []
    real = server_module.encode_event
    monkeypatch.setattr(server_module, "encode_event", lambda e, p: encoded.append(e) or real(e, p))
    connect(server)  # connected, not subscribed
    server.publish("added", {"info_hash": "ab" * 20})
    assert encoded == []
    watcher, everything = connect(server)
    ask((watcher, everything), req("events.subscribe", {"events": ["completed"]}))
    server.publish("added", {"info_hash": "ab" * 20})
    assert encoded == []
    server.publish("completed", {"info_hash": "ab" * 20})
    assert encoded == ["completed"]


def test_subscribe_checks_its_parameter(conn: tuple[Any, StringTransport]) -> None:
    (err,) = ask(conn, req("events.subscribe", {"events": ["ok", 3]}))
    assert err["error"]["code"] == codes.INVALID_PARAMS
    assert err["error"]["data"] == {"field": "events[1]"}


def test_publish_not_json_is_dropped(server: ControlServer) -> None:
    proto, transport = connect(server)
    ask((proto, transport), req("events.subscribe"))
    server.publish("bad", {"x": object()})
    assert transport.value() == b""


def test_slow_reader_is_paused_then_dropped() -> None:
    server = make_server(max_backlog=1000)
    proto, transport = connect(server)
    ask((proto, transport), req("events.subscribe"))
    assert transport.producer is proto and transport.streaming
    proto.pauseProducing()  # what the transport does when its send buffer is full
    assert transport.producerState == "paused"
    proto.dataReceived(req("square", [2]))  # queued, not answered while backed up
    assert transport.value() == b""
    proto.resumeProducing()
    assert replies(transport)[0]["result"] == 4
    proto.pauseProducing()
    for _ in range(20):
        server.publish("tick", {"pad": "x" * 100})
    assert transport.disconnected  # aborted, not flushed
    before = len(transport.value())
    server.publish("tick", {})
    assert len(transport.value()) == before


def test_set_methods_replaces(server: ControlServer, conn: tuple[Any, StringTransport]) -> None:
    server.set_methods({"ping": lambda: "pong"})
    assert ask(conn, req("ping"))[0]["result"] == "pong"
    assert ask(conn, req("square", [2]))[0]["error"]["code"] == codes.METHOD_NOT_FOUND
    assert set(server.methods) == {"ping", "events.subscribe", "events.unsubscribe"}
    assert set(server.builtin_methods()) == {"events.subscribe", "events.unsubscribe"}


def test_bad_with_connection_method_rejected(server: ControlServer) -> None:
    with pytest.raises(TypeError):
        server.set_methods({"x": with_connection(lambda: None)})


def test_close_all() -> None:
    clock = Clock()
    server = make_server(clock=clock)
    a, ta = connect(server)
    b, tb = connect(server)
    done = server.close_all()
    assert ta.disconnecting and tb.disconnecting and not done.called
    lost(a)
    assert not done.called
    clock.advance(60)  # b never finished flushing: cut
    assert tb.disconnected
    lost(b)
    assert done.called
    _, late = connect(server)
    assert replies(late)[0]["error"]["code"] == codes.SHUTTING_DOWN


# -- the socket file and a real connection ------------------------------------------------


@pytest.fixture
def sockdir(tmp_path: Path) -> Path:
    path = tmp_path / "run" / "btd"
    assert len(str(path / "btd.sock")) < 100, "AF_UNIX paths are short"
    return path


def pump(reactor: Any, until: Callable[[], bool], seconds: float = 5.0) -> None:
    """Drive the real reactor until a condition holds (bounded, no sleeping)."""
    deadline = time.monotonic() + seconds
    while not until():
        assert time.monotonic() < deadline, "timed out"
        reactor.iterate(0.01)


def test_listen_real_socket(sockdir: Path) -> None:
    from twisted.internet import reactor

    server = ControlServer(METHODS, clock=reactor)
    path = sockdir / "btd.sock"
    port = listen(reactor, path, server)
    try:
        assert stat.S_IMODE(os.stat(sockdir).st_mode) == 0o750
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))
            client.sendall(req("square", [9]) + req("whoami", id=2))
            buf = b""

            def two_lines() -> bool:
                nonlocal buf
                if select.select([client], [], [], 0)[0]:
                    buf += client.recv(65536)
                return buf.count(b"\n") >= 2

            pump(reactor, two_lines)
            first, second = (json.loads(x) for x in buf.splitlines())
            assert first["result"] == 81
            assert second["result"] == os.geteuid()  # real SO_PEERCRED
        pump(reactor, lambda: not server.connections)
    finally:
        stopped = port.stopListening()
        pump(reactor, lambda: stopped is None or stopped.called)
    assert not os.path.lexists(path)


def test_stale_socket_replaced(sockdir: Path) -> None:
    from twisted.internet import reactor

    sockdir.mkdir(parents=True)
    path = sockdir / "btd.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: a crashed daemon's leftover
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    port = listen(reactor, path, ControlServer({}, clock=reactor))
    stopped = port.stopListening()
    pump(reactor, lambda: stopped is None or stopped.called)
    assert not os.path.lexists(path)


def test_live_socket_not_replaced(sockdir: Path) -> None:
    from twisted.internet import reactor

    sockdir.mkdir(parents=True)
    path = sockdir / "btd.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as alive:
        alive.bind(str(path))
        alive.listen(1)
        with pytest.raises(BtdError, match="another daemon is listening on"):
            listen(reactor, path, ControlServer({}, clock=reactor))
        assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_regular_file_not_deleted(sockdir: Path) -> None:
    from twisted.internet import reactor

    sockdir.mkdir(parents=True)
    path = sockdir / "btd.sock"
    path.write_text("precious")
    with pytest.raises(BtdError, match="not a socket"):
        listen(reactor, path, ControlServer({}, clock=reactor))
    assert path.read_text() == "precious"


def test_existing_directory_mode_kept(sockdir: Path) -> None:
    from twisted.internet import reactor

    sockdir.mkdir(parents=True, mode=0o700)
    os.chmod(sockdir, 0o700)
    port = listen(reactor, sockdir / "btd.sock", ControlServer({}, clock=reactor))
    try:
        assert stat.S_IMODE(os.stat(sockdir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(sockdir / "btd.sock").st_mode) == 0o660
    finally:
        stopped = port.stopListening()
        pump(reactor, lambda: stopped is None or stopped.called)


@pytest.mark.parametrize(
    "mode, who",
    [(0o777, "everyone"), (0o1777, "everyone"), (0o770, "its group"), (0o730, "its group")],
    ids=["world", "sticky-like-tmp", "group", "group-wx"],
)
@pytest.mark.parametrize("via_symlink", [False, True], ids=["dir", "symlink"])
def test_a_socket_directory_others_can_write_is_refused(
    tmp_path: Path, mode: int, who: str, via_symlink: bool
) -> None:
    """Issue 13 class 8: whoever can write the folder can put a socket of their own there."""
    from twisted.internet import reactor

    real = tmp_path / "shared"
    real.mkdir()
    os.chmod(real, mode)
    sockdir = real
    if via_symlink:
        sockdir = tmp_path / "run"
        sockdir.symlink_to(real)
    with pytest.raises(BtdError, match=f"writable by {who}") as info:
        listen(reactor, sockdir / "btd.sock", ControlServer({}, clock=reactor))
    assert f"{stat.S_IMODE(mode):04o}" in str(info.value)
    assert ("a symlink to" in str(info.value)) == via_symlink
    assert list(real.iterdir()) == []


def test_umask_restored(sockdir: Path) -> None:
    from twisted.internet import reactor

    old = os.umask(0o027)
    try:
        port = listen(reactor, sockdir / "btd.sock", ControlServer({}, clock=reactor))
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)
    stopped = port.stopListening()
    pump(reactor, lambda: stopped is None or stopped.called)


def test_socket_born_0660_without_any_chmod(sockdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The umask alone makes it 0660: no window where others could connect."""
    from twisted.internet import reactor

    monkeypatch.setattr(os, "chmod", lambda *args, **kwargs: None)
    old = os.umask(0o022)
    try:
        port = listen(reactor, sockdir / "btd.sock", ControlServer({}, clock=reactor))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(sockdir / "btd.sock").st_mode) == 0o660
    assert stat.S_IMODE(os.stat(sockdir).st_mode) == 0o750
    stopped = port.stopListening()
    pump(reactor, lambda: stopped is None or stopped.called)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to any group needs root")
def test_allowed_group_owns_socket_and_new_directory(sockdir: Path) -> None:
    from twisted.internet import reactor

    server = ControlServer({}, clock=reactor, allowed_gid=STAFF)
    port = listen(reactor, sockdir / "btd.sock", server)
    try:
        assert os.stat(sockdir / "btd.sock").st_gid == STAFF
        assert os.stat(sockdir).st_gid == STAFF
        server.set_allowed_gid(STAFF + 1)
        assert os.stat(sockdir / "btd.sock").st_gid == STAFF + 1
    finally:
        stopped = port.stopListening()
        pump(reactor, lambda: stopped is None or stopped.called)


def test_real_half_close_gets_reply_then_eof(sockdir: Path) -> None:
    from twisted.internet import reactor

    server = ControlServer(METHODS, clock=reactor)
    port = listen(reactor, sockdir / "btd.sock", server)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(sockdir / "btd.sock"))
            client.sendall(req("square", [12]))
            client.shutdown(socket.SHUT_WR)
            chunks: list[bytes] = []

            def eof() -> bool:
                if select.select([client], [], [], 0)[0]:
                    chunks.append(client.recv(65536))
                    return chunks[-1] == b""
                return False

            pump(reactor, eof)
            assert json.loads(b"".join(chunks))["result"] == 144
        pump(reactor, lambda: not server.connections)
    finally:
        stopped = port.stopListening()
        pump(reactor, lambda: stopped is None or stopped.called)


def test_the_clock_is_required() -> None:
    with pytest.raises(TypeError, match="clock"):
        ControlServer(METHODS)  # type: ignore[call-arg]


# -- issue 13, class 5: replies that never freeze the reactor --------------------------------
# sliced encoding, the reply budget, the batch cap, batch members across reactor turns
def one_turn(clock: Clock) -> None:
    """Run the one call waiting for the next reactor turn (not the ones it schedules)."""
    call = clock.calls.pop(0)
    call.func(*call.args, **call.kw)


def fired(d: Any) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "not fired"
    return out[0]


def test_a_small_reply_is_encoded_at_once() -> None:
    message = {"jsonrpc": "2.0", "result": [{"a": 1}] * 10, "id": 1}
    assert json.loads(fired(encode_sliced(message, Clock()))) == message


def test_a_big_list_is_encoded_a_slice_per_reactor_turn() -> None:
    clock = Clock()
    rows = [{"index": i, "path": f"d/f{i}é"} for i in range(ENCODE_SLICE * 5 + 3)]
    message = {"jsonrpc": "2.0", "result": {"name": "x", "files": rows}, "id": 7}
    out: list[bytes] = []
    encode_sliced(message, clock).addCallback(out.append)
    turns_taken = 0
    while not out:
        assert len(clock.calls) == 1, "one turn asked for at a time"
        one_turn(clock)
        turns_taken += 1
    assert turns_taken >= 5
    assert json.loads(out[0]) == message


def test_a_reply_over_the_budget_is_an_error_for_its_id() -> None:
    clock = Clock()
    big = {"jsonrpc": "2.0", "result": ["x" * 100] * (ENCODE_SLICE * 3), "id": 3}
    d = encode_sliced(big, clock, Budget(50_000))
    while not d.called:
        clock.advance(0)
    answer = json.loads(fired(d))
    assert answer["id"] == 3 and answer["error"]["code"] == codes.REPLY_TOO_LARGE
    small = {"jsonrpc": "2.0", "result": "y" * 1000, "id": 4}
    assert json.loads(fired(encode_sliced(small, clock, Budget(500))))["error"]["data"] == {
        "reply_budget": 500
    }


def test_a_batch_shares_one_budget() -> None:
    budget = Budget(2500)
    first = fired(encode_sliced({"jsonrpc": "2.0", "result": "a" * 2000, "id": 1}, None, budget))
    second = fired(encode_sliced({"jsonrpc": "2.0", "result": "b" * 2000, "id": 2}, None, budget))
    assert json.loads(first)["result"] == "a" * 2000
    assert json.loads(second)["error"]["code"] == codes.REPLY_TOO_LARGE
    third = fired(encode_sliced({"jsonrpc": "2.0", "result": "c" * 100, "id": 3}, None, budget))
    assert json.loads(third)["result"] == "c" * 100  # what did not fit was given back


def test_a_batch_over_the_cap_is_refused_whole_and_nothing_runs() -> None:
    ran: list[int] = []
    d = Dispatcher({"f": lambda: ran.append(1)})
    n = limits.RPC_MAX_BATCH_CALLS + 1
    batch = [{"jsonrpc": "2.0", "method": "f", "id": i} for i in range(n)]
    reply = d.dispatch(json.dumps(batch).encode(), None)
    (message,) = reply.items  # type: ignore[union-attr]
    assert message["error"]["code"] == codes.INVALID_REQUEST and message["id"] is None
    assert f"at most {limits.RPC_MAX_BATCH_CALLS}" in message["error"]["message"]
    assert message["error"]["data"] == {"max_batch": limits.RPC_MAX_BATCH_CALLS, "calls": n}
    assert ran == []


def test_a_line_with_too_many_json_containers_is_refused_before_parsing() -> None:
    d = Dispatcher({"f": lambda *a: 1})
    frame = b'{"jsonrpc":"2.0","method":"f","params":' + b"[]," * 0 + b"["
    frame += b",".join([b"[]"] * limits.RPC_MAX_JSON_CONTAINERS) + b'],"id":1}'
    (message,) = d.dispatch(frame, None).items  # type: ignore[union-attr]
    assert message["error"]["code"] == codes.INVALID_REQUEST
    assert str(limits.RPC_MAX_JSON_CONTAINERS) in message["error"]["message"]


def test_batch_members_run_across_reactor_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(server_module, "_now", lambda: now[0])
    calls: list[int] = []

    def slow(n: int) -> int:
        calls.append(n)
        now[0] += 0.6 * server_module.BATCH_SLICE  # two calls fill a slice
        return n

    clock = Clock()
    proto, transport = connect(make_server(methods={"slow": slow}, clock=clock))
    batch = [{"jsonrpc": "2.0", "method": "slow", "params": [i], "id": i} for i in range(4)]
    proto.dataReceived(
        json.dumps(batch).encode()
        + b"\n"
        + b'{"jsonrpc":"2.0","method":"slow","params":[9],"id":9}\n'
    )
    assert calls == [0, 1]  # then the reactor gets a turn
    assert transport.value() == b""
    one_turn(clock)
    assert calls == [0, 1, 2, 3, 9]  # the next line waited for the batch
    turns(clock)
    batch_reply, single = replies(transport)
    assert [m["result"] for m in batch_reply] == [0, 1, 2, 3]
    assert single["result"] == 9  # the next line waited for the batch


def test_big_replies_go_out_in_big_writes() -> None:
    """A 10,000-torrent list must not take a reactor turn per 128 KiB (Twisted's default)."""
    import socket

    from btd.core.rpc.server import SEND_LIMIT

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    default = ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)

    class Wired(StringTransport):
        SEND_LIMIT = 128 * 1024

        def getHandle(self) -> socket.socket:
            return ours

    transport = Wired()
    transport.cred = ME  # type: ignore[attr-defined]
    make_server().buildProtocol(None).makeConnection(transport)
    try:
        assert transport.SEND_LIMIT == SEND_LIMIT == 4 * 1024 * 1024
        assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) > default
    finally:
        ours.close()
        theirs.close()

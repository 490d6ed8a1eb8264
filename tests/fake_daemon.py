"""A stand-in btd for btctl and RpcClient tests: JSON-RPC lines on a real Unix socket.

One copy of the threads, the socket and the bookkeeping (requests in arrival order,
subscribed connections, pushed notifications); each test file says only how to answer,
with a table of method handlers or by overriding ``answer`` (one request) or ``respond``
(one decoded line, batch or not). Also the two ways those tests run btctl: in this
process, and in a fresh interpreter that reports which heavy packages it imported.
"""

from __future__ import annotations

import json
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from btd.ctl import main as ctl

HEAVY = ("twisted", "yaml", "jsonrpcserver", "pluggy", "rich")  # btctl must not import these
METHOD_NOT_FOUND = {"code": -32601, "message": "method not found"}
# what btd before batch adds answered to torrent.add(torrents=...): jsonrpcserver's own error
OLD_DAEMON_BATCH_ERROR = {
    "code": -32602,
    "message": "Invalid params",
    "data": "got an unexpected keyword argument 'torrents'",
}
HANG_UP = object()  # returned by ``respond``: close this connection, write nothing

Handler = Callable[[Any], Any]


def frame(message: Any) -> bytes:
    return json.dumps(message).encode() + b"\n"


def reply(request: dict[str, Any], **body: Any) -> dict[str, Any]:
    """A response to ``request``: ``reply(r, result=x)`` or ``reply(r, error={...})``."""
    return {"jsonrpc": "2.0", "id": request["id"], **body}


class Refused(Exception):
    """Raised by a method handler: the daemon answers with this JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.error = {"code": code, "message": message, "data": data}


class Connection:
    """One client's connection, as the fake daemon writes to it."""

    def __init__(self, handler: socketserver.StreamRequestHandler, lock: threading.Lock) -> None:
        self.rfile = handler.rfile
        self.wfile = handler.wfile
        self.socket: socket.socket = handler.connection
        self.lock = lock

    def write(self, *pieces: bytes) -> None:
        """Write and flush each piece in turn (several pieces: a split write)."""
        with self.lock:
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()

    def send(self, message: Any) -> None:
        self.write(frame(message))

    def hang_up(self) -> None:
        self.socket.shutdown(socket.SHUT_RDWR)


class FakeDaemon:
    """Serves ``path`` on a thread until ``stop``.

    ``handlers[method](params)`` gives a result (a handler raises ``Refused`` for an error);
    other methods are METHOD_NOT_FOUND. A batch gets a list of answers; ``torrent.add`` with
    ``torrents`` is answered item by item through the same handler (``batch_adds``). ``split`` writes each
    reply in 5-byte pieces. ``after[method](params)`` runs once, after the reply to
    ``method`` is written (to script what the daemon does next). A connection that calls
    ``events.subscribe`` is a subscriber: ``push`` sends it notifications, ``hang_up`` ends
    it, and with ``hang_up_subscribers`` it is closed right after each reply.
    """

    def __init__(
        self, path: Path, handlers: Mapping[str, Handler] | None = None, *, split: bool = False
    ) -> None:
        self.path = path
        self.handlers: Mapping[str, Handler] = handlers or {}
        self.split = split
        self.requests: list[Any] = []
        self.after: dict[str, Callable[[Any], None]] = {}
        self.subscribers: list[Connection] = []
        self.hang_up_subscribers = False
        self.batch_adds = True
        self.lock = threading.Lock()
        fake = self

        class RequestHandler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    fake.serve(Connection(self, fake.lock))
                except (OSError, ValueError):  # the client hung up while we wrote
                    pass

        self.server = socketserver.ThreadingUnixStreamServer(str(path), RequestHandler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def serve(self, conn: Connection) -> None:
        while line := conn.rfile.readline():
            request = json.loads(line)
            self.requests.append(request)
            batch = request if isinstance(request, list) else [request]
            if any(r.get("method") == "events.subscribe" for r in batch):
                self.subscribers.append(conn)
            answer = self.respond(request, conn)
            if answer is HANG_UP:
                return
            if answer is not None:
                data = frame(answer)
                pieces = [data[i : i + 5] for i in range(0, len(data), 5)] if self.split else []
                conn.write(*(pieces or [data]))
            for r in batch:
                hook = self.after.pop(r.get("method"), None)
                if hook is not None:
                    hook(r.get("params"))
            if self.hang_up_subscribers and conn in self.subscribers:
                return

    def respond(self, request: Any, conn: Connection) -> Any:
        """The reply to one decoded line; None writes nothing."""
        if isinstance(request, list):
            return [self.dispatch(r, conn) for r in request]
        return self.dispatch(request, conn)

    def dispatch(self, request: dict[str, Any], conn: Connection) -> Any:
        params = request.get("params")
        if request.get("method") == "torrent.add" and isinstance(params, dict):
            if "torrents" in params:
                return self.answer_batch_add(request, conn)
        return self.answer(request, conn)

    def answer_batch_add(self, request: dict[str, Any], conn: Connection) -> Any:
        """``torrent.add`` with ``torrents``, as btd answers it: each item as a single add
        (through ``answer``), one result or ``{"error": ...}`` (with ``data.index``) each.
        With ``batch_adds`` off, refused as a daemon from before batches did."""
        if not self.batch_adds:
            return reply(request, error=OLD_DAEMON_BATCH_ERROR)
        results: list[Any] = []
        for index, item in enumerate(request["params"]["torrents"]):
            one = self.answer({**request, "params": item}, conn)
            if "error" in one:
                data = one["error"].get("data")
                data = {**(data if isinstance(data, dict) else {}), "index": index}
                results.append({"error": {**one["error"], "data": data}})
            else:
                results.append(one["result"])
        return reply(request, result=results)

    def answer(self, request: dict[str, Any], conn: Connection) -> Any:
        handler = self.handlers.get(request["method"])
        if handler is None:
            return reply(request, error=METHOD_NOT_FOUND)
        try:
            return reply(request, result=handler(request.get("params")))
        except Refused as exc:
            return reply(request, error=exc.error)

    def push(self, params: Any, method: str = "event") -> None:
        """A notification to every subscriber; one that has gone is dropped."""
        for conn in list(self.subscribers):
            try:
                conn.send({"jsonrpc": "2.0", "method": method, "params": params})
            except (OSError, ValueError):
                self.subscribers.remove(conn)

    def hang_up(self) -> None:
        for conn in self.subscribers:
            conn.hang_up()

    def flat_requests(self) -> list[dict[str, Any]]:
        flat: list[Any] = []
        for r in self.requests:
            flat += r if isinstance(r, list) else [r]
        return flat

    def calls(self) -> list[tuple[str, Any]]:
        return [(r["method"], r.get("params")) for r in self.flat_requests()]

    def methods(self) -> list[str]:
        return [r["method"] for r in self.flat_requests()]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def run_btctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``btctl argv`` in this process: (exit code, stdout, stderr)."""
    code = ctl.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def btctl_in_new_python(*argv: str, btd: bool = False) -> subprocess.CompletedProcess[str]:
    """``btctl argv`` in a fresh interpreter. Its last stderr line is JSON: the exit code
    and the HEAVY modules it imported (``{"code": 0, "heavy": []}`` when all is well);
    with ``btd``, also ``"btd"``: the btd modules it imported."""
    program = (
        "import json, sys\n"
        "from btd.ctl.main import main\n"
        f"code = main({list(argv)!r})\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "report = {'code': code, 'heavy': heavy}\n"
        f"if {btd!r}:\n"
        "    report['btd'] = sorted(m for m in sys.modules if m.startswith('btd.'))\n"
        "print(json.dumps(report), file=sys.stderr)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=False
    )

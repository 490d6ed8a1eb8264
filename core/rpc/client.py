"""A blocking JSON-RPC 2.0 client for btd's control socket (used by btctl).

Standard library (socket), orjson (``json_text``) and the pure ``LineFramer`` the daemon
also uses: btctl runs this on every start, so importing Twisted or jsonrpcserver here
would make every command slow. Framing is one UTF-8 JSON document per line both ways, with the same limit. On connections that called ``events.subscribe`` the
daemon also pushes notifications (no ``id``); while waiting for its own answer the
client queues them, and :meth:`RpcClient.notifications` hands them out later.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque, namedtuple
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from btd.core.errors import BtdError
from btd.core.rpc.framing import DEFAULT_MAX_FRAME, LineFramer
from btd.core.rpc.json_text import dumps, loads

TYPE_CHECKING = False  # typing itself costs btctl a few ms a start
if TYPE_CHECKING:
    from typing import Any

MAX_LINE = DEFAULT_MAX_FRAME  # the daemon's frame limit; a base64 .torrent must fit


class DaemonUnreachable(BtdError):
    """No daemon to talk to at ``path`` (or it went away); ``reason`` says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot reach btd at {path}: {reason}")
        self.path = path
        self.reason = reason


class RemoteError(BtdError):
    """The daemon answered with a JSON-RPC error (codes in btd.core.rpc.errors)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class RpcTimeout(BtdError):
    """No answer (or no notification) arrived within the allowed time."""


class RpcProtocolError(BtdError):
    """The daemon sent something that is not a JSON-RPC 2.0 frame we can use."""


# A namedtuple, not a dataclass: importing dataclasses (and inspect) costs btctl ~10 ms a start.
Notification = namedtuple("Notification", ["method", "params"])
Notification.__doc__ = """A message the daemon pushed without being asked (``method`` is usually
"event"; ``params`` its JSON value)."""


def _reason(exc: OSError) -> str:
    """Turn a connect() failure into words a person can act on."""
    if isinstance(exc, FileNotFoundError):
        return "no such socket file (is btd running?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (stale socket file; is btd running?)"
    if isinstance(exc, PermissionError):
        return "permission denied (is your user allowed to use this socket?)"
    if isinstance(exc, TimeoutError):
        return "timed out while connecting"
    return exc.strerror or str(exc)


class RpcClient:
    """One connection to the daemon; not thread-safe (one caller at a time)."""

    recv_size = 256 * 1024  # bytes per recv(); tests shrink it to prove reassembly

    def __init__(
        self, path: Path, timeout: float | None = 30.0, *, max_line: int = MAX_LINE
    ) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.max_line = max_line
        self._sock: socket.socket | None = None
        self._framer = LineFramer(max_line)
        self._lines: deque[bytes] = deque()  # complete frames received, not yet read
        self._next_id = 1
        self._pending: deque[Notification] = deque()

    # -- connection -------------------------------------------------------------------

    def connect(self) -> None:
        """Open the socket; raises DaemonUnreachable naming the path and the cause."""
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(os.fspath(self.path))
        except OSError as exc:
            sock.close()
            raise DaemonUnreachable(self.path, _reason(exc)) from exc
        self._sock = sock

    def close(self) -> None:
        """Close the connection (idempotent); notifications already received stay queued."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
        self._framer = LineFramer(self.max_line)
        self._lines.clear()

    def __enter__(self) -> RpcClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- calls ------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any] | list[Any] | None = None) -> Any:
        """Call ``method`` and return its result; raises RemoteError on an error answer."""
        request_id = self._new_id()
        self._send(self._request(method, params, request_id))
        deadline = self._deadline()
        while True:
            message = self._read_message(deadline)
            if isinstance(message, list):
                continue  # a batch answer that is not ours (cannot happen in sequence)
            if message.get("id") == request_id:
                return self._result(message)
            self._stray(message)

    def batch(self, calls: Sequence[tuple[str, dict[str, Any] | list[Any] | None]]) -> list[Any]:
        """Send several calls in one frame; results come back in the order asked.

        A call that failed is returned as a RemoteError instance in its slot (not
        raised), so one bad item does not hide the others' results.
        """
        if not calls:
            return []
        ids = [self._new_id() for _ in calls]
        self._send([self._request(m, p, i) for (m, p), i in zip(calls, ids, strict=True)])
        deadline = self._deadline()
        while True:
            message = self._read_message(deadline)
            if isinstance(message, dict):
                self._stray(message)
                continue
            by_id = {item.get("id"): item for item in message if isinstance(item, dict)}
            if not set(ids) & by_id.keys():
                continue  # someone else's batch answer
            out: list[Any] = []
            for request_id in ids:
                item = by_id.get(request_id)
                if item is None:
                    out.append(RemoteError(-32603, f"no answer for batch item {request_id}"))
                    continue
                try:
                    out.append(self._result(item))
                except RemoteError as exc:
                    out.append(exc)
            return out

    def notifications(self, timeout: float | None = None) -> Iterator[Notification]:
        """Yield pushed notifications as they come; blocks up to ``timeout`` for each.

        ``timeout=None`` waits for ever (for ``watch``). Ends when the daemon closes the
        connection; raises RpcTimeout when nothing arrives in time.
        """
        if self._sock is None and not self._pending:
            raise DaemonUnreachable(self.path, "not connected")
        while True:
            while self._pending:
                yield self._pending.popleft()
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                message = self._read_message(deadline)
            except DaemonUnreachable:
                return
            if isinstance(message, dict):
                self._stray(message)

    # -- internals --------------------------------------------------------------------

    def _new_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    @staticmethod
    def _request(method: str, params: Any, request_id: int) -> dict[str, Any]:
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            request["params"] = params
        return request

    def _deadline(self) -> float | None:
        return None if self.timeout is None else time.monotonic() + self.timeout

    def _send(self, message: Any) -> None:
        self.connect()
        assert self._sock is not None
        data = dumps(message) + b"\n"
        if len(data) > self.max_line:
            raise RpcProtocolError(f"request of {len(data)} bytes exceeds {self.max_line}")
        try:
            self._sock.settimeout(self.timeout)
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise RpcTimeout(f"btd at {self.path} did not accept the request in time") from exc
        except OSError as exc:
            self.close()
            raise DaemonUnreachable(self.path, f"connection lost ({_reason(exc)})") from exc

    def _result(self, message: dict[str, Any]) -> Any:
        error = message.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise RpcProtocolError(f"malformed error object: {error!r}")
            code = error.get("code")
            if not isinstance(code, int) or isinstance(code, bool):
                raise RpcProtocolError(f"malformed error object: {error!r}")
            raise RemoteError(code, str(error.get("message", "")), error.get("data"))
        if "result" not in message:
            raise RpcProtocolError("response has neither result nor error")
        return message["result"]

    def _stray(self, message: dict[str, Any]) -> None:
        """Handle a message that is not the answer awaited: queue it or drop it."""
        if "id" not in message and isinstance(message.get("method"), str):
            self._pending.append(Notification(message["method"], message.get("params")))
        elif message.get("id") is None and isinstance(message.get("error"), dict):
            # FRAME_TOO_LARGE / ACCESS_DENIED / PARSE_ERROR: about this connection.
            self._result(message)
        # else: a late answer to an earlier call that timed out; ignore it.

    def _read_message(self, deadline: float | None) -> Any:
        line = self._read_line(deadline)
        try:
            message = loads(line)
        except ValueError as exc:
            raise RpcProtocolError(f"btd sent a frame that is not JSON: {exc}") from exc
        if not isinstance(message, dict | list):
            raise RpcProtocolError(f"btd sent a frame that is not an object: {message!r}")
        return message

    def _read_line(self, deadline: float | None) -> bytes:
        """The next non-blank frame; frames that arrived before an oversized one come first."""
        while True:
            while self._lines:
                line = self._lines.popleft()
                if line.strip():
                    return line
            if self._framer.too_large:
                self._too_long()
            self._fill(deadline)

    def _too_long(self) -> None:
        self.close()
        raise RpcProtocolError(f"btd sent a frame longer than {self.max_line} bytes")

    def _fill(self, deadline: float | None) -> None:
        if self._sock is None:
            raise DaemonUnreachable(self.path, "not connected")
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RpcTimeout(f"no answer from btd at {self.path} in time")
            self._sock.settimeout(remaining)
        else:
            self._sock.settimeout(None)
        try:
            chunk = self._sock.recv(self.recv_size)
        except TimeoutError as exc:
            raise RpcTimeout(f"no answer from btd at {self.path} in time") from exc
        except OSError as exc:
            self.close()
            raise DaemonUnreachable(self.path, f"connection lost ({_reason(exc)})") from exc
        if not chunk:
            self.close()
            raise DaemonUnreachable(self.path, "the daemon closed the connection")
        self._lines.extend(self._framer.feed(chunk))

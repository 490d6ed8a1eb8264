"""The control server: JSON-RPC 2.0, one message per line, over a Unix stream socket.

``ControlServer`` owns the methods, the connections and the access policy;
``ControlConnection`` is one client (framing, dispatch, back-pressure, event
subscriptions); ``listen`` puts the server on a socket file (safely: see
``btd.core.rpc.sockfile``). The wire format and error codes are in docs/RPC.md.

Size: about 460 lines: one client's life (admission, framing, batches run in slices,
back-pressure both ways, event subscriptions, a bounded close) is one protocol object.
"""

from __future__ import annotations

import collections
import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IListeningPort,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from btd.core.rpc.dispatch import (
    Batch,
    Dispatcher,
    Message,
    PendingReply,
    Reply,
    encode_event,
    encode_message,
    error_message,
    require,
    settle,
    with_connection,
)
from btd.core.rpc.errors import ACCESS_DENIED, FRAME_TOO_LARGE, SHUTTING_DOWN, TOO_MANY_CLIENTS
from btd.core.rpc.framing import DEFAULT_MAX_FRAME, LineFramer
from btd.core.rpc.peercred import PeerCred, is_allowed, supplementary_groups, transport_peer_cred
from btd.core.rpc.replies import Budget, encode_sliced
from btd.core.rpc.sockfile import bind_control_socket, give_group

__all__ = [
    "BUILTIN_METHODS",
    "ControlConnection",
    "ControlServer",
    "listen",
    "require",
    "with_connection",
]

_log = Logger()

DEFAULT_MAX_CLIENTS = 64
DEFAULT_MAX_BACKLOG = 64 * 1024 * 1024  # bytes queued for a client that stopped reading
CLOSE_TIMEOUT = 10.0  # seconds a closing connection may take to flush before it is cut
BATCH_SLICE = 0.005  # seconds of batch members run before the reactor gets a turn
SEND_LIMIT = 4 * 1024 * 1024  # bytes per writable wakeup (Twisted's is 128 KiB)
SEND_BUFFER = 4 * 1024 * 1024  # SO_SNDBUF asked (the kernel caps it: wmem_max)
_now = time.perf_counter  # what a batch's slice is measured with (tests replace it)


@implementer(IPushProducer, IHalfCloseableProtocol)
class ControlConnection(Protocol):
    """One control client.

    A push producer so the transport can say it is backed up; half-closeable so
    ``printf REQUEST | socat - UNIX-CONNECT:...`` still gets its (late) replies.
    """

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.peer: PeerCred | None = None
        self._framer = LineFramer(server.max_frame)
        self._queue: collections.deque[bytes] = collections.deque()
        self._state = "new"  # new -> open -> closing -> closed
        self._paused = False  # the transport's send buffer is full
        self._backlog = 0  # bytes written since it filled up
        self._producing = False  # registered as the transport's producer
        self._eof = False  # the client shut down its sending side
        self._in_flight = 0  # replies waiting for a Deferred
        self._batch = False  # a batch is running: no other line is read until it is done
        self._subscribed = False
        self._events: frozenset[str] | None = None
        self._abort_call: IDelayedCall | None = None

    # -- lifecycle --------------------------------------------------------------
    def connectionMade(self) -> None:
        refusal = self.server._admit(self)
        if refusal is not None:
            self.close(refusal)
            return
        self._state = "open"
        self._widen_sends()
        self.transport.registerProducer(self, True)
        self._producing = True

    def _widen_sends(self) -> None:
        """A 10,000-torrent list is 2-8 MB: in 128 KiB writes, one per reactor turn, it
        waits behind a download's work dozens of times. Bigger writes, fewer turns."""
        if hasattr(self.transport, "SEND_LIMIT"):
            self.transport.SEND_LIMIT = SEND_LIMIT  # type: ignore[attr-defined]
        handle = getattr(self.transport, "getHandle", lambda: None)()
        if isinstance(handle, socket.socket):
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._state = "closed"
        self._producing = False
        self._queue.clear()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self.server._forget(self)

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    def close(self, message: Message | None = None) -> None:
        """Send ``message`` (if any), flush, then close; cut it if flushing stalls."""
        if self._state in ("closing", "closed"):
            return
        if message is not None:
            self.transport.write(encode_message(message))
        self._state = "closing"
        if self._producing:  # a registered producer would keep the connection open
            self._producing = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()
        self._abort_call = self.server.clock.callLater(self.server.close_timeout, self._cut)

    def readConnectionLost(self) -> None:
        """The client sent all it will send: answer what is left, then close."""
        self._eof = True
        self._drain()

    def writeConnectionLost(self) -> None:
        """We never half-close; nothing to do."""

    def _finish_if_done(self) -> None:
        done = not self._queue and not self._in_flight and not self._subscribed
        if self._eof and done and self._state == "open":
            self.close()

    def _cut(self) -> None:
        self._abort_call = None
        if self._state != "closed":
            self.transport.abortConnection()

    # -- input ----------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if self._state != "open":
            return
        self._queue.extend(self._framer.feed(data))
        self._drain()

    def _drain(self) -> None:
        """Handle queued lines until done, paused (client not reading) or closed."""
        while self._queue and self._state == "open" and not self._paused and not self._batch:
            self._handle(self._queue.popleft())
        if not self._queue and self._framer.too_large and self._state == "open":
            limit = self._framer.max_frame
            self.close(
                error_message(
                    FRAME_TOO_LARGE, f"message longer than {limit} bytes", {"max_frame": limit}
                )
            )
        self._finish_if_done()

    def _handle(self, frame: bytes) -> None:
        self.server.message_size(len(frame))
        reply = self.server.dispatcher.dispatch(frame, self)
        if isinstance(reply, Batch):
            self._run_batch(reply)
        elif reply is not None:
            self._send_reply(reply)

    def _message(self, item: Message | PendingReply, budget: Budget) -> Deferred[bytes]:
        """One response, settled and encoded (in slices if big) within ``budget``."""
        d = settle(item) if isinstance(item, PendingReply) else succeed(item)
        return d.addCallback(encode_sliced, self.server.clock, budget)

    def _send_reply(self, reply: Reply) -> None:
        self._in_flight += 1

        def send(line: bytes) -> None:
            self._in_flight -= 1
            self.send_line(line + b"\n")
            self._finish_if_done()

        d = self._message(reply.items[0], Budget()).addCallback(send)
        d.addErrback(lambda f: _log.failure("RPC reply failed", f))

    def _run_batch(self, batch: Batch) -> None:
        """Run the members, a reactor turn every ``BATCH_SLICE`` seconds; reply in one line
        (RPC_REPLY_BUDGET shared). No other line of this client is read meanwhile."""
        self._in_flight += 1
        self._batch = True
        self.transport.pauseProducing()

        def done(line: bytes | None) -> None:
            self._in_flight -= 1
            self._batch = False
            if line is not None:
                self.send_line(line)
            if self._state == "open" and not self._paused and not self._eof:
                self.transport.resumeProducing()
            self._drain()

        d = Deferred.fromCoroutine(self._batch_line(batch)).addCallback(done)
        d.addErrback(lambda f: _log.failure("RPC batch failed", f))

    async def _batch_line(self, batch: Batch) -> bytes | None:
        budget = Budget()
        answers: list[Deferred[bytes]] = []
        started = _now()
        for member in batch.members:
            if _now() - started > BATCH_SLICE:
                await deferLater(self.server.clock, 0, lambda: None)
                started = _now()
            if self._state != "open":
                return None
            reply = self.server.dispatcher.dispatch_member(member, self)
            if reply is None:
                continue  # a notification
            answer = self._message(reply.items[0], budget)
            answers.append(answer)
            if answer.called:  # settled at once: encode before the next one is built
                await answer
        parts = await gatherResults(answers, consumeErrors=True)
        return b"[" + b",".join(parts) + b"]\n" if parts else None

    # -- output ---------------------------------------------------------------------
    def send_line(self, line: bytes) -> None:
        """Write one encoded line; drop the client if it lets too much pile up unread."""
        if self._state != "open":
            return
        self.server.message_size(len(line))
        self.transport.write(line)
        if self._paused:
            self._backlog += len(line)
            if self._backlog > self.server.max_backlog:
                _log.warn("dropping control client {peer}: it does not read", peer=self.peer)
                self._state = "closing"
                self.transport.abortConnection()

    def pauseProducing(self) -> None:
        if self._paused:
            return
        self._paused, self._backlog = True, 0
        if self._state == "open":
            self.transport.pauseProducing()  # read no more requests until it catches up

    def resumeProducing(self) -> None:
        if not self._paused:
            return
        self._paused, self._backlog = False, 0
        if self._state == "open":
            if not self._eof and not self._batch:
                self.transport.resumeProducing()
            self._drain()

    def stopProducing(self) -> None:
        self._paused = True

    # -- events ---------------------------------------------------------------------
    def subscribe(self, events: list[str] | None) -> None:
        """Receive ``event`` notifications: all of them (None) or only those named."""
        self._subscribed = True
        self._events = None if events is None else frozenset(events)

    def unsubscribe(self) -> None:
        self._subscribed, self._events = False, None

    def wants(self, event: str) -> bool:
        return self._subscribed and (self._events is None or event in self._events)


@with_connection
def events_subscribe(connection: ControlConnection, events: list[str] | None = None) -> Any:
    """Push event notifications to this connection (all events, or only those listed)."""
    require("events", events, list, optional=True)
    for i, name in enumerate(events or []):
        require(f"events[{i}]", name, str)
    connection.subscribe(events)
    return {"events": None if events is None else sorted(set(events))}


@with_connection
def events_unsubscribe(connection: ControlConnection) -> Any:
    """Stop pushing event notifications to this connection."""
    connection.unsubscribe()
    return {"events": []}


BUILTIN_METHODS: Mapping[str, Callable[..., Any]] = {
    "events.subscribe": events_subscribe,
    "events.unsubscribe": events_unsubscribe,
}


class ControlFactory(ServerFactory):
    noisy = False

    def __init__(self, server: ControlServer) -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> ControlConnection:
        return ControlConnection(self.server)


class ControlServer:
    """Methods, connections and access policy of the control socket (see module doc)."""

    def __init__(
        self,
        methods: Mapping[str, Callable[..., Any]],
        *,
        clock: IReactorTime,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        allowed_gid: int | None = None,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        close_timeout: float = CLOSE_TIMEOUT,
        our_uid: int | None = None,
        peer_cred: Callable[[Any], PeerCred | None] = transport_peer_cred,
        groups_of: Callable[[int, int], Any] = supplementary_groups,
    ) -> None:
        self.clock = clock  # close timeouts; the daemon passes its reactor, tests a Clock
        self.max_frame = max_frame
        self.max_clients = max_clients
        self.max_backlog = max_backlog
        self.close_timeout = close_timeout
        self._allowed_gid = allowed_gid
        self._our_uid = os.geteuid() if our_uid is None else our_uid
        self._peer_cred = peer_cred
        self._groups_of = groups_of
        self._connections: set[ControlConnection] = set()
        self._shutting_down = False
        self._drained: list[Deferred[None]] = []
        self.socket_path: Path | None = None  # set by listen()
        self.socket_dir_created = False  # listen() made the directory: its group is ours to set
        self.dispatcher = Dispatcher({})
        # told the size of every request line and reply line (the daemon trims after big ones)
        self.message_size: Callable[[int], None] = _ignore_size
        self.set_methods(methods)
        self.factory: ServerFactory = ControlFactory(self)

    def buildProtocol(self, addr: Any) -> ControlConnection:
        return self.factory.buildProtocol(addr)  # type: ignore[return-value]

    @property
    def methods(self) -> Mapping[str, Callable[..., Any]]:
        """Every callable method, built-ins included (read-only)."""
        return self.dispatcher.methods

    @property
    def connections(self) -> frozenset[ControlConnection]:
        return frozenset(self._connections)

    @property
    def allowed_gid(self) -> int | None:
        return self._allowed_gid

    def builtin_methods(self) -> dict[str, Callable[..., Any]]:
        """The server's own methods (``events.*``); set_methods always adds them."""
        return dict(BUILTIN_METHODS)

    def set_methods(self, methods: Mapping[str, Callable[..., Any]]) -> None:
        """Replace the method table (e.g. once plugins have added theirs)."""
        clash = sorted(n for n, fn in BUILTIN_METHODS.items() if methods.get(n, fn) is not fn)
        if clash:
            _log.warn("built-in RPC methods win over: {names}", names=", ".join(clash))
        self.dispatcher.set_methods({**methods, **BUILTIN_METHODS})

    def set_allowed_gid(self, gid: int | None) -> None:
        """Change the allowed group live; connected clients no longer allowed are closed."""
        self._allowed_gid = gid
        if self.socket_path is not None and gid is not None:
            give_group(self.socket_path, gid, self.socket_dir_created)
        for conn in list(self._connections):
            if conn.peer is None or not self._allows(conn.peer):
                conn.close(self._denied(conn.peer))

    def publish(self, event: str, params: Mapping[str, Any]) -> None:
        """Send an ``event`` notification to every connection subscribed to ``event``
        (encoded only when one is: a batch add of 10,000 makes 20,000 events)."""
        targets = [conn for conn in self._connections if conn.wants(event)]
        if not targets:
            return
        text = encode_event(event, params)
        if text is None:
            return
        line = text.encode("utf-8") + b"\n"
        for conn in targets:
            conn.send_line(line)

    def close_all(self) -> Deferred[None]:
        """Close every connection and refuse new ones; fires when all are gone."""
        self._shutting_down = True
        for conn in list(self._connections):
            conn.close()
        if not self._connections:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drained.append(d)
        return d

    # -- used by ControlConnection ----------------------------------------------------
    def _allows(self, cred: PeerCred) -> bool:
        return is_allowed(cred, self._our_uid, self._allowed_gid, self._groups_of)

    def _denied(self, cred: PeerCred | None) -> Message:
        who = "unknown peer" if cred is None else f"uid {cred.uid} (pid {cred.pid})"
        data = None if cred is None else {"uid": cred.uid}
        return error_message(ACCESS_DENIED, f"access denied: {who} may not use this socket", data)

    def _admit(self, conn: ControlConnection) -> Message | None:
        """None to accept ``conn``, else the error line it gets before being closed."""
        cred = conn.peer = self._peer_cred(conn.transport)
        if cred is None or not self._allows(cred):
            _log.warn("control socket: refused {peer}", peer=cred)
            return self._denied(cred)
        if self._shutting_down:
            return error_message(SHUTTING_DOWN, "the daemon is shutting down")
        if len(self._connections) >= self.max_clients:
            _log.warn("control socket: refused {peer}: {n} clients", peer=cred, n=self.max_clients)
            return error_message(
                TOO_MANY_CLIENTS,
                f"too many control clients (at most {self.max_clients}); try again later",
                {"max_clients": self.max_clients},
            )
        self._connections.add(conn)
        return None

    def _forget(self, conn: ControlConnection) -> None:
        self._connections.discard(conn)
        if not self._connections:
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(None)


def _ignore_size(size: int) -> None:
    """``ControlServer.message_size`` until the daemon sets one."""


def listen(reactor: Any, path: Path, server: ControlServer) -> IListeningPort:
    """Listen for control clients on the socket file ``path``.

    Directory 0750 if missing, socket 0660 from birth, a stale socket replaced;
    raises BtdError if another daemon answers there or ``path`` is not a socket.
    The file is removed when the port stops listening.
    """
    path = Path(path)
    port, created = bind_control_socket(reactor, path, server.factory)
    server.socket_path, server.socket_dir_created = path, created
    if server.allowed_gid is not None:
        give_group(path, server.allowed_gid, created)
    return port

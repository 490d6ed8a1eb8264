"""``POST /rpc``: btd's own JSON-RPC over HTTP, through the control socket's Dispatcher.

The same methods table and the same Dispatcher (parsing, limits, batch cap, errors) as
the Unix socket; one request body is one line's worth. Batch members run one after the
other, a reactor turn between them, and share one reply budget, as on the socket. A body
that is only notifications answers 204. ``events.subscribe`` has no connection to push to
here: it answers an error pointing at ``GET /events``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web import resource, server

from btd.core.rpc.dispatch import Batch, Dispatcher, PendingReply, Reply, settle
from btd.core.rpc.errors import INVALID_REQUEST, RpcError
from btd.core.rpc.replies import Budget, encode_sliced

_log = Logger()

JSON = b"application/json"


class HttpCaller:
    """What ``@with_connection`` methods get over HTTP: no connection to push events to."""

    def subscribe(self, events: Any) -> None:
        raise RpcError(INVALID_REQUEST, "events are pushed over GET /events on HTTP")

    def unsubscribe(self) -> None:
        raise RpcError(INVALID_REQUEST, "events are pushed over GET /events on HTTP")


def write_when_done(request: server.Request, d: Deferred[tuple[int, bytes, bytes]]) -> Any:
    """Finish ``request`` with (code, content type, body) when ``d`` fires, unless the
    client went away meanwhile."""
    gone: list[bool] = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))

    def send(answer: tuple[int, bytes, bytes]) -> None:
        if gone:
            return
        code, ctype, body = answer
        request.setResponseCode(code)
        if ctype:
            request.setHeader(b"content-type", ctype)
        request.write(body)
        request.finish()

    def failed(failure: Any) -> None:
        _log.failure("http: answer failed", failure)
        if not gone:
            request.setResponseCode(500)
            request.finish()

    d.addCallback(send).addErrback(failed)
    return server.NOT_DONE_YET


class RpcResource(resource.Resource):
    isLeaf = True

    def __init__(self, methods: Callable[[], Mapping[str, Callable[..., Any]]], clock: Any) -> None:
        super().__init__()
        self._methods = methods
        self._dispatcher: Dispatcher | None = None
        self._table: Mapping[str, Any] | None = None
        self.clock = clock
        self.caller = HttpCaller()

    @property
    def dispatcher(self) -> Dispatcher:
        table = self._methods()
        if self._dispatcher is None or table is not self._table:
            self._dispatcher, self._table = Dispatcher(table), table
        return self._dispatcher

    def render_GET(self, request: server.Request) -> bytes:
        request.setResponseCode(405)
        request.setHeader(b"allow", b"POST")
        return b"POST JSON-RPC 2.0 requests here\n"

    def render_POST(self, request: server.Request) -> Any:
        ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if ctype != JSON:  # a cross-site form cannot send this without a CORS preflight
            request.setResponseCode(415)
            return b"Content-Type must be application/json\n"
        body = request.content.read() if request.content is not None else b""
        return write_when_done(request, self.answer(body))

    def answer(self, body: bytes) -> Deferred[tuple[int, bytes, bytes]]:
        reply = self.dispatcher.dispatch(body, self.caller)
        if reply is None:
            return succeed((204, b"", b""))
        if isinstance(reply, Batch):
            d = Deferred.fromCoroutine(self._batch(reply))
        else:
            d = self._message(reply.items[0], Budget())
        return d.addCallback(lambda data: (200, JSON, data))

    def _message(self, item: Any, budget: Budget) -> Deferred[bytes]:
        d = settle(item) if isinstance(item, PendingReply) else succeed(item)
        return d.addCallback(encode_sliced, self.clock, budget)

    async def _batch(self, batch: Batch) -> bytes:
        budget = Budget()
        answers: list[Deferred[bytes]] = []
        for i, member in enumerate(batch.members):
            if i:
                await deferLater(self.clock, 0, lambda: None)
            reply: Reply | None = self.dispatcher.dispatch_member(member, self.caller)
            if reply is not None:
                answers.append(self._message(reply.items[0], budget))
        parts = await gatherResults(answers, consumeErrors=True)
        return b"[" + b",".join(parts) + b"]"

"""``GET /events``: the ``events.subscribe`` notifications as server-sent events.

Each event is one ``data:`` line holding the same JSON-RPC notification the control
socket pushes (``{"jsonrpc": "2.0", "method": "event", "params": {"event": ...}}``), so a
browser's ``EventSource.onmessage`` gets them all; ``?events=completed,added`` keeps only
those kinds. A client that stops reading is dropped once HTTP_EVENTS_BACKLOG bytes wait
for it; never buffered without bound. At most HTTP_EVENTS_CLIENTS streams (503 beyond).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import resource, server
from zope.interface import implementer

from btd.core.limits import HTTP_EVENTS_BACKLOG, HTTP_EVENTS_CLIENTS
from btd.core.rpc.dispatch import encode_event

_log = Logger()


@implementer(IPushProducer)
class Stream:
    """One /events client: a push producer, so the transport says when it is backed up."""

    def __init__(self, hub: EventHub, request: server.Request, kinds: frozenset[str] | None):
        self.hub, self.request, self.kinds = hub, request, kinds
        self.paused = False
        self.backlog = 0
        self.open = True

    def send(self, data: bytes) -> None:
        if not self.open:
            return
        self.request.write(data)
        if self.paused:
            self.backlog += len(data)
            if self.backlog > self.hub.max_backlog:
                _log.warn("http: dropping an /events client that does not read")
                self.close(abort=True)

    def close(self, abort: bool = False) -> None:
        if not self.open:
            return
        self.open = False
        self.hub.streams.discard(self)
        transport = self.request.channel.transport if self.request.channel else None
        if abort and transport is not None:
            transport.abortConnection()
        else:
            self.request.unregisterProducer()
            self.request.finish()

    def pauseProducing(self) -> None:
        self.paused, self.backlog = True, 0

    def resumeProducing(self) -> None:
        self.paused, self.backlog = False, 0

    def stopProducing(self) -> None:
        self.paused = True


class EventHub:
    """The open streams, and the one encoding of each event they all get."""

    def __init__(
        self, max_clients: int = HTTP_EVENTS_CLIENTS, max_backlog: int = HTTP_EVENTS_BACKLOG
    ):
        self.streams: set[Stream] = set()
        self.max_clients = max_clients
        self.max_backlog = max_backlog

    def publish(self, event: str, params: Mapping[str, Any]) -> None:
        if not self.streams:
            return
        text = encode_event(event, params)
        if text is None:
            return
        data = b"data: " + text.encode("utf-8") + b"\n\n"
        for stream in list(self.streams):
            if stream.kinds is None or event in stream.kinds:
                stream.send(data)

    def close_all(self) -> None:
        for stream in list(self.streams):
            stream.close()


class EventsResource(resource.Resource):
    isLeaf = True

    def __init__(self, hub: EventHub) -> None:
        super().__init__()
        self.hub = hub

    def render_GET(self, request: server.Request) -> Any:
        if len(self.hub.streams) >= self.hub.max_clients:
            request.setResponseCode(503)
            return f"at most {self.hub.max_clients} event streams at once\n".encode()
        kinds = None
        raw = request.args.get(b"events")
        if raw:
            kinds = frozenset(k for v in raw for k in v.decode("utf-8", "replace").split(",") if k)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")
        stream = Stream(self.hub, request, kinds)
        self.hub.streams.add(stream)
        request.registerProducer(stream, True)
        request.notifyFinish().addBoth(lambda _: self._gone(stream))
        request.write(b": btd events\n\n")
        return server.NOT_DONE_YET

    def _gone(self, stream: Stream) -> None:
        stream.open = False
        self.hub.streams.discard(stream)

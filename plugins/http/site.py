"""The resource tree of the HTTP plugin.

``/rpc`` and ``/events`` (btd's JSON-RPC), ``/transmission/rpc`` (Transmission's RPC, with
its ``X-Transmission-Session-Id`` handshake). ``/`` (btd's web UI, plugins/http/ui.py) and
``/transmission/web/`` (a served web root) hang here too; anything else is 404, and
twisted.web never maps a URL onto the file system by itself (``..`` is a child name no
resource has).
"""

from __future__ import annotations

from typing import Any

from twisted.web import resource, server

from btd.core.rpc.json_text import dumps
from btd.plugins.http.events import EventHub, EventsResource
from btd.plugins.http.rpc_resource import RpcResource, write_when_done
from btd.plugins.http.transmission import TransmissionRpc
from btd.plugins.http.ui import add_ui

SESSION_HEADER = b"x-transmission-session-id"


class TransmissionResource(resource.Resource):
    """``/transmission/rpc``: 409 with the session id until the client sends it back (it
    is also what keeps a cross-site form from posting here)."""

    isLeaf = True

    def __init__(self, rpc: TransmissionRpc) -> None:
        super().__init__()
        self.rpc = rpc

    def render(self, request: server.Request) -> Any:
        session_id = self.rpc.session_id.encode()
        request.setHeader(SESSION_HEADER, session_id)
        if request.getHeader(SESSION_HEADER) != session_id:
            request.setResponseCode(409)
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            return (
                b"<h1>409: Conflict</h1><p>Your request had an invalid session-id header."
                b"</p><p><code>X-Transmission-Session-Id: " + session_id + b"</code></p>"
            )
        if request.method != b"POST":
            request.setResponseCode(405)
            request.setHeader(b"allow", b"POST")
            return b"POST Transmission RPC requests here\n"
        body = request.content.read() if request.content is not None else b""
        d = self.rpc.handle(body).addCallback(
            lambda reply: (
                200,
                b"application/json",
                dumps(reply),
            )
        )
        return write_when_done(request, d)


class TransmissionRoot(resource.Resource):
    """``/transmission`` and ``/transmission/``: to the web client when one is served
    (Transmission redirects there too), else 404."""

    def __init__(self, has_web: bool) -> None:
        super().__init__()
        self.has_web = has_web

    def render(self, request: server.Request) -> bytes:
        if not self.has_web or request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(404)
            return b"not found\n"
        request.setResponseCode(301)
        request.setHeader(b"location", b"/transmission/web/")
        return b"moved\n"


def build_root(
    rpc: RpcResource,
    hub: EventHub,
    transmission: TransmissionRpc,
    web: resource.Resource | None = None,
) -> resource.Resource:
    """The tree; ``web`` (a served folder at /transmission/web/) when one is configured."""
    root = resource.Resource()
    add_ui(root)  # /, /ui/, /session, /login, /logout
    root.putChild(b"rpc", rpc)
    root.putChild(b"events", EventsResource(hub))
    trans = TransmissionRoot(web is not None)
    trans.putChild(b"rpc", TransmissionResource(transmission))
    if web is not None:
        trans.putChild(b"web", web)
        trans.putChild(b"", trans)  # /transmission/ -> /transmission/web/, as Transmission
    root.putChild(b"transmission", trans)
    return root

"""JSON-RPC error codes btd answers with (documented in docs/RPC.md).

-32768..-32000 is reserved by JSON-RPC 2.0; btd's own codes are in -32099..-32000
("implementation-defined server errors"). Every error carries a message a person
understands and, where one field is at fault, ``data = {"field": name, ...}``.
"""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

NOT_FOUND = -32001  # no torrent matches the info hash (prefix)
AMBIGUOUS = -32002  # an info-hash prefix matches several torrents
INVALID_TORRENT = -32003  # metainfo or magnet refused
STORAGE = -32004  # disk error (read, write, full, permissions)
SHUTTING_DOWN = -32005  # the daemon is stopping and takes no new work
NO_METADATA = -32006  # a magnet still waiting for its metadata cannot do that yet
FRAME_TOO_LARGE = -32010  # sent once before the connection is closed
ACCESS_DENIED = -32011  # peer credentials refused, sent before closing
TOO_MANY_CLIENTS = -32012  # the control socket's client limit is reached, sent before closing
REPLY_TOO_LARGE = -32013  # a result over the reply budget (core/limits.py RPC_REPLY_BUDGET)
PLUGIN_ERROR = -32020  # a plugin's RPC method failed


class RpcError(Exception):
    """Raise from an RPC method to answer with a documented error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def invalid_params(field: str, message: str) -> RpcError:
    """The common case: one parameter is wrong; ``data.field`` names it."""
    return RpcError(INVALID_PARAMS, f"{field}: {message}", {"field": field})

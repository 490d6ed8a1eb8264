"""KRPC (BEP 5): the DHT's bencoded UDP messages, decoded strictly, encoded simply.

Pure: no sockets, no clock. ``decode_message`` turns one datagram into a Query (one class
per method), a Response or an Error, and raises ``KrpcError`` -- never anything else --
for whatever it does not accept: bad bencode, missing or mistyped keys, ids that are not
20 bytes, compact node/peer strings of the wrong length. The node adapter counts those
and drops them without answering (answering garbage would make us an amplifier).

Responses do not name their method, so a Response carries every field a response may
have (``nodes``, ``values``, ``token``); the caller knows what it asked. Compact node info
is IPv4 only (26 bytes: id, address, port; BEP 32 ``nodes6`` is ignored), compact peers
are 6 bytes (18-byte IPv6 values are skipped).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from btd.core import compact
from btd.core.bencode import decode, encode
from btd.core.errors import BencodeError, BtdError

ID_LEN = 20
NODE_LEN = 26
PEER_LEN = compact.V4_LEN
MAX_DATAGRAM = 8192  # far above any real KRPC message; bounds decoding work
MAX_TID = 32
MAX_TOKEN = 64

ERROR_GENERIC = 201
ERROR_SERVER = 202
ERROR_PROTOCOL = 203
ERROR_METHOD_UNKNOWN = 204

METHODS = ("ping", "find_node", "get_peers", "announce_peer")

Address = tuple[str, int]


class KrpcError(BtdError):
    """A datagram that is not a KRPC message we accept, or a query that failed."""


@dataclass(frozen=True)
class NodeInfo:
    """A DHT node's contact: its id and its UDP address."""

    node_id: bytes
    host: str
    port: int

    @property
    def address(self) -> Address:
        return (self.host, self.port)


@dataclass(frozen=True)
class Ping:
    tid: bytes
    sender: bytes
    read_only: bool = False


@dataclass(frozen=True)
class FindNode:
    tid: bytes
    sender: bytes
    target: bytes
    read_only: bool = False


@dataclass(frozen=True)
class GetPeers:
    tid: bytes
    sender: bytes
    info_hash: bytes
    read_only: bool = False


@dataclass(frozen=True)
class AnnouncePeer:
    tid: bytes
    sender: bytes
    info_hash: bytes
    port: int
    token: bytes
    implied_port: bool = False
    read_only: bool = False


@dataclass(frozen=True)
class UnknownQuery:
    """A query for a method we do not speak: answered with error 204."""

    tid: bytes
    sender: bytes
    method: bytes
    read_only: bool = False


Query = Ping | FindNode | GetPeers | AnnouncePeer | UnknownQuery


@dataclass(frozen=True)
class Response:
    tid: bytes
    sender: bytes
    nodes: tuple[NodeInfo, ...] = ()
    values: tuple[Address, ...] = ()
    token: bytes | None = None


@dataclass(frozen=True)
class Error:
    tid: bytes
    code: int
    message: str


Message = Ping | FindNode | GetPeers | AnnouncePeer | UnknownQuery | Response | Error


# -- compact encodings ------------------------------------------------------------------------
def encode_peer(host: str, port: int) -> bytes:
    """A 6-byte compact peer (the DHT speaks IPv4 here); KrpcError otherwise."""
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise KrpcError(f"not an IPv4 address: {host!r}") from None
    try:
        return compact.encode_peer(host, port)
    except compact.CompactError as exc:
        raise KrpcError(str(exc)) from None


def decode_peer(data: bytes) -> Address:
    if len(data) != PEER_LEN:
        raise KrpcError(f"compact peer must be {PEER_LEN} bytes, got {len(data)}")
    return compact.decode_peer(data)


def encode_nodes(nodes: list[NodeInfo] | tuple[NodeInfo, ...]) -> bytes:
    out = bytearray()
    for node in nodes:
        if len(node.node_id) != ID_LEN:
            raise KrpcError("node id must be 20 bytes")
        out += node.node_id + encode_peer(node.host, node.port)
    return bytes(out)


def decode_nodes(data: bytes) -> tuple[NodeInfo, ...]:
    if len(data) % NODE_LEN:
        raise KrpcError(f"compact nodes length {len(data)} is not a multiple of {NODE_LEN}")
    out = []
    for i in range(0, len(data), NODE_LEN):
        host, port = decode_peer(data[i + ID_LEN : i + NODE_LEN])
        out.append(NodeInfo(data[i : i + ID_LEN], host, port))
    return tuple(out)


def usable(host: str, port: int) -> bool:
    """An address worth contacting: a port, and a unicast IPv4 address."""
    if not 0 < port <= 0xFFFF:
        return False
    try:
        ip = ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return not (
        ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255")
    )


# -- encoding ---------------------------------------------------------------------------------
def _query(tid: bytes, method: bytes, args: dict[bytes, Any]) -> bytes:
    return encode({b"t": tid, b"y": b"q", b"q": method, b"a": args})


def encode_query(query: Query) -> bytes:
    """A query datagram; ``sender`` is our own node id."""
    if isinstance(query, Ping):
        return _query(query.tid, b"ping", {b"id": query.sender})
    if isinstance(query, FindNode):
        return _query(query.tid, b"find_node", {b"id": query.sender, b"target": query.target})
    if isinstance(query, GetPeers):
        return _query(query.tid, b"get_peers", {b"id": query.sender, b"info_hash": query.info_hash})
    if isinstance(query, AnnouncePeer):
        args = {
            b"id": query.sender,
            b"info_hash": query.info_hash,
            b"port": query.port,
            b"token": query.token,
            b"implied_port": 1 if query.implied_port else 0,
        }
        return _query(query.tid, b"announce_peer", args)
    return _query(query.tid, query.method, {b"id": query.sender})


def encode_response(
    tid: bytes,
    sender: bytes,
    *,
    nodes: list[NodeInfo] | tuple[NodeInfo, ...] | None = None,
    values: list[Address] | tuple[Address, ...] | None = None,
    token: bytes | None = None,
) -> bytes:
    r: dict[bytes, Any] = {b"id": sender}
    if nodes is not None:
        r[b"nodes"] = encode_nodes(nodes)
    if values is not None:
        r[b"values"] = [encode_peer(h, p) for h, p in values]
    if token is not None:
        r[b"token"] = token
    return encode({b"t": tid, b"y": b"r", b"r": r})


def encode_error(tid: bytes, code: int, message: str) -> bytes:
    return encode({b"t": tid, b"y": b"e", b"e": [code, message.encode("utf-8")]})


# -- decoding ---------------------------------------------------------------------------------
def _bytes(
    d: dict[bytes, Any],
    key: bytes,
    what: str,
    *,
    length: int | None = None,
    max_len: int | None = None,
) -> bytes:
    value = d.get(key)
    if not isinstance(value, bytes):
        raise KrpcError(f"{what} must be a byte string")
    if length is not None and len(value) != length:
        raise KrpcError(f"{what} must be {length} bytes, got {len(value)}")
    if max_len is not None and not 0 < len(value) <= max_len:
        raise KrpcError(f"{what} must be 1..{max_len} bytes, got {len(value)}")
    return value


def _dict(value: Any, what: str) -> dict[bytes, Any]:
    if not isinstance(value, dict):
        raise KrpcError(f"{what} must be a dictionary")
    return value


def _flag(value: Any) -> bool:
    return type(value) is int and value != 0


def decode_message(data: bytes) -> Message:
    """One datagram -> a message; KrpcError for anything we do not accept."""
    if len(data) > MAX_DATAGRAM:
        raise KrpcError(f"datagram of {len(data)} bytes is too large")
    try:
        msg = decode(data, max_depth=8, max_tokens=1024, max_size=MAX_DATAGRAM)
    except BencodeError as exc:
        raise KrpcError(f"bad bencode: {exc}") from None
    msg = _dict(msg, "a KRPC message")
    tid = _bytes(msg, b"t", "transaction id", max_len=MAX_TID)
    kind = msg.get(b"y")
    if kind == b"q":
        return _decode_query(msg, tid)
    if kind == b"r":
        return _decode_response(msg, tid)
    if kind == b"e":
        return _decode_error(msg, tid)
    raise KrpcError(f"unknown message type {kind!r}")


def _decode_query(msg: dict[bytes, Any], tid: bytes) -> Query:
    method = msg.get(b"q")
    if not isinstance(method, bytes) or not method:
        raise KrpcError("query method must be a non-empty byte string")
    args = _dict(msg.get(b"a"), "query arguments")
    sender = _bytes(args, b"id", "node id", length=ID_LEN)
    ro = _flag(msg.get(b"ro"))
    if method == b"ping":
        return Ping(tid, sender, ro)
    if method == b"find_node":
        return FindNode(tid, sender, _bytes(args, b"target", "target", length=ID_LEN), ro)
    if method == b"get_peers":
        return GetPeers(tid, sender, _bytes(args, b"info_hash", "info_hash", length=ID_LEN), ro)
    if method == b"announce_peer":
        info_hash = _bytes(args, b"info_hash", "info_hash", length=ID_LEN)
        token = _bytes(args, b"token", "token", max_len=MAX_TOKEN)
        implied = _flag(args.get(b"implied_port"))
        port = args.get(b"port", 0 if implied else None)
        if type(port) is not int or not 0 <= port <= 0xFFFF or (port == 0 and not implied):
            raise KrpcError(f"announce_peer port must be 1..65535, got {port!r}")
        return AnnouncePeer(tid, sender, info_hash, port, token, implied, ro)
    return UnknownQuery(tid, sender, method[:64], ro)


def _decode_response(msg: dict[bytes, Any], tid: bytes) -> Response:
    r = _dict(msg.get(b"r"), "response body")
    sender = _bytes(r, b"id", "node id", length=ID_LEN)
    nodes: tuple[NodeInfo, ...] = ()
    if b"nodes" in r:
        nodes = decode_nodes(_bytes(r, b"nodes", "nodes"))
    values: list[Address] = []
    if b"values" in r:
        raw = r[b"values"]
        if not isinstance(raw, list):
            raise KrpcError("values must be a list")
        for item in raw:
            if not isinstance(item, bytes):
                raise KrpcError("each value must be a byte string")
            if len(item) == 18:  # an IPv6 peer (BEP 32): not ours to use
                continue
            values.append(decode_peer(item))
    token = None
    if b"token" in r:
        token = _bytes(r, b"token", "token", max_len=MAX_TOKEN)
    return Response(tid, sender, nodes, tuple(values), token)


def _decode_error(msg: dict[bytes, Any], tid: bytes) -> Error:
    e = msg.get(b"e")
    if not isinstance(e, list) or len(e) < 2:
        raise KrpcError("error body must be a list [code, message]")
    code, text = e[0], e[1]
    if type(code) is not int or not isinstance(text, bytes):
        raise KrpcError("error body must be [integer, byte string]")
    return Error(tid, code, text[:200].decode("utf-8", "replace"))

"""The DHT state file: our node id and the nodes we knew, so a restart rejoins at once.

Format: a bencoded dict ``{"id": <20 bytes>, "nodes": <compact node info, 26 bytes
each>, "v": 1}``. ``decode_state`` raises StateError for anything else (the caller logs
it and starts afresh); the file is written atomically (temporary file, fsync, rename)
so a crash never leaves half a file. File access runs off the reactor thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from btd.core.bencode import decode, encode
from btd.core.errors import BencodeError, BtdError
from btd.plugins.dht.krpc import KrpcError, NodeInfo, decode_nodes, encode_nodes

VERSION = 1
MAX_NODES = 1000
MAX_SIZE = 1 << 20


class StateError(BtdError):
    """The state file is not one we wrote."""


def encode_state(node_id: bytes, nodes: list[NodeInfo]) -> bytes:
    return encode({b"id": node_id, b"nodes": encode_nodes(nodes[:MAX_NODES]), b"v": VERSION})


def decode_state(data: bytes) -> tuple[bytes, list[NodeInfo]]:
    try:
        value = decode(data, max_depth=4, max_tokens=64, max_size=MAX_SIZE)
    except BencodeError as exc:
        raise StateError(f"not bencoded: {exc}") from None
    if not isinstance(value, dict) or value.get(b"v") != VERSION:
        raise StateError("not a btd DHT state file (version 1)")
    node_id = value.get(b"id")
    if not isinstance(node_id, bytes) or len(node_id) != 20:
        raise StateError("node id must be 20 bytes")
    raw = value.get(b"nodes", b"")
    if not isinstance(raw, bytes):
        raise StateError("nodes must be a byte string")
    try:
        nodes = list(decode_nodes(raw))
    except KrpcError as exc:
        raise StateError(str(exc)) from None
    return node_id, nodes[:MAX_NODES]


def read_state(path: Path) -> bytes | None:
    """The file's bytes, or None if there is none yet (other OSErrors propagate)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIZE + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_SIZE:
        raise StateError(f"larger than {MAX_SIZE} bytes")
    return data


def write_state(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)

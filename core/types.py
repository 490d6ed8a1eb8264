"""Glossary types shared by every layer.

- info hash: SHA-1 of the raw bencoded ``info`` dictionary; names a torrent (20 bytes).
- peer id: the 20 bytes a client sends in its handshake.
- piece: a fixed-length slice of the torrent's concatenated files, checked by SHA-1.
- block: a 16 KiB slice of a piece; the unit of request/piece messages.
"""

from __future__ import annotations

from typing import NamedTuple, NewType

InfoHash = NewType("InfoHash", bytes)
PeerId = NewType("PeerId", bytes)
PieceIndex = int

BLOCK_SIZE = 16 * 1024

ENCRYPTION_POLICIES: tuple[str, ...] = ("prefer", "require", "plain")
"""MSE/PE (core/wire/mse.py): ``prefer`` dials encrypted first and accepts both,
``require`` refuses plain connections, ``plain`` dials plain (and still accepts encrypted)."""

PeerAddress = tuple[str, int]
"""A peer is named by host and port (loopback peers share an address)."""


class BlockRef(NamedTuple):
    """One block of one piece: what a request or a piece message names.

    A NamedTuple, not a frozen dataclass: one is built per block requested (65536 per GiB)
    and a NamedTuple is about twice as quick to build; it is as immutable and hashable.
    """

    piece: int
    begin: int
    length: int


def format_address(address: PeerAddress) -> str:
    """``host:port`` (``[v6]:port``): how addresses appear in RPC answers and logs; a web
    seed's (its URL, port 0: plugins/web_seed/) is its URL."""
    host, port = address
    if "://" in host:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def hex_hash(info_hash: bytes) -> str:
    """The 40-hex form in which RPC, logs and btctl name a torrent."""
    return info_hash.hex()


def torrent_label(info_hash: bytes, name: str) -> str:
    """``1a2b3c4d "ubuntu.iso"``: how the story-telling log lines name a torrent."""
    return f'{info_hash.hex()[:8]} "{name}"'

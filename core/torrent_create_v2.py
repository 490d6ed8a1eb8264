"""Make a BitTorrent v2 or hybrid (v1 + v2) .torrent (BEP 52; ``btctl create --v2/--hybrid``).

Pure, like ``torrent_create`` (whose scan, piece-size rules and metainfo writer it uses).
The output matches libtorrent's ``create_torrent`` for the same files and piece size, so
both compute the same info hashes:

- v2: ``meta version`` 2 and a ``file tree`` whose leaves hold ``length`` and, for a
  non-empty file, its ``pieces root`` (core/merkle.py); ``piece layers`` at the top level
  for files longer than one piece.
- hybrid: the v2 keys plus the v1 ``pieces`` and ``files``/``length`` of the same data,
  every non-empty file of a multi-file torrent followed by a pad file (``attr: "p"``, path
  ``.pad/<length>``) up to the next piece boundary, so each file starts a piece in both
  swarms (the last one too, as libtorrent does).

Each file is read once, in large reads; its 16 KiB blocks feed SHA-256 and (hybrid) its
pieces SHA-1, the last piece of each file zero-padded as the pad file makes it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from btd.core.bencode import encode
from btd.core.merkle import BLOCK, block_hashes, file_hashes
from btd.core.torrent_create import (
    CreatedTorrent,
    FileList,
    SourceFile,
    TorrentCreateError,
    build_metainfo,
    prepare,
)

READ_SIZE = 4 * 1024 * 1024  # bytes per read: a whole number of pieces and of blocks


def _read_file(
    source: SourceFile,
    piece_length: int,
    v1: bool,
    padded: bool,
    progress: Callable[[int], None],
) -> tuple[list[bytes], bytes]:
    """(the file's block hashes, its v1 piece hashes; the last piece zero-padded when a
    pad file follows it)."""
    leaves: list[bytes] = []
    pieces: list[bytes] = []
    chunk = max(piece_length, READ_SIZE // piece_length * piece_length)
    left = source.length
    try:
        with open(source.path, "rb", buffering=0) as f:
            while left:
                data = f.read(min(chunk, left))
                if not data:
                    raise TorrentCreateError(f"{source.path}: the file shrank while hashing")
                left -= len(data)
                leaves += block_hashes(data)
                if v1:
                    for i in range(0, len(data), piece_length):
                        piece = data[i : i + piece_length]
                        if padded and len(piece) < piece_length:  # its pad file follows
                            piece += bytes(piece_length - len(piece))
                        pieces.append(hashlib.sha1(piece).digest())
                progress(len(data))
    except OSError as exc:
        raise TorrentCreateError(f"cannot read {source.path}: {exc.strerror or exc}") from None
    return leaves, b"".join(pieces)


def _tree_leaf(tree: dict[bytes, Any], parts: Sequence[bytes], leaf: dict[bytes, Any]) -> None:
    node = tree
    for part in parts:
        node = node.setdefault(part, {})
    node[b""] = leaf


def build_v2(
    files: FileList,
    piece_length: int,
    *,
    hybrid: bool,
    private: bool = False,
    progress: Callable[[int], None] = lambda n: None,
) -> tuple[dict[bytes, Any], dict[bytes, bytes]]:
    """(the info dictionary, the ``piece layers``) of a v2 or hybrid torrent."""
    if piece_length < BLOCK or piece_length & (piece_length - 1):
        raise TorrentCreateError("a v2 piece size is a power of two, 16 KiB or more")
    tree: dict[bytes, Any] = {}
    layers: dict[bytes, bytes] = {}
    v1_files: list[dict[bytes, Any]] = []
    v1_pieces: list[bytes] = []
    for source in files.files:
        parts = [files.name.encode()] if not files.multi_file else []
        parts += [part.encode() for part in source.rel]
        leaf: dict[bytes, Any] = {b"length": source.length}
        entry: dict[bytes, Any] = {b"length": source.length, b"path": parts}
        if source.executable:
            leaf[b"attr"] = entry[b"attr"] = b"x"
        if source.length:
            leaves, pieces = _read_file(source, piece_length, hybrid, files.multi_file, progress)
            pieces_root, layer = file_hashes(leaves, piece_length)
            leaf[b"pieces root"] = pieces_root
            if layer:
                layers[pieces_root] = b"".join(layer)
            v1_pieces.append(pieces)
        _tree_leaf(tree, parts, leaf)
        v1_files.append(entry)
        tail = -source.length % piece_length
        if source.length and tail:
            v1_files.append({b"attr": b"p", b"length": tail, b"path": [b".pad", b"%d" % tail]})
    info: dict[bytes, Any] = {
        b"file tree": tree,
        b"meta version": 2,
        b"name": files.name.encode(),
        b"piece length": piece_length,
    }
    if private:
        info[b"private"] = 1
    if hybrid:
        info[b"pieces"] = b"".join(v1_pieces)
        if files.multi_file:
            info[b"files"] = v1_files
        else:
            only = v1_files[0]
            info[b"length"] = only[b"length"]
            if b"attr" in only:
                info[b"attr"] = only[b"attr"]
    return info, layers


def create_torrent_v2(
    path: str | os.PathLike[str],
    *,
    hybrid: bool = False,
    piece_length: int | None = None,
    trackers: Sequence[str] = (),
    private: bool = False,
    comment: str | None = None,
    created_by: str | None = None,
    creation_date: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    exclude: Iterable[Path] = (),
) -> CreatedTorrent:
    """Scan ``path``, hash it and return the v2 (or hybrid) .torrent.

    ``info_hash`` is what the swarm is joined with: the v1 hash of a hybrid, the first 20
    bytes of the v2 hash otherwise; ``info_hash_v2`` is the whole SHA-256."""
    files, size = prepare(path, piece_length, trackers, exclude)
    total = files.total_length
    done = [0]

    def report(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    info, layers = build_v2(files, size, hybrid=hybrid, private=private, progress=report)
    info_bytes = encode(info)
    v2 = hashlib.sha256(info_bytes).digest()
    data = build_metainfo(
        info, trackers=trackers, comment=comment, created_by=created_by,
        creation_date=creation_date, extra={b"piece layers": layers},
    )  # fmt: skip
    return CreatedTorrent(
        data=data,
        info_hash=hashlib.sha1(info_bytes).digest() if hybrid else v2[:20],
        name=files.name,
        piece_length=size,
        num_pieces=sum(-(-f.length // size) for f in files.files),  # each file starts one
        total_length=total,
        files=files.files,
        skipped=files.skipped,
        info_hash_v2=v2,
    )

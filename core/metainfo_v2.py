"""BitTorrent v2 metainfo (BEP 52): the ``file tree`` and the ``piece layers``.

Pure. A v2 torrent is laid out the way libtorrent lays it out, and the way a hybrid's v1
half already is: files one after the other in file-tree order, each non-empty file but the
last followed by padding up to the next piece boundary, so every piece lies in one file.
Each piece is then checked by SHA-256 merkle hashes (:class:`V2Pieces`) instead of SHA-1:
against its file's piece layer, or for a file of one piece, against the file's
``pieces root``. The piece layers are checked against the roots when the torrent is read,
so a wrong layer is refused at once rather than failing every piece.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from btd.core.errors import MetainfoError
from btd.core.merkle import BLOCK, HASH_SIZE, block_hashes, root


@dataclass(frozen=True, slots=True)
class V2File:
    """One file of the tree, in order: its path elements (unsanitized), length, root."""

    path: tuple[bytes, ...]
    length: int
    root: bytes | None  # None for an empty file
    executable: bool = False


@dataclass(frozen=True, slots=True)
class V2Pieces:
    """Per piece: the hash it must have (32 bytes each, concatenated), the number of file
    bytes in it, and whether that hash is a whole file's root (a file of one piece)."""

    piece_length: int
    expected: bytes
    lengths: tuple[int, ...]
    whole_file: bytes  # one byte per piece: 1 when ``expected`` is the file's pieces root
    layers: tuple[tuple[bytes, int, int], ...] = ()
    """(pieces root, first piece, piece count) of each file longer than a piece: its piece
    layer is ``expected`` over those pieces (served to BEP 52 hash requests)."""

    def piece_layer(self, first: int, count: int) -> bytes:
        return self.expected[first * HASH_SIZE : (first + count) * HASH_SIZE]

    def matches(self, index: int, data: bytes | memoryview) -> bool:
        """Whether ``data`` (the piece as stored: padding after the file's end is ignored)
        hashes to what piece ``index`` must be."""
        length = self.lengths[index]
        leaves = block_hashes(memoryview(data)[:length])
        if self.whole_file[index]:
            height = max(0, (len(leaves) - 1).bit_length())
        else:
            height = (self.piece_length // BLOCK - 1).bit_length()
        want = self.expected[index * HASH_SIZE : (index + 1) * HASH_SIZE]
        return root(leaves, height) == want

    def checker(self, index: int) -> Callable[[bytes], bool]:
        return lambda data: self.matches(index, data)


def walk_file_tree(
    tree: Any, max_depth: int, max_files: int, path: tuple[bytes, ...] = ()
) -> list[V2File]:
    """The files of a ``file tree`` in bencode (sorted) order, every field checked."""
    if not isinstance(tree, dict) or not tree:
        raise MetainfoError(f"'file tree' at {_show(path)} is not a non-empty dictionary")
    if len(path) >= max_depth:
        raise MetainfoError(f"'file tree' is over {max_depth} folders deep")
    out: list[V2File] = []
    for key, node in tree.items():
        if not isinstance(node, dict):
            raise MetainfoError(f"'file tree' entry {_show((*path, key))} is not a dictionary")
        if key == b"":
            raise MetainfoError(f"'file tree' at {_show(path)} mixes a file and a folder")
        here = (*path, key)
        if b"" in node:
            if len(node) != 1:
                raise MetainfoError(f"'file tree' file {_show(here)} has other entries")
            out.append(_leaf(node[b""], here))
        else:
            out.extend(walk_file_tree(node, max_depth, max_files - len(out), here))
        if len(out) > max_files:
            raise MetainfoError(f"'file tree' lists over {max_files} files")
    return out


def _leaf(leaf: Any, path: tuple[bytes, ...]) -> V2File:
    where = _show(path)
    if not isinstance(leaf, dict):
        raise MetainfoError(f"'file tree' file {where} is not a dictionary")
    length = leaf.get(b"length")
    if type(length) is not int or length < 0:
        raise MetainfoError(f"'file tree' file {where}: 'length' is not an integer >= 0")
    pieces_root = leaf.get(b"pieces root")
    if length and (not isinstance(pieces_root, bytes) or len(pieces_root) != HASH_SIZE):
        raise MetainfoError(f"'file tree' file {where}: 'pieces root' is not 32 bytes")
    attr = leaf.get(b"attr")
    return V2File(
        path, length, pieces_root if length else None, isinstance(attr, bytes) and b"x" in attr
    )


def _show(path: tuple[bytes, ...]) -> str:
    return "/".join(p.decode("utf-8", "replace") for p in path) or "(top)"


def v2_pieces(files: list[V2File], piece_length: int, layers: Any) -> V2Pieces:
    """What every piece must hash to, from the files' roots and the ``piece layers``
    (each layer checked against its root)."""
    if piece_length < BLOCK or piece_length & (piece_length - 1):
        raise MetainfoError(f"'piece length' {piece_length}: v2 needs a power of two >= 16 KiB")
    if layers is None:
        layers = {}  # needed only for files longer than a piece (checked below)
    if not isinstance(layers, dict):
        raise MetainfoError("'piece layers' is not a dictionary")
    expected: list[bytes] = []
    lengths: list[int] = []
    roots: list[tuple[bytes, int, int]] = []
    whole = bytearray()
    piece_height = (piece_length // BLOCK - 1).bit_length()
    for f in files:
        if not f.length:
            continue
        assert f.root is not None
        count = -(-f.length // piece_length)
        if count == 1:
            expected.append(f.root)
            whole.append(1)
        else:
            layer = layers.get(f.root)
            if not isinstance(layer, bytes) or len(layer) != count * HASH_SIZE:
                raise MetainfoError(
                    f"'piece layers' has no layer of {count} hashes for {_show(f.path)} "
                    "(a .torrent must carry them; a btmh magnet fetches them from peers)"
                )
            hashes = [layer[i : i + HASH_SIZE] for i in range(0, len(layer), HASH_SIZE)]
            height = max(0, (count - 1).bit_length())
            if root(hashes, height, piece_height) != f.root:
                raise MetainfoError(f"'piece layers': the layer of {_show(f.path)} is wrong")
            roots.append((f.root, len(expected), count))
            expected.extend(hashes)
            whole.extend(bytes(count))
        full, tail = divmod(f.length, piece_length)
        lengths.extend([piece_length] * full + ([tail] if tail else []))
    return V2Pieces(piece_length, b"".join(expected), tuple(lengths), bytes(whole), tuple(roots))

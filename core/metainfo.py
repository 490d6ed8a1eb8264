"""BitTorrent v1 metainfo (.torrent, BEP 3/12/19/27/47) -> a frozen ``Metainfo``.

Why this shape: the info hash is the SHA-1 of the raw ``info`` bytes (never a re-encoding),
and every file path comes out sanitized (``sanitize_element``, ``dedupe_paths``) so that
nothing a .torrent says can place a file outside its save path. Hybrid torrents are read
through their v1 ``pieces`` and ``files``; v2-only torrents (BEP 52) through their file tree,
laid out as libtorrent does and checked by merkle hashes (core/metainfo_v2.py).

Size: about 530 lines, because the v1 and v2 layouts end in the same ``Metainfo`` and
share the path sanitizing below, which is security critical and kept in one place.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from btd.core.bencode import decode, decode_with_span
from btd.core.errors import BencodeError, MetainfoError
from btd.core.limits import MAX_DUPLICATE_NAMES, MAX_PATH_DEPTH
from btd.core.metainfo_v2 import V2File, V2Pieces, v2_pieces, walk_file_tree

__all__ = [
    "FileEntry",
    "MAX_PIECES",
    "MAX_PIECE_LENGTH",
    "MIN_PIECE_LENGTH",
    "Metainfo",
    "dedupe_paths",
    "parse_info",
    "parse_metainfo",
    "sanitize_element",
    "sanitize_path",
]

MIN_PIECE_LENGTH = 16 * 1024
MAX_PIECE_LENGTH = 512 * 1024 * 1024
MAX_PIECES = 2_097_152
MAX_ELEMENT_BYTES = 255
_HASH_LEN = 20


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of the torrent's concatenated stream.

    ``path`` is relative to the save path: for a multi-file torrent its first element is the
    (sanitized) torrent name folder; for a single-file torrent it is just ``(name,)``.
    ``pad`` marks a BEP 47 padding file (attr 'p'), which is never written to disk.
    """

    path: tuple[str, ...]
    length: int
    offset: int
    pad: bool = False


@dataclass(frozen=True, slots=True)
class Metainfo:
    """A parsed v1 torrent. ``info_bytes`` (the raw info dict, served to BEP 9 peers) and
    ``piece_hashes`` are the only large fields; nothing else from the file is kept."""

    info_hash: bytes
    info_bytes: bytes = field(repr=False)
    name: str
    piece_length: int
    piece_hashes: bytes = field(repr=False)
    num_pieces: int
    total_length: int
    files: tuple[FileEntry, ...] = field(repr=False)
    multi_file: bool
    private: bool
    announce_tiers: tuple[tuple[str, ...], ...] = ()
    url_list: tuple[str, ...] = ()
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None
    info_hash_v2: bytes | None = None  # SHA-256 of the info dict of a hybrid or v2 torrent
    v2: V2Pieces | None = field(default=None, repr=False)  # v2-only: merkle piece checks
    # A hybrid's v2 half when its .torrent carries the piece layers: its pieces are checked
    # by SHA-1; these only answer BEP 52 hash requests from its v2 swarm.
    hybrid_layers: V2Pieces | None = field(default=None, repr=False)

    @property
    def hash_layers(self) -> V2Pieces | None:
        """The piece layers to answer hash requests from (v2-only or hybrid), if any."""
        return self.v2 if self.v2 is not None else self.hybrid_layers

    @property
    def hex(self) -> str:
        """The 40-hex info hash by which RPC, logs and btctl name the torrent."""
        return self.info_hash.hex()

    def piece_size(self, index: int) -> int:
        """Length of piece ``index``; only the last piece may be shorter."""
        self._check_index(index)
        if index == self.num_pieces - 1:
            return self.total_length - self.piece_length * index
        return self.piece_length

    def piece_hash(self, index: int) -> bytes:
        """The expected SHA-1 of piece ``index`` (v1 and hybrid torrents)."""
        self._check_index(index)
        return self.piece_hashes[_HASH_LEN * index : _HASH_LEN * (index + 1)]

    def piece_check(self, index: int) -> bytes | Callable[[bytes], bool]:
        """What the Verifier checks piece ``index`` against: its SHA-1, or (v2) a merkle
        check of its data."""
        self._check_index(index)
        return self.v2.checker(index) if self.v2 is not None else self.piece_hash(index)

    def piece_ok(self, index: int, data: bytes) -> bool:
        """Whether ``data`` is piece ``index``."""
        if self.v2 is not None:
            return self.v2.matches(index, data)
        return hashlib.sha1(data).digest() == self.piece_hash(index)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.num_pieces:
            raise IndexError(f"piece {index} out of range (0..{self.num_pieces - 1})")


def parse_metainfo(data: bytes) -> Metainfo:
    """Parse a whole .torrent file."""
    try:
        top, span = decode_with_span(data, (b"info",))
    except BencodeError as e:
        raise MetainfoError(f"not a valid .torrent: {e}") from e
    if not isinstance(top, dict):
        raise MetainfoError("not a valid .torrent: the top level is not a dictionary")
    if b"info" not in top:
        raise MetainfoError("not a valid .torrent: missing 'info' dictionary")
    info = top[b"info"]
    if not isinstance(info, dict) or span is None:
        raise MetainfoError("not a valid .torrent: 'info' is not a dictionary")
    info_bytes = data[span[0] : span[1]]
    return _build(info, bytes(info_bytes), top)


def parse_info(info_bytes: bytes, expected_hash: bytes | None = None) -> Metainfo:
    """Parse a bare info dictionary (BEP 9 metadata), checking its SHA-1 when given."""
    info_bytes = bytes(info_bytes)
    if expected_hash is not None and hashlib.sha1(info_bytes).digest() != expected_hash:
        raise MetainfoError("info dictionary does not match the expected info hash")
    try:
        info = decode(info_bytes)
    except BencodeError as e:
        raise MetainfoError(f"not a valid info dictionary: {e}") from e
    if not isinstance(info, dict):
        raise MetainfoError("not a valid info dictionary: 'info' is not a dictionary")
    return _build(info, info_bytes, {})


def _build(info: dict[bytes, Any], info_bytes: bytes, top: dict[bytes, Any]) -> Metainfo:
    has_pieces = b"pieces" in info
    name = sanitize_element(_utf8_field(info, b"name", required=True) or "")
    piece_length = _int_field(info, b"piece length")
    if not MIN_PIECE_LENGTH <= piece_length <= MAX_PIECE_LENGTH:
        raise MetainfoError(
            f"'piece length' {piece_length} is outside {MIN_PIECE_LENGTH}..{MAX_PIECE_LENGTH}"
        )
    if piece_length % MIN_PIECE_LENGTH:
        raise MetainfoError(f"'piece length' {piece_length} is not a multiple of 16 KiB")
    if info.get(b"meta version") == 2 and not has_pieces:
        return _build_v2(info, info_bytes, top, name, piece_length)
    files, multi = _files(info, name)
    total = files[-1].offset + files[-1].length
    if total == 0:
        raise MetainfoError("'length': the torrent holds no data (total length 0)")
    pieces = info.get(b"pieces")
    if not has_pieces:
        raise MetainfoError("missing 'pieces'")
    if not isinstance(pieces, bytes):
        raise MetainfoError("'pieces' is not a byte string")
    if len(pieces) % _HASH_LEN:
        raise MetainfoError(f"'pieces' length {len(pieces)} is not a multiple of 20")
    num_pieces = len(pieces) // _HASH_LEN
    expected = -(-total // piece_length)
    if max(num_pieces, expected) > MAX_PIECES:
        count = max(num_pieces, expected)
        raise MetainfoError(f"'pieces': {count} pieces is over the limit of {MAX_PIECES}")
    if num_pieces != expected:
        raise MetainfoError(
            f"'pieces' holds {num_pieces} hashes but {total} bytes in pieces of "
            f"{piece_length} need {expected}"
        )
    return Metainfo(
        info_hash=hashlib.sha1(info_bytes).digest(),
        info_bytes=info_bytes,
        name=name,
        piece_length=piece_length,
        piece_hashes=pieces,
        num_pieces=num_pieces,
        total_length=total,
        files=files,
        multi_file=multi,
        **_shared_fields(info, top),
        info_hash_v2=(
            hashlib.sha256(info_bytes).digest() if info.get(b"meta version") == 2 else None
        ),
        hybrid_layers=_hybrid_layers(info, top, piece_length),
    )


def _hybrid_layers(info: dict[bytes, Any], top: dict[bytes, Any], piece_length: int) -> Any:
    """A hybrid's file tree and piece layers, each layer checked against its root; None
    for a v1 torrent, a bare info dictionary (no layers) or a v2 half that does not hold
    together (the torrent is still the v1 torrent it was: nothing is served from it)."""
    if info.get(b"meta version") != 2 or b"piece layers" not in top:
        return None
    try:
        tree = walk_file_tree(info.get(b"file tree"), MAX_PATH_DEPTH, MAX_PIECES)
        return v2_pieces(tree, piece_length, top.get(b"piece layers"))
    except MetainfoError:
        return None


def _shared_fields(info: dict[bytes, Any], top: dict[bytes, Any]) -> dict[str, Any]:
    """What v1 and v2 read alike: the private flag, trackers, web seeds, comment, dates."""
    private = info.get(b"private")
    creation_date = top.get(b"creation date")
    return {
        "private": type(private) is int and private != 0,
        "announce_tiers": _clean_tiers(top.get(b"announce"), top.get(b"announce-list")),
        "url_list": _clean_url_list(top.get(b"url-list")),
        "comment": _utf8_field(top, b"comment"),
        "created_by": _utf8_field(top, b"created by"),
        "creation_date": creation_date if type(creation_date) is int else None,
    }


def _build_v2(
    info: dict[bytes, Any], info_bytes: bytes, top: dict[bytes, Any], name: str, piece_length: int
) -> Metainfo:
    """A v2-only torrent: its files padded to piece boundaries (as libtorrent lays them
    out), named by the first 20 bytes of the SHA-256 of its info dictionary."""
    tree = walk_file_tree(info.get(b"file tree"), MAX_PATH_DEPTH, MAX_PIECES)
    single = len(tree) == 1 and len(tree[0].path) == 1
    files, total = _v2_entries(tree, name, single, piece_length)
    if total == 0:
        raise MetainfoError("'file tree': the torrent holds no data (total length 0)")
    checks = v2_pieces(tree, piece_length, top.get(b"piece layers"))
    if len(checks.lengths) > MAX_PIECES:
        raise MetainfoError(f"{len(checks.lengths)} pieces is over the limit of {MAX_PIECES}")
    v2 = hashlib.sha256(info_bytes).digest()
    return Metainfo(
        info_hash=v2[:20],
        info_bytes=info_bytes,
        name=name,
        piece_length=piece_length,
        piece_hashes=b"",
        num_pieces=len(checks.lengths),
        total_length=total,
        files=files,
        multi_file=not single,
        **_shared_fields(info, top),
        info_hash_v2=v2,
        v2=checks,
    )


def _v2_entries(
    tree: list[V2File], name: str, single: bool, piece_length: int
) -> tuple[tuple[FileEntry, ...], int]:
    """FileEntries of a v2 file tree, each non-empty file but the last followed by a pad
    entry up to the next piece boundary; and the stream's total length."""
    if single:
        paths = [(name,)]
    else:
        paths = []
        for f in tree:
            path = sanitize_path([e.decode("utf-8", "replace") for e in f.path])
            if not path:
                raise MetainfoError(f"'file tree' path {f.path!r} has no usable elements")
            paths.append((name, *path))
        paths = dedupe_paths(paths)
    out: list[FileEntry] = []
    offset = 0
    last = max((i for i, f in enumerate(tree) if f.length), default=-1)
    for i, (f, path) in enumerate(zip(tree, paths)):
        out.append(FileEntry(path, f.length, offset))
        offset += f.length
        tail = -f.length % piece_length
        if f.length and tail and i != last:
            out.append(FileEntry((name, ".pad", str(i)), tail, offset, pad=True))
            offset += tail
    return tuple(out), offset


def _files(info: dict[bytes, Any], name: str) -> tuple[tuple[FileEntry, ...], bool]:
    """The file list (paths sanitized and made unique) and whether the torrent is multi-file."""
    has_length, has_files = b"length" in info, b"files" in info
    if has_length == has_files:
        which = "both" if has_length else "neither"
        raise MetainfoError(f"'info' has {which} of 'length' and 'files' (exactly one needed)")
    if has_length:
        length = _int_field(info, b"length")
        if length < 0:
            raise MetainfoError(f"'length' {length} is negative")
        return (FileEntry((name,), length, 0),), False
    raw_files = info[b"files"]
    if not isinstance(raw_files, list):
        raise MetainfoError("'files' is not a list")
    if not raw_files:
        raise MetainfoError("'files' is empty")
    paths: list[tuple[str, ...]] = []
    lengths: list[int] = []
    pads: list[bool] = []
    for i, entry in enumerate(raw_files):
        where = f"files[{i}]"
        if not isinstance(entry, dict):
            raise MetainfoError(f"'{where}' is not a dictionary")
        length = _int_field(entry, b"length", where)
        if length < 0:
            raise MetainfoError(f"'{where}.length' {length} is negative")
        path = sanitize_path(_path_field(entry, where))
        if not path:
            raise MetainfoError(f"'{where}.path' has no usable elements")
        if len(path) > MAX_PATH_DEPTH:
            raise MetainfoError(
                f"'{where}.path' is {len(path)} folders deep; the limit is {MAX_PATH_DEPTH}"
            )
        attr = entry.get(b"attr")
        paths.append((name, *path))
        lengths.append(length)
        pads.append(isinstance(attr, bytes) and b"p" in attr)
    unique = dedupe_paths(paths)
    renamed = sum(a is not b and a != b for a, b in zip(paths, unique))
    if renamed > MAX_DUPLICATE_NAMES:
        raise MetainfoError(
            f"'files': {renamed} file names collide with others; the limit is "
            f"{MAX_DUPLICATE_NAMES} (such a torrent is made to attack clients)"
        )
    out: list[FileEntry] = []
    offset = 0
    for path, length, pad in zip(unique, lengths, pads):
        out.append(FileEntry(path, length, offset, pad))
        offset += length
    return tuple(out), True


def _path_field(entry: dict[bytes, Any], where: str) -> list[str]:
    """A file's path elements as text: ``path.utf-8`` when present and valid, else ``path``."""
    alt = entry.get(b"path.utf-8")
    if isinstance(alt, list) and alt and all(isinstance(e, bytes) for e in alt):
        try:
            return [e.decode("utf-8") for e in alt]
        except UnicodeDecodeError:
            pass
    if b"path" not in entry:
        raise MetainfoError(f"missing '{where}.path'")
    raw = entry[b"path"]
    if not isinstance(raw, list) or not all(isinstance(e, bytes) for e in raw):
        raise MetainfoError(f"'{where}.path' is not a list of byte strings")
    return [e.decode("utf-8", errors="replace") for e in raw]


def _int_field(d: dict[bytes, Any], key: bytes, where: str = "") -> int:
    label = f"{where}.{key.decode()}" if where else key.decode()
    if key not in d:
        raise MetainfoError(f"missing '{label}'")
    value = d[key]
    if type(value) is not int:
        raise MetainfoError(f"'{label}' is not an integer")
    return value


def _utf8_field(d: dict[bytes, Any], key: bytes, required: bool = False) -> str | None:
    """Text field, preferring its ``<key>.utf-8`` twin when that is valid UTF-8."""
    alt = d.get(key + b".utf-8")
    if isinstance(alt, bytes):
        try:
            return alt.decode("utf-8")
        except UnicodeDecodeError:
            pass
    value = d.get(key)
    if value is None:
        if required:
            raise MetainfoError(f"missing '{key.decode()}'")
        return None
    if not isinstance(value, bytes):
        if required:
            raise MetainfoError(f"'{key.decode()}' is not a byte string")
        return None
    return value.decode("utf-8", errors="replace")


# --- Path sanitizing (security critical) -------------------------------------------------
# Choices: empty and "." elements are dropped; ".." becomes "_" (kept, so "a/../b" cannot
# collide with "a/b", and it never traverses); separators, NUL, C0/C1 control characters and
# lone surrogates become "_"; leading spaces and trailing spaces/dots are stripped (Windows-safe,
# and it means no element can end up "." or ".."); an element that ends up empty is "_";
# elements are cut to 255 UTF-8 bytes keeping a short extension. Windows reserved names stay.

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\\ud800-\udfff]")
# Printable ASCII that needs no change: no separators or controls, no leading space or dot,
# no trailing space or dot.
_PLAIN = re.compile(r"[\w\-+=,()\[\]]([\w\-+=,()\[\] .]*[\w\-+=,()\[\]])?", re.ASCII)
_MAX_EXT_BYTES = 32


def sanitize_element(text: str) -> str:
    """One path element (or a torrent name) made safe to join under a directory."""
    if _PLAIN.fullmatch(text) and len(text) <= MAX_ELEMENT_BYTES:
        return text  # the common case: nothing to change
    if text in ("", ".", ".."):
        return "_"
    text = _UNSAFE.sub("_", text).lstrip(" ").rstrip(" .")
    if not text:
        return "_"
    stem, ext = _split_ext(text)
    return _fit(stem, ext)


def sanitize_path(elements: list[str]) -> tuple[str, ...]:
    """A file's path elements, sanitized; empty and "." elements are dropped (may be empty)."""
    return tuple(sanitize_element(e) for e in elements if e not in ("", "."))


def dedupe_paths(paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Rename files whose path repeats an earlier file's, or names a directory another file
    needs, by adding " (1)", " (2)", ... before the extension. Directories are never renamed,
    so the result is deterministic and no file path is a prefix of another.

    Linear in the total number of path elements (a tree of directories, a counter per name),
    so hostile torrents with deep paths or thousands of duplicates stay cheap.
    """
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for element in path[:-1]:
            node = node.setdefault(element, {})
    taken: set[tuple[int, str]] = set()  # (id of the parent directory node, file name)
    counters: dict[tuple[int, str], int] = {}
    out: list[tuple[str, ...]] = []
    for path in paths:
        parent = tree
        for element in path[:-1]:
            parent = parent[element]
        name = path[-1]
        key = (id(parent), name)
        if key in taken or name in parent:
            k = counters.get(key, 0)
            stem, ext = _split_ext(name)
            while True:
                k += 1
                name = _fit(stem, f" ({k}){ext}")
                if (id(parent), name) not in taken and name not in parent:
                    break
            counters[key] = k
        taken.add((id(parent), name))
        out.append((*path[:-1], name))
    return out


def _split_ext(text: str) -> tuple[str, str]:
    """(stem, extension) where a short suffix after the last non-leading dot is the extension."""
    dot = text.rfind(".")
    if dot > 0 and len(text[dot:].encode("utf-8")) <= _MAX_EXT_BYTES:
        return text[:dot], text[dot:]
    return text, ""


def _fit(stem: str, tail: str) -> str:
    """stem + tail cut to MAX_ELEMENT_BYTES UTF-8 bytes, shortening the stem (whole characters)."""
    raw_stem, raw_tail = stem.encode("utf-8"), tail.encode("utf-8")
    if len(raw_stem) + len(raw_tail) <= MAX_ELEMENT_BYTES:
        return stem + tail
    cut = raw_stem[: MAX_ELEMENT_BYTES - len(raw_tail)].decode("utf-8", errors="ignore")
    result = (cut + tail).rstrip(" .")
    return result or "_"


# --- Tracker and web seed URLs (bad ones are dropped, never fatal) -------------------------


def _clean_url(raw: Any, schemes: tuple[str, ...]) -> str | None:
    if not isinstance(raw, bytes):
        return None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not text or any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in text):
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme.lower() not in schemes or not parts.hostname:
        return None
    return text


def _clean_tiers(announce: Any, announce_list: Any) -> tuple[tuple[str, ...], ...]:
    """BEP 12: the announce-list tiers when any valid URL is in them, else the announce URL.
    Duplicates are removed (first occurrence kept) and empty tiers dropped."""
    schemes = ("http", "https", "udp")
    seen: set[str] = set()
    tiers: list[tuple[str, ...]] = []
    if isinstance(announce_list, list):
        for tier in announce_list:
            if not isinstance(tier, list):
                continue
            urls: list[str] = []
            for raw in tier:
                url = _clean_url(raw, schemes)
                if url is not None and url not in seen:
                    seen.add(url)
                    urls.append(url)
            if urls:
                tiers.append(tuple(urls))
    if tiers:
        return tuple(tiers)
    url = _clean_url(announce, schemes)
    return ((url,),) if url is not None else ()


def _clean_url_list(value: Any) -> tuple[str, ...]:
    """BEP 19 web seeds: one URL or a list of them; http(s) only, duplicates removed."""
    raws = value if isinstance(value, list) else [value]
    out: dict[str, None] = {}
    for raw in raws:
        url = _clean_url(raw, ("http", "https"))
        if url is not None:
            out[url] = None
    return tuple(out)

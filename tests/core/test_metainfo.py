"""Tests for btd.core.metainfo: parsing, validation messages, info hash, path safety."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core.bencode import encode
from btd.core.errors import MetainfoError
from btd.core.metainfo import (
    MAX_PIECES,
    FileEntry,
    Metainfo,
    dedupe_paths,
    parse_info,
    parse_metainfo,
    sanitize_element,
    sanitize_path,
)

PL = 16384


def hashes(total: int, piece_length: int = PL) -> bytes:
    return os.urandom(20 * -(-total // piece_length))


def single(length: int = 40000, **extra: Any) -> dict[str, Any]:
    info = {"name": "file.bin", "piece length": PL, "length": length, "pieces": hashes(length)}
    info.update(extra)
    return info


def multi(files: list[tuple[list[Any], int]], name: Any = "folder", **extra: Any) -> dict[str, Any]:
    total = sum(length for _, length in files)
    info = {
        "name": name,
        "piece length": PL,
        "files": [{"path": path, "length": length} for path, length in files],
        "pieces": hashes(max(total, 1)),
    }
    info.update(extra)
    return info


def torrent(info: Any, **top: Any) -> bytes:
    return encode({"announce": "http://127.0.0.1:6969/announce", "info": info, **top})


# --- good torrents ---------------------------------------------------------------------------


def test_single_file() -> None:
    info = single(40000)
    m = parse_metainfo(torrent(info, comment="hello", **{"created by": "me", "creation date": 7}))
    assert m.info_hash == hashlib.sha1(encode(info)).digest()
    assert m.hex == m.info_hash.hex() and len(m.hex) == 40
    assert m.info_bytes == encode(info)
    assert m.name == "file.bin"
    assert not m.multi_file
    assert m.files == (FileEntry(("file.bin",), 40000, 0),)
    assert (m.total_length, m.piece_length, m.num_pieces) == (40000, PL, 3)
    assert [m.piece_size(i) for i in range(3)] == [PL, PL, 40000 - 2 * PL]
    assert m.piece_hash(2) == info["pieces"][40:60]
    assert m.piece_hashes == info["pieces"]
    assert (m.comment, m.created_by, m.creation_date) == ("hello", "me", 7)
    assert m.announce_tiers == (("http://127.0.0.1:6969/announce",),)
    assert not m.private
    assert m.url_list == ()


def test_multi_file_offsets_and_paths() -> None:
    info = multi([(["a.txt"], 100), (["sub", "b.bin"], 20000), (["c"], 0), (["d"], 5)])
    m = parse_metainfo(torrent(info))
    assert m.multi_file
    assert m.files == (
        FileEntry(("folder", "a.txt"), 100, 0),
        FileEntry(("folder", "sub", "b.bin"), 20000, 100),
        FileEntry(("folder", "c"), 0, 20100),
        FileEntry(("folder", "d"), 5, 20100),
    )
    assert m.total_length == 20105
    assert m.num_pieces == 2


def test_last_piece_exact_multiple() -> None:
    m = parse_metainfo(torrent(single(2 * PL)))
    assert m.piece_size(1) == PL
    with pytest.raises(IndexError):
        m.piece_size(2)
    with pytest.raises(IndexError):
        m.piece_hash(-1)


def test_piece_length_multiple_of_16k_not_power_of_two() -> None:
    info = single(100000, **{"piece length": 3 * PL})
    info["pieces"] = hashes(100000, 3 * PL)
    assert parse_metainfo(torrent(info)).piece_length == 3 * PL


def test_pad_files() -> None:
    info = multi([(["a"], 100), ([".pad", "16284"], PL - 100), (["b"], 10)])
    info["files"][1]["attr"] = "p"
    info["files"][2]["attr"] = "x"
    m = parse_metainfo(torrent(info))
    assert [f.pad for f in m.files] == [False, True, False]
    assert m.files[2].offset == PL


def test_info_hash_is_sha1_of_raw_span_with_unsorted_and_extra_keys() -> None:
    pieces = hashes(5)
    raw_info = (
        b"d6:pieces20:" + pieces + b"4:name1:x7:x-extrali1ei2ee12:piece lengthi16384e6:lengthi5ee"
    )
    data = b"d4:info" + raw_info + b"8:announce3:urle"
    m = parse_metainfo(data)
    assert m.info_hash == hashlib.sha1(raw_info).digest()
    assert m.info_bytes == raw_info
    # A re-encoding would sort the keys and give a different hash.
    assert (
        m.info_hash
        != hashlib.sha1(
            encode(
                {"pieces": pieces, "name": "x", "x-extra": [1, 2], "piece length": PL, "length": 5}
            )
        ).digest()
    )


def test_private_flag() -> None:
    assert parse_metainfo(torrent(single(private=1))).private
    assert not parse_metainfo(torrent(single(private=0))).private
    assert not parse_metainfo(torrent(single(private="1"))).private


def test_utf8_twins_preferred() -> None:
    info = multi([([b"\xff"], 10)], name=b"n\xe9", **{"name.utf-8": "né"})
    info["files"][0]["path.utf-8"] = ["ok.txt"]
    m = parse_metainfo(torrent(info, comment=b"\xff", **{"comment.utf-8": "ç"}))
    assert m.name == "né"
    assert m.files[0].path == ("né", "ok.txt")
    assert m.comment == "ç"


def test_invalid_utf8_twin_falls_back_with_replacement() -> None:
    info = multi([([b"a\xffb"], 10)], name=b"x\xff", **{"name.utf-8": b"\xff"})
    info["files"][0]["path.utf-8"] = [b"\xfe"]
    m = parse_metainfo(torrent(info))
    assert m.name == "x\ufffd"
    assert m.files[0].path == ("x\ufffd", "a\ufffdb")


def test_optional_fields_of_wrong_type_are_ignored() -> None:
    m = parse_metainfo(torrent(single(), comment=5, **{"creation date": "x", "created by": []}))
    assert (m.comment, m.created_by, m.creation_date) == (None, None, None)


def test_metainfo_is_frozen_and_small_repr() -> None:
    m = parse_metainfo(torrent(single(10**6)))
    with pytest.raises(AttributeError):
        m.name = "x"  # type: ignore[misc]
    assert len(repr(m)) < 600


# --- trackers and web seeds ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "tiers"),
    [
        ({"announce": "http://a/ann"}, (("http://a/ann",),)),
        ({"announce": "udp://a:80"}, (("udp://a:80",),)),
        ({"announce": "ftp://a/"}, ()),
        ({"announce": "http://"}, ()),
        ({"announce": "http://a:99999/"}, ()),
        ({"announce": "http://a b/"}, ()),
        ({"announce": b"http://\xff/"}, ()),
        ({"announce": 5}, ()),
        ({}, ()),
        (
            {
                "announce": "http://a/",
                "announce-list": [["http://b/", "udp://c:1"], ["https://d/"]],
            },
            (("http://b/", "udp://c:1"), ("https://d/",)),
        ),
        (
            {
                "announce-list": [
                    ["http://b/", "http://b/", "bad"],
                    ["http://b/"],
                    [],
                    "x",
                    ["udp://c:1"],
                ]
            },
            (("http://b/",), ("udp://c:1",)),
        ),
        ({"announce": "http://a/", "announce-list": []}, (("http://a/",),)),
        ({"announce": "http://a/", "announce-list": [["nope"]]}, (("http://a/",),)),
        ({"announce": " http://a/ \n"}, (("http://a/",),)),
    ],
)
def test_announce_tiers(top: dict[str, Any], tiers: tuple[tuple[str, ...], ...]) -> None:
    data = encode({"info": single(), **top})
    assert parse_metainfo(data).announce_tiers == tiers


@pytest.mark.parametrize(
    ("value", "urls"),
    [
        ("http://seed/x", ("http://seed/x",)),
        (["http://a/", "https://b/", "ftp://c/", "http://a/", 3], ("http://a/", "https://b/")),
        (5, ()),
    ],
)
def test_url_list(value: Any, urls: tuple[str, ...]) -> None:
    assert parse_metainfo(torrent(single(), **{"url-list": value})).url_list == urls


# --- invalid torrents, each naming its field -------------------------------------------------


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


def _bad_file(**entry: Any) -> dict[str, Any]:
    info = multi([(["a"], 10)])
    info["files"] = [entry]
    return info


INVALID: list[tuple[str, bytes, str]] = [
    ("garbage", b"d4:info", "not a valid .torrent"),
    ("trailing", torrent(single()) + b"x", "not a valid .torrent"),
    ("top list", encode([1]), "top level is not a dictionary"),
    ("no info", encode({"announce": "http://a/"}), "missing 'info'"),
    ("info list", encode({"info": [1]}), "'info' is not a dictionary"),
    ("no name", torrent(_without(single(), "name")), "missing 'name'"),
    ("name int", torrent(single(name=5)), "'name' is not a byte string"),
    ("no piece length", torrent(_without(single(), "piece length")), "missing 'piece length'"),
    ("piece length str", torrent(single(**{"piece length": "x"})), "'piece length' is not an"),
    ("piece length 8k", torrent(single(**{"piece length": 8192})), "'piece length' 8192 is out"),
    ("piece length 0", torrent(single(**{"piece length": 0})), "'piece length' 0 is outside"),
    ("piece length 1G", torrent(single(**{"piece length": 2**30})), "'piece length' 1073741824"),
    ("piece length odd", torrent(single(**{"piece length": PL + 1})), "multiple of 16 KiB"),
    ("no pieces", torrent(_without(single(), "pieces")), "missing 'pieces'"),
    ("pieces int", torrent(single(pieces=5)), "'pieces' is not a byte string"),
    ("pieces 21", torrent(single(pieces=b"x" * 21)), "'pieces' length 21 is not a multiple"),
    ("pieces few", torrent(single(pieces=b"x" * 20)), "'pieces' holds 1 hashes but 40000"),
    ("pieces many", torrent(single(pieces=b"x" * 80)), "'pieces' holds 4 hashes"),
    (
        "too many pieces",
        torrent({**single(), "length": PL * (MAX_PIECES + 1)}),
        "over the limit of 2097152",
    ),
    ("length neg", torrent({**single(), "length": -1}), "'length' -1 is negative"),
    ("length str", torrent({**single(), "length": "1"}), "'length' is not an integer"),
    ("length 0", torrent({**single(), "length": 0, "pieces": b""}), "total length 0"),
    ("both", torrent(single(files=[{"path": ["a"], "length": 1}])), "both of 'length' and"),
    ("neither", torrent(_without(single(), "length")), "neither of 'length' and 'files'"),
    ("files empty", torrent(multi([])), "'files' is empty"),
    ("files dict", torrent({**multi([(["a"], 1)]), "files": {}}), "'files' is not a list"),
    ("file not dict", torrent({**multi([(["a"], 1)]), "files": [5]}), "'files[0]' is not a dict"),
    ("file len neg", torrent(_bad_file(path=["a"], length=-5)), "'files[0].length' -5 is neg"),
    ("file len missing", torrent(_bad_file(path=["a"])), "missing 'files[0].length'"),
    ("file path missing", torrent(_bad_file(length=1)), "missing 'files[0].path'"),
    ("file path str", torrent(_bad_file(path="a", length=1)), "'files[0].path' is not a list"),
    ("file path ints", torrent(_bad_file(path=[1], length=1)), "'files[0].path' is not a list"),
    ("file path empty", torrent(_bad_file(path=[], length=1)), "'files[0].path' has no usable"),
    ("file path dots", torrent(_bad_file(path=["", "."], length=1)), "'files[0].path' has no"),
    ("all zero", torrent(multi([(["a"], 0), (["b"], 0)], pieces=b"")), "total length 0"),
    (
        "v2 without its piece layer",
        torrent(
            {
                "meta version": 2,
                "name": "x",
                "piece length": PL,
                "file tree": {"x": {"": {"length": 5 * PL, "pieces root": b"r" * 32}}},
            }
        ),
        "'piece layers' has no layer of 5 hashes for x",
    ),
    (
        "v2 without a root",
        torrent(
            {
                "meta version": 2,
                "name": "x",
                "piece length": PL,
                "file tree": {"x": {"": {"length": 5}}},
            }
        ),
        "'pieces root' is not 32 bytes",
    ),
    (
        "v2 piece length",
        torrent(
            {
                "meta version": 2,
                "name": "x",
                "piece length": 3 * 16384,
                "file tree": {"x": {"": {"length": 5, "pieces root": b"r" * 32}}},
            }
        ),
        "power of two",
    ),
]


@pytest.mark.parametrize(("data", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid(data: bytes, message: str) -> None:
    with pytest.raises(MetainfoError) as info:
        parse_metainfo(data)
    assert message in str(info.value)


def test_hybrid_uses_v1_part() -> None:
    info = single(40000, **{"meta version": 2, "file tree": {"file.bin": {"": {"length": 40000}}}})
    m = parse_metainfo(torrent(info))
    assert m.num_pieces == 3 and m.total_length == 40000


# --- parse_info (BEP 9) ----------------------------------------------------------------------


def test_parse_info() -> None:
    raw = encode(single(40000))
    m = parse_info(raw, hashlib.sha1(raw).digest())
    assert m.info_bytes == raw and m.announce_tiers == () and m.name == "file.bin"
    assert parse_info(raw) == m


@pytest.mark.parametrize(
    ("raw", "expected", "message"),
    [
        (encode(single()), b"\0" * 20, "does not match the expected info hash"),
        (encode(single()) + b"x", None, "not a valid info dictionary"),
        (encode([1]), None, "not a dictionary"),
        (encode(_without(single(), "pieces")), None, "missing 'pieces'"),
    ],
)
def test_parse_info_invalid(raw: bytes, expected: bytes | None, message: str) -> None:
    with pytest.raises(MetainfoError, match=message):
        parse_info(raw, expected)


# --- path sanitizing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("element", "safe"),
    [
        ("normal.txt", "normal.txt"),
        ("../../etc/passwd", ".._.._etc_passwd"),
        ("/abs", "_abs"),
        ("/etc/passwd", "_etc_passwd"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("x\x00y", "x_y"),
        ("tab\there", "tab_here"),
        ("del\x7f", "del_"),
        ("c1\x85", "c1_"),
        ("..", "_"),
        (".", "_"),
        ("", "_"),
        ("...", "_"),
        ("   ", "_"),
        (" .. ", "_"),
        ("  lead", "lead"),
        ("trail. . ", "trail"),
        ("a.", "a"),
        (".hidden", ".hidden"),
        ("CON", "CON"),
        ("nul.txt", "nul.txt"),
        ("é", "é"),
        ("\ud800", "_"),
    ],
)
def test_sanitize_element(element: str, safe: str) -> None:
    assert sanitize_element(element) == safe


def test_long_elements_keep_extension_and_utf8() -> None:
    assert sanitize_element("a" * 300) == "a" * 255
    long_ext = sanitize_element("b" * 300 + ".txt")
    assert long_ext == "b" * 251 + ".txt"
    wide = sanitize_element("é" * 200 + ".mkv")  # 2 bytes per é
    assert len(wide.encode()) <= 255 and wide.endswith(".mkv")
    assert wide == "é" * 125 + ".mkv"
    no_ext = sanitize_element("x" * 254 + ". y")  # the cut lands after a dot: stripped
    assert not no_ext.endswith((".", " ")) and len(no_ext.encode()) <= 255


@pytest.mark.parametrize(
    ("elements", "safe"),
    [
        (["..", "..", "etc", "passwd"], ("_", "_", "etc", "passwd")),
        (["", "etc", "passwd"], ("etc", "passwd")),
        (["/etc/passwd"], ("_etc_passwd",)),
        (["a", ".", "", "b"], ("a", "b")),
        (["a/b", "c"], ("a_b", "c")),
        ([".", ""], ()),
    ],
)
def test_sanitize_path(elements: list[str], safe: tuple[str, ...]) -> None:
    assert sanitize_path(elements) == safe


def test_sanitizing_in_a_torrent() -> None:
    info = multi(
        [
            (["..", "..", "etc", "passwd"], 1),
            (["/abs"], 1),
            (["a/b"], 1),
            (["x\x00y"], 1),
            (["c" * 300], 1),
        ],
        name="../evil/name",
    )
    m = parse_metainfo(torrent(info))
    assert m.name == ".._evil_name"
    assert [f.path for f in m.files] == [
        (".._evil_name", "_", "_", "etc", "passwd"),
        (".._evil_name", "_abs"),
        (".._evil_name", "a_b"),
        (".._evil_name", "x_y"),
        (".._evil_name", "c" * 255),
    ]


@pytest.mark.parametrize("name", ["", "..", ".", "/"])
def test_degenerate_names(name: str) -> None:
    m = parse_metainfo(torrent(single(name=name)))
    assert m.name in ("_",)
    assert m.files[0].path == (m.name,)


@pytest.mark.parametrize(
    ("paths", "unique"),
    [
        ([("a.txt",), ("a.txt",), ("a.txt",)], [("a.txt",), ("a (1).txt",), ("a (2).txt",)]),
        ([("A",), ("a",)], [("A",), ("a",)]),
        ([("a",), ("a", "b")], [("a (1)",), ("a", "b")]),
        ([("a", "b"), ("a",)], [("a", "b"), ("a (1)",)]),
        ([("a",), ("a",), ("a (1)",)], [("a",), ("a (1)",), ("a (1) (1)",)]),
        (
            [("d", "x"), ("d", "x", "y"), ("d", "x")],
            [("d", "x (1)"), ("d", "x", "y"), ("d", "x (2)")],
        ),
        ([(".cfg",), (".cfg",)], [(".cfg",), (".cfg (1)",)]),
        ([("x" * 255,), ("x" * 255,)], [("x" * 255,), ("x" * 251 + " (1)",)]),
    ],
)
def test_dedupe_paths(paths: list[tuple[str, ...]], unique: list[tuple[str, ...]]) -> None:
    assert dedupe_paths(paths) == unique


def test_dedupe_is_not_quadratic() -> None:
    # 20k identical names or a 100k-deep path would take minutes if handled naively.
    many = dedupe_paths([("t", "a.txt")] * 20_000)
    assert many[-1] == ("t", "a (19999).txt") and len(set(many)) == 20_000
    deep = dedupe_paths([("t", *["d"] * 100_000), ("t", "d")])
    assert deep[1] == ("t", "d (1)")


def test_duplicates_in_a_torrent() -> None:
    info = multi([(["a.txt"], 1), (["a.txt"], 1), (["d"], 1), (["d", "e"], 1), ([".", "a.txt"], 1)])
    m = parse_metainfo(torrent(info))
    assert [f.path[1:] for f in m.files] == [
        ("a.txt",),
        ("a (1).txt",),
        ("d (1)",),
        ("d", "e"),
        ("a (2).txt",),
    ]


def test_too_many_colliding_names_refuse_the_torrent() -> None:
    """Issue 13 class 6: libtorrent refuses more than 500 collisions; so does btd."""
    from btd.core.limits import MAX_DUPLICATE_NAMES

    ok = multi([(["a.txt"], 1)] * (MAX_DUPLICATE_NAMES + 1))  # 500 renamed
    assert parse_metainfo(torrent(ok)).files[-1].path[-1] == f"a ({MAX_DUPLICATE_NAMES}).txt"
    bad = multi([(["a.txt"], 1)] * (MAX_DUPLICATE_NAMES + 2))
    with pytest.raises(MetainfoError, match="501 file names collide"):
        parse_metainfo(torrent(bad))


def test_paths_deeper_than_the_limit_refuse_the_torrent() -> None:
    from btd.core.limits import MAX_PATH_DEPTH

    deep = [*["d"] * (MAX_PATH_DEPTH - 1), "f"]
    assert len(parse_metainfo(torrent(multi([(deep, 1)]))).files[0].path) == MAX_PATH_DEPTH + 1
    with pytest.raises(MetainfoError, match=r"files\[0\]\.path' is 101 folders deep"):
        parse_metainfo(torrent(multi([(["d", *deep], 1)])))


def _assert_contained(path: tuple[str, ...]) -> None:
    assert path and not PurePosixPath(*path).is_absolute()
    for element in path:
        assert element not in ("", ".", "..")
        assert "/" not in element and "\\" not in element and "\x00" not in element
        assert len(element.encode("utf-8")) <= 255
    root = Path("/root")
    resolved = root.joinpath(*path).resolve()
    assert resolved.is_relative_to(root.resolve()) and resolved != root.resolve()
    assert os.path.normpath(os.path.join("/root", *path)).startswith("/root/")


tricky = st.sampled_from(
    ["..", ".", "", "/", "//", "/etc", "a/../..", "\x00", " .. ", "\\..\\", "C:\\", "~", "..."]
)
elements = st.lists(tricky | st.text(max_size=20) | st.text("./\\ \x00", max_size=6), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(elements, min_size=1, max_size=5), tricky | st.text(max_size=10))
def test_paths_never_escape(file_paths: list[list[str]], name: str) -> None:
    safe_name = sanitize_element(name)
    cleaned = [(safe_name, *sanitize_path(p)) for p in file_paths]
    unique = dedupe_paths(cleaned)
    assert len(set(unique)) == len(unique)
    prefixes = {p[:i] for p in unique for i in range(1, len(p))}
    assert not prefixes & set(unique)
    for path in [(safe_name,), *unique]:
        _assert_contained(path)


@settings(max_examples=300, deadline=None)
@given(tricky | st.text() | st.text("ab. /\\\x00", max_size=300))
def test_sanitize_element_is_idempotent_and_bounded(text: str) -> None:
    safe = sanitize_element(text)
    assert sanitize_element(safe) == safe
    assert 0 < len(safe.encode("utf-8")) <= 255


raw_elements = st.lists(
    st.binary(max_size=12) | st.sampled_from([b"..", b"/", b"\xff.."]), max_size=5
)


@settings(max_examples=150, deadline=None)
@given(st.lists(raw_elements, min_size=1, max_size=4), st.binary(max_size=10))
def test_parsed_torrent_paths_never_escape(file_paths: list[list[bytes]], name: bytes) -> None:
    info = multi([(p, 1) for p in file_paths], name=name)
    try:
        m = parse_metainfo(torrent(info))
    except MetainfoError as e:
        assert "has no usable elements" in str(e)
        return
    assert isinstance(m, Metainfo)
    for f in m.files:
        _assert_contained(f.path)
        assert f.path[0] == m.name


# --- agreement with libtorrent ---------------------------------------------------------------


@pytest.mark.parametrize("v1_only", [True, False], ids=["v1", "hybrid"])
@pytest.mark.parametrize("layout", ["single", "multi"])
def test_info_hash_matches_libtorrent(tmp_path: Path, layout: str, v1_only: bool) -> None:
    lt = pytest.importorskip("libtorrent")
    if layout == "single":
        (tmp_path / "one.bin").write_bytes(os.urandom(40000))
        target = "one.bin"
    else:
        root = tmp_path / "many"
        (root / "sub").mkdir(parents=True)
        (root / "a.bin").write_bytes(os.urandom(40000))
        (root / "sub" / "b.txt").write_bytes(os.urandom(100))
        (root / "sub" / "c.dat").write_bytes(os.urandom(20000))
        target = "many"
    files = lt.list_files(str(tmp_path / target))
    flags = lt.create_torrent.v1_only if v1_only else 0
    ct = lt.create_torrent(files, PL, flags)
    ct.add_tracker("http://127.0.0.1:6969/announce")
    lt.set_piece_hashes(ct, str(tmp_path))
    data = lt.bencode(ct.generate())

    m = parse_metainfo(data)
    ti = lt.torrent_info(data)
    assert m.info_hash == bytes.fromhex(str(ti.info_hashes().v1))
    if v1_only:
        assert m.info_hash == bytes.fromhex(str(ti.info_hash()))
    assert m.num_pieces == ti.num_pieces()
    assert m.total_length == ti.total_size()
    assert m.announce_tiers == (("http://127.0.0.1:6969/announce",),)
    assert m.multi_file == (layout == "multi")
    storage = ti.layout()
    real = [f for f in m.files if not f.pad]
    pad_flag = lt.file_storage.flag_pad_file
    lt_files = [i for i in range(storage.num_files()) if not storage.file_flags(i) & pad_flag]
    assert len(lt_files) < storage.num_files() or v1_only or layout == "single"
    assert [f.pad for f in m.files] == [
        bool(storage.file_flags(i) & pad_flag) for i in range(storage.num_files())
    ]
    assert [f.length for f in real] == [storage.file_size(i) for i in lt_files]
    offsets = [storage.file_offset(i) for i in range(storage.num_files())]
    assert [f.offset for f in m.files] == offsets
    assert ["/".join(f.path) for f in real] == [storage.file_path(i) for i in lt_files]


def test_a_v2_only_libtorrent_torrent_is_read(tmp_path: Path) -> None:
    """Named by the first 20 bytes of its SHA-256 info hash (BEP 52's swarm id), every
    piece checked by merkle hashes."""
    lt = pytest.importorskip("libtorrent")
    data = os.urandom(5 * PL + 1000)
    (tmp_path / "one.bin").write_bytes(data)
    ct = lt.create_torrent(lt.list_files(str(tmp_path / "one.bin")), PL, lt.create_torrent.v2_only)
    lt.set_piece_hashes(ct, str(tmp_path))
    raw = lt.bencode(ct.generate())
    meta = parse_metainfo(raw)
    v2 = lt.torrent_info(raw).info_hashes().v2
    assert meta.info_hash_v2.hex() == str(v2) and meta.info_hash == meta.info_hash_v2[:20]
    assert meta.num_pieces == 6
    assert all(meta.piece_ok(i, data[i * PL : (i + 1) * PL]) for i in range(6))
    assert not meta.piece_ok(5, data[5 * PL : -1] + b"?")


def test_a_hybrid_reports_its_v2_info_hash(tmp_path) -> None:
    """BEP 52 hybrid: parsed as v1 (its pad files marked), with the SHA-256 of the info
    dictionary as ``info_hash_v2``; a v1 torrent has none; a v2-only one is read with the
    same layout (no pad after the last file)."""
    from btd.core.torrent_create import create_torrent
    from btd.core.torrent_create_v2 import create_torrent_v2

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"x" * 40_000)
    (tmp_path / "d" / "b").write_bytes(b"y" * 1_000)
    hybrid = create_torrent_v2(tmp_path / "d", hybrid=True, piece_length=16384)
    meta = parse_metainfo(hybrid.data)
    assert meta.info_hash == hybrid.info_hash
    assert meta.info_hash_v2 == hybrid.info_hash_v2 == hashlib.sha256(meta.info_bytes).digest()
    assert [f.pad for f in meta.files] == [False, True, False, True]
    assert parse_metainfo(create_torrent(tmp_path / "d").data).info_hash_v2 is None
    v2 = create_torrent_v2(tmp_path / "d", piece_length=16384)
    only = parse_metainfo(v2.data)
    assert only.info_hash == v2.info_hash and only.v2 is not None and only.piece_hashes == b""
    assert [f.pad for f in only.files] == [False, True, False]
    assert only.num_pieces == meta.num_pieces == 4

"""Fuzz every parser of untrusted input (tests/fuzz/targets.py): random bytes, and valid
inputs of each format mutated. A failure prints the input; save it under
``tests/fuzz/crashers/<target>/`` (test_crashers.py replays it for ever after)."""

from __future__ import annotations

import json
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core import bencode
from btd.core.wire import messages as m
from btd.core.wire.codec import encode as encode_message
from btd.core.wire.codec import encode_handshake

from .conftest import FUZZ_PROFILE
from .targets import SLOW_SECONDS, TARGETS

pytestmark = pytest.mark.fuzz
settings.load_profile(FUZZ_PROFILE)


def check(name: str, data: bytes) -> None:
    """The target's contract: return, or raise one of its allowed errors; and quickly."""
    target = TARGETS[name]
    started = time.perf_counter()
    try:
        target.run(data)
    except target.allowed:
        pass
    elapsed = time.perf_counter() - started
    assert elapsed < SLOW_SECONDS, f"{name} took {elapsed:.2f} s on {len(data)} bytes"


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[bytes]) -> bytes:
    """A valid input with a few bytes flipped, dropped, inserted or cut off."""
    raw = bytearray(draw(seeds))
    for _ in range(draw(st.integers(0, 4))):
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["flip", "drop", "insert", "truncate", "dup"]))
        if op == "flip":
            raw[i] = draw(st.integers(0, 255))
        elif op == "drop":
            del raw[i]
        elif op == "insert":
            raw[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "dup":
            raw[i:i] = raw[i : i + draw(st.integers(1, 64))]
        else:
            del raw[i:]
    return bytes(raw)


def bvalues(keys: list[bytes]) -> st.SearchStrategy[object]:
    """Bencodable values whose dict keys are mostly the format's own."""
    key = st.sampled_from(keys) | st.binary(max_size=6)
    leaf = st.integers(-(2**40), 2**40) | st.binary(max_size=40) | st.sampled_from(keys)
    return st.recursive(
        leaf,
        lambda c: st.lists(c, max_size=5) | st.dictionaries(key, c, max_size=6),
        max_leaves=30,
    )


def bencoded(keys: list[bytes]) -> st.SearchStrategy[bytes]:
    return bvalues(keys).map(bencode.encode)


TORRENT_KEYS = [
    b"announce", b"announce-list", b"info", b"name", b"piece length", b"pieces", b"length",
    b"files", b"path", b"private", b"url-list", b"name.utf-8", b"path.utf-8", b"attr",
    b"meta version", b"file tree", b"comment", b"created by",
]  # fmt: skip


@st.composite
def torrents(draw: st.DrawFn) -> bytes:
    piece_length = draw(st.sampled_from([16384, 32768, 0, -1, 2**40]))
    n = draw(st.integers(0, 4))
    info: dict[bytes, object] = {
        b"name": draw(st.sampled_from([b"a", b"..", b"/", b"", b"x/../y", b"\x00"])),
        b"piece length": piece_length,
        b"pieces": draw(st.binary(min_size=0, max_size=80)),
    }
    if draw(st.booleans()):
        info[b"length"] = draw(st.integers(-5, 100_000))
    else:
        parts = st.lists(
            st.sampled_from([b"a", b"b", b"..", b".", b"", b"/", b"c" * 300]), max_size=4
        )
        info[b"files"] = [
            {b"length": draw(st.integers(-5, 50_000)), b"path": draw(parts)} for _ in range(n)
        ]
    if draw(st.booleans()):
        info[draw(st.sampled_from(TORRENT_KEYS))] = draw(bvalues(TORRENT_KEYS))
    top: dict[bytes, object] = {b"info": info}
    if draw(st.booleans()):  # BEP 52: v2-only (no pieces) or hybrid
        info[b"meta version"] = 2
        if draw(st.booleans()):
            del info[b"pieces"]
        root = draw(st.sampled_from([b"r" * 32, b"short", 5]))
        leaf = {b"length": draw(st.integers(-1, 100_000)), b"pieces root": root}
        info[b"file tree"] = draw(
            st.sampled_from(
                [
                    {b"a": {b"": leaf}},
                    {b"d": {b"a": {b"": leaf}, b"b": {b"": {b"length": 0}}}},
                    {b"a": {b"": leaf, b"x": {}}},
                    {b"": {b"": leaf}},
                    {b"a": 5},
                    {},
                ]
            )
        )
        top[b"piece layers"] = draw(
            st.sampled_from([{}, {b"r" * 32: b"h" * 64}, {b"r" * 32: b"odd"}, [], None])
        )
        if top[b"piece layers"] is None:
            del top[b"piece layers"]
    if draw(st.booleans()):
        top[b"announce"] = draw(
            st.sampled_from([b"http://127.0.0.1/announce", b"udp://[::1]:1", b""])
        )
    return bencode.encode(top)


MESSAGES = [
    m.KEEP_ALIVE, m.CHOKE_MSG, m.UNCHOKE_MSG, m.INTERESTED_MSG, m.NOT_INTERESTED_MSG,
    m.Have(3), m.Bitfield(b"\xff" * 13), m.Request(1, 0, 16384), m.Piece(1, 0, b"x" * 40),
    m.Cancel(1, 0, 16384), m.Port(6881), m.HAVE_ALL_MSG, m.HAVE_NONE_MSG,
    m.RejectRequest(1, 0, 16384), m.AllowedFast(2), m.SuggestPiece(2), m.Extended(0, b"d1:md1:ai1eee"),
    m.HashRequest(b"r" * 32, 2, 0, 512, 5), m.HashReject(b"r" * 32, 2, 0, 512, 5),
    m.Hashes(b"r" * 32, 2, 0, 2, 1, b"h" * 96),
]  # fmt: skip


@st.composite
def wire_streams(draw: st.DrawFn) -> bytes:
    msgs = draw(st.lists(st.sampled_from(MESSAGES), max_size=12))
    body = b"".join(encode_message(x) for x in msgs)
    if draw(st.booleans()):
        hs = m.Handshake(b"\x01" * 20, b"-XX0000-000000000000", m.make_reserved())
        body = encode_handshake(hs) + body
    return body


@st.composite
def udp_replies(draw: st.DrawFn) -> bytes:
    action = draw(st.integers(0, 4))
    head = struct.pack(">II", action, draw(st.integers(0, 2**32 - 1)))
    return head + draw(st.binary(max_size=60))


@st.composite
def magnets(draw: st.DrawFn) -> bytes:
    parts = draw(
        st.lists(
            st.sampled_from(
                [
                    "xt=urn:btih:" + "a" * 40,
                    "xt=urn:btih:" + "A" * 32,
                    "xt=urn:btih:zz",
                    "xt=urn:btmh:1220" + "0" * 64,
                    "dn=a%20b",
                    "dn=%00",
                    "dn=%zz",
                    "dn=" + "x" * 500,
                    "tr=http%3A%2F%2F127.0.0.1%2Fannounce",
                    "tr=udp://[::1]:6969",
                    "x.pe=127.0.0.1:1",
                    "x.pe=[::1]:0",
                    "x.pe=nonsense",
                    "ws=http://x/",
                    "&",
                    "=",
                    "%",
                    "xt=",
                ]
            ),
            max_size=8,
        )
    )
    return ("magnet:?" + "&".join(parts)).encode()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)


@st.composite
def rpc_frames(draw: st.DrawFn) -> bytes:
    def call() -> object:
        msg = {
            "jsonrpc": draw(st.sampled_from(["2.0", "1.0", 2])),
            "method": draw(st.sampled_from(["echo.params", "session.info", "nope", 5])),
        }
        if draw(st.booleans()):
            msg["params"] = draw(JSON)
        if draw(st.booleans()):
            msg["id"] = draw(JSON)
        return msg

    value = [call() for _ in range(draw(st.integers(0, 4)))] if draw(st.booleans()) else call()
    return json.dumps(value, allow_nan=True).encode()


CONFIG_LINES = [
    "daemon:", "  log_level: debug", "  log_level: 7", "  state_dir: /nonexistent/x",
    "control:", "  socket: relative.sock", "  allowed_group: [a]", "session:",
    "  listen_port: 70000", "  listen_port: 0", "  max_connections: -1", "  upload_slots: 4",
    "  download_dir: ''", "  umask: '0777'", "plugins:", "  dht: {enabled: true}",
    "  nope: {}", "  - x", "&a [*a]", "? !!python/object:os.system", "{", "'", "\t",
]  # fmt: skip


@st.composite
def mse_heads(draw: st.DrawFn) -> bytes:
    """VC, crypto_provide, len(padC), padC, len(IA), IA: the head an initiator encrypts."""
    pad = draw(st.binary(max_size=40))
    ia = draw(st.binary(max_size=80))
    provide = draw(st.sampled_from([1, 2, 3, 0, 0xFFFFFFFF]))
    pad_len = draw(st.sampled_from([len(pad), 513, 0xFFFF]))
    ia_len = draw(st.sampled_from([len(ia), 4097, 0xFFFF]))
    vc = draw(st.sampled_from([bytes(8), b"\x01" * 8]))
    return vc + struct.pack(">IH", provide, pad_len) + pad + struct.pack(">H", ia_len) + ia


@st.composite
def utp_datagrams(draw: st.DrawFn) -> bytes:
    """A uTP header (any type, version 1 mostly), an extension chain, a payload."""
    kind = draw(st.integers(0, 5))
    version = draw(st.sampled_from([1, 1, 1, 0, 2]))
    exts = draw(st.lists(st.tuples(st.sampled_from([1, 2, 7]), st.binary(max_size=12)), max_size=4))
    first = exts[0][0] if exts else 0
    chain = b""
    for i, (_, body) in enumerate(exts):
        nxt = exts[i + 1][0] if i + 1 < len(exts) else 0
        chain += bytes([nxt, len(body)]) + body
    fields = struct.pack(">HIIIHH", draw(st.integers(0, 0xFFFF)), 1, 2, 3, 4, 5)
    return bytes([kind << 4 | version, first]) + fields + chain + draw(st.binary(max_size=40))


@st.composite
def configs(draw: st.DrawFn) -> bytes:
    return "\n".join(draw(st.lists(st.sampled_from(CONFIG_LINES), max_size=10))).encode()


SEEDS: dict[str, st.SearchStrategy[bytes]] = {
    "bencode": bencoded([b"a", b"b", b"info"]),
    "metainfo": torrents(),
    "info": torrents().map(lambda raw: bencode.encode(bencode.decode(raw)[b"info"])),
    "magnet": magnets(),
    "wire": wire_streams(),
    "extension_handshake": bencoded([b"m", b"v", b"p", b"reqq", b"metadata_size", b"yourip", b"ut_metadata", b"ut_pex"]),
    "ut_metadata": bencoded([b"msg_type", b"piece", b"total_size"]).map(lambda b: b + b"x" * 20),
    "mse": mse_heads(),
    "ut_pex": bencoded([b"added", b"added.f", b"dropped", b"added6", b"added6.f", b"dropped6"]),
    "tracker_http": bencoded([b"interval", b"min interval", b"peers", b"peers6", b"failure reason", b"warning message", b"tracker id", b"complete", b"incomplete", b"ip", b"port", b"peer id"]),
    "tracker_scrape": bencoded([b"files", b"\x11" * 20, b"complete", b"incomplete", b"downloaded", b"failure reason"]),
    "tracker_udp": udp_replies(),
    "utp": utp_datagrams(),
    "krpc": bencoded([b"t", b"y", b"q", b"r", b"e", b"a", b"id", b"target", b"info_hash", b"nodes", b"nodes6", b"values", b"token", b"port", b"implied_port", b"ping", b"find_node", b"get_peers", b"announce_peer"]),
    "dht_state": bencoded([b"id", b"nodes", b"nodes6"]),
    "rpc": rpc_frames(),
    "config": configs(),
}  # fmt: skip


def test_every_target_has_seeds() -> None:
    assert set(SEEDS) == set(TARGETS)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_random_bytes(name: str) -> None:
    @given(st.binary(max_size=512))
    def run(data: bytes) -> None:
        check(name, data)

    run()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutated_valid_inputs(name: str) -> None:
    @given(mutated(SEEDS[name]))
    def run(data: bytes) -> None:
        check(name, data)

    run()

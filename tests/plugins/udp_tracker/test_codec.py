"""BEP 15 codec: byte layouts checked against struct, every malformed answer refused."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core.errors import TrackerError
from btd.core.tracker.codec import MAX_INTERVAL, MIN_INTERVAL, AnnounceRequest
from btd.plugins.udp_tracker import codec
from btd.plugins.udp_tracker.codec import UdpTrackerError

IH = bytes(range(20))
PID = b"-BT0100-" + bytes(range(200, 212))


def req(**kw: object) -> AnnounceRequest:
    base: dict[str, object] = {
        "info_hash": IH,
        "peer_id": PID,
        "port": 6881,
        "uploaded": 3,
        "downloaded": 2,
        "left": 1,
        "event": "started",
        "numwant": 50,
        "key": 0xDEADBEEF,
    }
    return AnnounceRequest(**{**base, **kw})  # type: ignore[arg-type]


# -- requests -----------------------------------------------------------------------------


def test_connect_request_layout() -> None:
    data = codec.build_connect(0x01020304)
    assert data == bytes.fromhex("00000417271019800000000001020304")


def test_announce_request_layout() -> None:
    data = codec.build_announce(0x1122334455667788, 7, req())
    assert len(data) == 98
    fields = struct.unpack(">QII20s20sQQQIIIiH", data)
    assert fields == (
        0x1122334455667788,
        1,
        7,
        IH,
        PID,
        2,
        1,
        3,
        2,
        0,
        0xDEADBEEF,
        50,
        6881,
    )


@pytest.mark.parametrize(
    ("event", "code"), [("", 0), ("completed", 1), ("started", 2), ("stopped", 3)]
)
def test_event_codes(event: str, code: int) -> None:
    data = codec.build_announce(1, 2, req(event=event))
    assert struct.unpack_from(">I", data, 80)[0] == code


def test_announce_request_clamps_and_masks() -> None:
    data = codec.build_announce(1, 2, req(key=-1, numwant=1 << 40, left=1 << 70))
    fields = struct.unpack(">QII20s20sQQQIIIiH", data)
    assert fields[6] == (1 << 64) - 1  # left
    assert fields[10] == 0xFFFFFFFF  # key
    assert fields[11] == 0x7FFFFFFF  # numwant


def test_request_ids_must_fit() -> None:
    with pytest.raises(UdpTrackerError):
        codec.build_connect(1 << 32)
    with pytest.raises(UdpTrackerError):
        codec.build_announce(1 << 64, 1, req())
    with pytest.raises(UdpTrackerError):
        codec.build_announce(1, -1, req())


def test_scrape_request_layout() -> None:
    other = bytes(range(20, 40))
    data = codec.build_scrape(5, 6, [IH, other])
    assert data == struct.pack(">QII", 5, 2, 6) + IH + other
    with pytest.raises(UdpTrackerError):
        codec.build_scrape(5, 6, [])
    with pytest.raises(UdpTrackerError):
        codec.build_scrape(5, 6, [IH] * 75)
    with pytest.raises(UdpTrackerError):
        codec.build_scrape(5, 6, [b"short"])


# -- answers ------------------------------------------------------------------------------


def test_connect_answer() -> None:
    reply = codec.parse_reply(struct.pack(">IIQ", 0, 9, 0xABCDEF0123456789))
    assert reply == codec.ConnectReply(9, 0xABCDEF0123456789)


def test_announce_answer_ipv4() -> None:
    peers = bytes([127, 0, 0, 1, 0x1A, 0xE1, 10, 0, 0, 2, 0, 80])
    data = struct.pack(">IIIII", 1, 4, 1800, 3, 5) + peers
    reply = codec.parse_announce(data)
    assert reply == codec.AnnounceReply(4, 1800, 3, 5, (("127.0.0.1", 6881), ("10.0.0.2", 80)))
    resp = reply.to_response()
    assert (resp.interval, resp.complete, resp.incomplete) == (1800, 5, 3)
    assert resp.peers == reply.peers and resp.min_interval is None and resp.warning is None


def test_announce_answer_ipv6_peers_are_18_bytes() -> None:
    v6 = bytes.fromhex("20010db8" + "0" * 23 + "5")
    peers = bytes(15) + b"\x01" + b"\x1a\xe1" + v6 + b"\x00\x50"
    data = struct.pack(">IIIII", 1, 4, 60, 0, 2) + peers
    reply = codec.parse_announce(data, ipv6=True)
    assert reply.peers == (("::1", 6881), ("2001:db8::5", 80))
    with pytest.raises(UdpTrackerError, match="multiple of 18"):
        codec.parse_announce(data + bytes(6), ipv6=True)


def test_announce_answer_drops_port_zero_and_duplicates() -> None:
    peers = bytes([1, 2, 3, 4, 0, 0]) + bytes([1, 2, 3, 4, 0, 9]) * 2
    data = struct.pack(">IIIII", 1, 4, 60, 0, 2) + peers
    assert codec.parse_announce(data).peers == (("1.2.3.4", 9),)


@pytest.mark.parametrize(("interval", "expected"), [(0, MIN_INTERVAL), (10**9, MAX_INTERVAL)])
def test_announce_interval_is_clamped(interval: int, expected: int) -> None:
    data = struct.pack(">IIIII", 1, 4, interval, 0, 0)
    assert codec.parse_announce(data).to_response().interval == expected


def test_scrape_answer() -> None:
    data = struct.pack(">II", 2, 8) + struct.pack(">III", 5, 7, 3) + struct.pack(">III", 0, 0, 1)
    reply = codec.parse_reply(data)
    assert reply == codec.ScrapeReply(8, (codec.ScrapeEntry(5, 7, 3), codec.ScrapeEntry(0, 0, 1)))


def test_error_answer() -> None:
    reply = codec.parse_reply(struct.pack(">II", 3, 8) + "not whitelisted \u2603".encode() + b"\0")
    assert reply == codec.ErrorReply(8, "not whitelisted \u2603")
    assert codec.parse_error(struct.pack(">II", 3, 8)).message == "udp tracker error (no message)"
    assert codec.parse_error(struct.pack(">II", 3, 8) + b"\xff\xfe").message  # not UTF-8: kept


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "too short"),
        (b"\0\0\0\0\0\0\0", "too short"),
        (struct.pack(">IIQ", 0, 1, 2)[:15], "too short"),
        (struct.pack(">IIIII", 1, 1, 1, 1, 1)[:19], "too short"),
        (struct.pack(">IIIII", 1, 1, 1, 1, 1) + b"\1\2\3\4\5", "multiple of 6"),
        (struct.pack(">II", 2, 1) + b"\0" * 11, "multiple of 12"),
        (struct.pack(">II", 4, 1), "unknown action"),
        (struct.pack(">II", 0xFFFFFFFF, 1) + b"\0" * 40, "unknown action"),
    ],
)
def test_malformed_answers(data: bytes, match: str) -> None:
    with pytest.raises(UdpTrackerError, match=match):
        codec.parse_reply(data)


@pytest.mark.parametrize(
    "parse", [codec.parse_connect, codec.parse_announce, codec.parse_scrape, codec.parse_error]
)
def test_wrong_action_is_refused(parse: object) -> None:
    for action in range(5):
        data = struct.pack(">II", action, 1) + bytes(16)
        name = parse.__name__.removeprefix("parse_")  # type: ignore[attr-defined]
        if codec.__dict__[f"ACTION_{name.upper()}"] == action:
            continue
        with pytest.raises(UdpTrackerError, match="expected"):
            parse(data)  # type: ignore[operator]


def test_error_is_a_tracker_error() -> None:
    assert issubclass(UdpTrackerError, TrackerError)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.booleans())
def test_random_bytes_raise_only_the_codec_error(data: bytes, ipv6: bool) -> None:
    for parse in (
        lambda d: codec.parse_reply(d, ipv6=ipv6),
        codec.parse_connect,
        lambda d: codec.parse_announce(d, ipv6=ipv6),
        codec.parse_scrape,
        codec.parse_error,
        codec.parse_header,
    ):
        try:
            parse(data)
        except UdpTrackerError:
            pass


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 3),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=100),
)
def test_valid_headers_with_random_bodies(action: int, tid: int, body: bytes) -> None:
    data = struct.pack(">II", action, tid) + body
    try:
        reply = codec.parse_reply(data)
    except UdpTrackerError:
        return
    assert reply.transaction_id == tid


@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["", "started", "completed", "stopped"]),
    st.integers(0, 2**63),
    st.integers(0, 0xFFFF),
)
def test_announce_round_trip(cid: int, tid: int, event: str, left: int, port: int) -> None:
    data = codec.build_announce(cid, tid, req(event=event, left=left, port=port))
    fields = struct.unpack(">QII20s20sQQQIIIiH", data)
    assert (fields[0], fields[2], fields[6], fields[12]) == (cid, tid, left, port)
    assert fields[8] == codec.EVENT_CODES[event]


@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.tuples(st.ip_addresses(v=4), st.integers(1, 0xFFFF)), max_size=30, unique=True),
)
def test_announce_answer_round_trip(tid: int, peers: list) -> None:
    blob = b"".join(ip.packed + port.to_bytes(2, "big") for ip, port in peers)
    reply = codec.parse_announce(struct.pack(">IIIII", 1, tid, 900, 1, 2) + blob)
    assert reply.peers == tuple((str(ip), port) for ip, port in peers)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("udp://tracker.example:6969/announce", ("tracker.example", 6969)),
        ("udp://127.0.0.1:80", ("127.0.0.1", 80)),
        ("UDP://[::1]:6969/announce?passkey=x", ("::1", 6969)),
    ],
)
def test_parse_udp_url(url: str, expected: tuple[str, int]) -> None:
    assert codec.parse_udp_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://t:1/announce",
        "udp://t/announce",
        "udp://:80",
        "udp://t:0",
        "udp://t:99999",
        "udp://[::1:80",
    ],
)
def test_bad_udp_urls(url: str) -> None:
    with pytest.raises(UdpTrackerError):
        codec.parse_udp_url(url)

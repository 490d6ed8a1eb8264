"""Tracker announce/scrape codec: URL encoding, answer parsing, and garbage handling."""

from __future__ import annotations

import socket
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core.bencode import encode
from btd.core.errors import TrackerError
from btd.core.tracker.codec import (
    AnnounceRequest,
    build_announce_url,
    build_scrape_request_url,
    build_scrape_url,
    parse_announce_response,
    parse_scrape_response,
    percent_encode,
)

IH = bytes(range(20))
PID = b"-BT0100-" + bytes(range(200, 212))


def req(**kw: object) -> AnnounceRequest:
    base: dict[str, object] = dict(
        info_hash=IH, peer_id=PID, port=6881, uploaded=1, downloaded=2, left=3, event=""
    )
    base.update(kw)
    return AnnounceRequest(**base)  # type: ignore[arg-type]


def raw_params(url: str) -> dict[str, bytes]:
    """Query params decoded to raw bytes (parse_qs would mangle non-UTF-8 bytes)."""
    out = {}
    for part in urlsplit(url).query.split("&"):
        key, _, value = part.partition("=")
        out[key] = unquote_to_bytes(value)
    return out


# -- announce URL -----------------------------------------------------------------


def test_all_256_byte_values_round_trip() -> None:
    data = bytes(range(256))
    encoded = percent_encode(data)
    assert unquote_to_bytes(encoded) == data
    assert all(c.isascii() and (c.isalnum() or c in "-._~%") for c in encoded)
    for start in range(0, 256, 20):
        chunk = bytes((start + i) % 256 for i in range(20))
        url = build_announce_url("http://t.example/announce", req(info_hash=chunk, peer_id=chunk))
        params = raw_params(url)
        assert params["info_hash"] == chunk
        assert params["peer_id"] == chunk


def test_unreserved_bytes_are_not_escaped() -> None:
    assert percent_encode(b"aZ09-._~") == "aZ09-._~"
    assert percent_encode(b" /?&=+") == "%20%2F%3F%26%3D%2B"


def test_announce_url_fields() -> None:
    url = build_announce_url(
        "http://t.example:6969/announce",
        req(event="started", numwant=30, key=0xABC, tracker_id=b"id 1"),
    )
    assert url.startswith("http://t.example:6969/announce?info_hash=")
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items() if k not in ("info_hash",)}
    assert q["port"] == "6881"
    assert (q["uploaded"], q["downloaded"], q["left"]) == ("1", "2", "3")
    assert q["compact"] == "1" and q["no_peer_id"] == "1"
    assert q["numwant"] == "30"
    assert q["key"] == "00000ABC"
    assert q["event"] == "started"
    assert q["trackerid"] == "id 1"


def test_event_omitted_when_empty_and_existing_query_kept() -> None:
    url = build_announce_url("https://t.example/announce?passkey=abc%2F#frag", req())
    assert "event=" not in url
    assert "trackerid" not in url
    assert url.startswith("https://t.example/announce?passkey=abc%2F&info_hash=")
    assert "#" not in url
    url2 = build_announce_url("http://t.example/announce?", req(compact=False))
    assert "?info_hash=" in url2 and "compact=0" in url2 and "no_peer_id" not in url2


def test_bad_request_values_are_refused() -> None:
    with pytest.raises(TrackerError):
        req(info_hash=b"short")
    with pytest.raises(TrackerError):
        req(event="paused")
    with pytest.raises(TrackerError):
        req(port=70000)


# -- announce answers ----------------------------------------------------------------


def compact4(*peers: tuple[str, int]) -> bytes:
    return b"".join(socket.inet_aton(ip) + port.to_bytes(2, "big") for ip, port in peers)


def test_compact_peers() -> None:
    body = encode(
        {
            b"interval": 900,
            b"min interval": 300,
            b"complete": 4,
            b"incomplete": 7,
            b"tracker id": b"xyz",
            b"peers": compact4(("10.0.0.1", 6881), ("127.0.0.1", 0), ("192.168.1.2", 51413)),
        }
    )
    resp = parse_announce_response(body)
    assert resp.interval == 900
    assert resp.min_interval == 300
    assert (resp.complete, resp.incomplete, resp.tracker_id) == (4, 7, b"xyz")
    assert resp.peers == (("10.0.0.1", 6881), ("192.168.1.2", 51413))  # port 0 dropped
    assert resp.warning is None


def test_compact_peers_with_partial_entry_is_refused() -> None:
    body = encode({b"interval": 900, b"peers": compact4(("10.0.0.1", 1)) + b"\x01\x02"})
    with pytest.raises(TrackerError, match="multiple of 6"):
        parse_announce_response(body)


def test_dictionary_peers_skip_bad_entries() -> None:
    peers = [
        {b"ip": b"10.0.0.2", b"port": 6000, b"peer id": b"x" * 20},
        {b"ip": b"::1", b"port": 7000},
        {b"ip": b"not an ip", b"port": 1},
        {b"ip": b"10.0.0.3", b"port": 70000},
        {b"ip": b"10.0.0.4", b"port": b"80"},
        {b"ip": b"10.0.0.5", b"port": 0},
        {b"port": 5},
        b"junk",
        {b"ip": b"\xff\xfe", b"port": 9},
    ]
    resp = parse_announce_response(encode({b"interval": 100, b"peers": peers}))
    assert resp.peers == (("10.0.0.2", 6000), ("::1", 7000))


def test_peers6() -> None:
    blob = socket.inet_pton(socket.AF_INET6, "2001:db8::1") + (443).to_bytes(2, "big")
    blob += socket.inet_pton(socket.AF_INET6, "::1") + (9).to_bytes(2, "big")
    resp = parse_announce_response(encode({b"interval": 100, b"peers": b"", b"peers6": blob}))
    assert resp.peers == (("2001:db8::1", 443), ("::1", 9))
    with pytest.raises(TrackerError, match="multiple of 18"):
        parse_announce_response(encode({b"interval": 100, b"peers6": blob[:-1]}))


def test_failure_reason() -> None:
    with pytest.raises(TrackerError) as info:
        parse_announce_response(encode({b"failure reason": b"torrent not registered"}))
    assert str(info.value) == "torrent not registered"


def test_warning_is_kept() -> None:
    resp = parse_announce_response(encode({b"interval": 100, b"warning message": b"be nice"}))
    assert resp.warning == "be nice"


def test_interval_default_and_clamp() -> None:
    assert parse_announce_response(encode({b"peers": b""})).interval == 1800
    assert parse_announce_response(encode({b"interval": 5})).interval == 60
    assert parse_announce_response(encode({b"interval": 0})).interval == 60
    assert parse_announce_response(encode({b"interval": 10**30})).interval == 7 * 24 * 3600
    resp = parse_announce_response(encode({b"interval": 120, b"min interval": 600}))
    assert (resp.interval, resp.min_interval) == (120, 600)


@pytest.mark.parametrize(
    "body,message",
    [
        (b"<html>502 Bad Gateway</html>", "not valid bencode"),
        (b"", "not valid bencode"),
        (encode([1, 2]), "not a dictionary"),
        (encode({b"interval": b"1800"}), "'interval' must be an integer"),
        (encode({b"interval": -5}), "negative"),
        (encode({b"peers": 5}), "'peers' must be"),
        (encode({b"peers6": []}), "'peers6' must be"),
        (encode({b"failure reason": 3}), "tracker failure"),
        (encode({b"interval": 60, b"complete": b"x"}), "'complete'"),
    ],
)
def test_garbage_is_a_tracker_error(body: bytes, message: str) -> None:
    with pytest.raises(TrackerError, match=message):
        parse_announce_response(body)


bencode_values = st.recursive(
    st.integers(min_value=-(2**70), max_value=2**70) | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    b"interval",
                    b"min interval",
                    b"peers",
                    b"peers6",
                    b"complete",
                    b"incomplete",
                    b"tracker id",
                    b"warning message",
                    b"failure reason",
                    b"files",
                    b"ip",
                    b"port",
                    IH,
                ]
            )
            | st.binary(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(bencode_values)
def test_fuzz_structured_only_tracker_errors(value: object) -> None:
    body = encode(value)
    for parse in (parse_announce_response, lambda b: parse_scrape_response(b, IH)):
        try:
            parse(body)
        except TrackerError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_bytes_only_tracker_errors(body: bytes) -> None:
    for parse in (parse_announce_response, lambda b: parse_scrape_response(b, IH)):
        try:
            parse(body)
        except TrackerError:
            pass


# -- scrape ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "announce,scrape",
    [
        ("http://t.example/announce", "http://t.example/scrape"),
        ("http://t.example/x/announce.php?pk=1", "http://t.example/x/scrape.php?pk=1"),
        ("http://t.example/announce?a=b#f", "http://t.example/scrape?a=b"),
        ("http://t.example/scrape", "http://t.example/scrape"),
        ("http://t.example/a", None),
        ("http://t.example/announce/x", None),
        ("http://t.example", None),
    ],
)
def test_build_scrape_url(announce: str, scrape: str | None) -> None:
    assert build_scrape_url(announce) == scrape


def test_scrape_request_url() -> None:
    url = build_scrape_request_url("http://t.example/scrape?pk=1", IH)
    assert url.startswith("http://t.example/scrape?pk=1&info_hash=")
    assert raw_params(url)["info_hash"] == IH


def test_parse_scrape_response() -> None:
    files = {IH: {b"complete": 5, b"incomplete": 2, b"downloaded": 40}, b"o" * 20: {}}
    assert parse_scrape_response(encode({b"files": files}), IH) == (5, 2, 40)
    assert parse_scrape_response(encode({b"files": {IH: {}}}), IH) == (0, 0, 0)
    with pytest.raises(TrackerError, match="does not list"):
        parse_scrape_response(encode({b"files": {}}), IH)
    with pytest.raises(TrackerError, match="no 'files'"):
        parse_scrape_response(encode({b"x": 1}), IH)
    with pytest.raises(TrackerError, match="go away"):
        parse_scrape_response(encode({b"failure reason": b"go away"}), IH)


# -- issue 13 class 6: what a tracker says is cleaned and bounded --------------------------------
def test_failure_and_warning_texts_are_cleaned_and_bounded() -> None:
    from btd.core.limits import TRACKER_MESSAGE_MAX
    from btd.core.tracker.codec import clean_message

    with pytest.raises(TrackerError) as info:
        parse_announce_response(encode({b"failure reason": b"\x1b[31mno\x1b[0m\nway\x00" * 10**5}))
    text = str(info.value)
    assert text.startswith("no way no way") and len(text) <= TRACKER_MESSAGE_MAX
    assert text.endswith("...") and "\x1b" not in text and "\n" not in text
    resp = parse_announce_response(
        encode({b"warning message": "\x9b2Jhi\x07".encode(), b"peers": b""})
    )
    assert resp.warning == "2Jhi"
    assert clean_message("\x1b]0;title\x07ok\x1bc") == "ok"
    assert clean_message("a\tb\r\n\r\nc") == "a b c"

"""The pure half of web seeds: URLs, file spans, merged requests, HTTP answers."""

from __future__ import annotations

import email.utils

import pytest

from btd.core.outbound import check_web_seed_url, refused_web_seed_address
from btd.core.types import BlockRef
from btd.plugins.web_seed.ranges import (
    BlockQueue,
    Span,
    backoff,
    file_spans,
    file_url,
    gives_up,
    parse_content_range,
    range_header,
    retry_after,
)

K16 = 16 * 1024


# -- URLs (BEP 19) ---------------------------------------------------------------------------
def test_a_single_file_url_is_the_url_itself() -> None:
    assert file_url("http://h/x/file.iso", ("file.iso",), multi_file=False) == "http://h/x/file.iso"


def test_a_single_file_url_ending_in_a_slash_gets_the_name() -> None:
    assert file_url("http://h/pub/", ("a b.iso",), multi_file=False) == "http://h/pub/a%20b.iso"


def test_a_multi_file_url_gets_name_and_path_each_segment_encoded() -> None:
    path = ("My Torrent", "sub dir", "ü%#?.bin")
    want = "http://h/m/My%20Torrent/sub%20dir/%C3%BC%25%23%3F.bin"
    assert file_url("http://h/m/", path, multi_file=True) == want
    assert file_url("http://h/m", path, multi_file=True) == want  # the slash is added


def test_unreserved_characters_stay() -> None:
    assert file_url("http://h/", ("a-b_c.d~e(1)",), multi_file=True) == "http://h/a-b_c.d~e(1)"


# -- spans -------------------------------------------------------------------------------------
OFFSETS = [0, 100, 100, 250]  # a 100-byte file, an empty one, 150 bytes, 50 bytes of padding
LENGTHS = [100, 0, 150, 50]
PADS = [False, False, False, True]


def test_a_range_inside_one_file_is_one_span() -> None:
    assert file_spans(OFFSETS, LENGTHS, PADS, 10, 20) == [Span(0, 10, 20)]


def test_a_range_across_files_skips_empty_ones_and_marks_padding() -> None:
    assert file_spans(OFFSETS, LENGTHS, PADS, 90, 210) == [
        Span(0, 90, 10),
        Span(2, 0, 150),
        Span(3, 0, 50, pad=True),
    ]


def test_a_range_starting_at_a_file_edge() -> None:
    assert file_spans(OFFSETS, LENGTHS, PADS, 100, 10) == [Span(2, 0, 10)]


@pytest.mark.parametrize(("start", "length"), [(-1, 5), (0, 0), (290, 11), (300, 1)])
def test_a_range_outside_the_torrent_is_refused(start: int, length: int) -> None:
    with pytest.raises(ValueError, match="outside the torrent"):
        file_spans(OFFSETS, LENGTHS, PADS, start, length)


# -- the request queue ---------------------------------------------------------------------
def test_contiguous_requests_merge_across_pieces_up_to_the_cap() -> None:
    q = BlockQueue(piece_length=2 * K16, limit=100)
    for ref in [
        BlockRef(0, 0, K16),
        BlockRef(0, K16, K16),
        BlockRef(1, 0, K16),
        BlockRef(5, 0, K16),
    ]:
        assert q.add(ref)
    assert q.take_run(10 * K16) == [BlockRef(0, 0, K16), BlockRef(0, K16, K16), BlockRef(1, 0, K16)]
    assert q.take_run(10 * K16) == [BlockRef(5, 0, K16)]
    assert len(q) == 0 and q.take_run(K16) == []


def test_a_run_stops_at_the_byte_cap_and_at_a_gap() -> None:
    q = BlockQueue(piece_length=4 * K16, limit=100)
    for b in (0, 1, 2, 3):
        q.add(BlockRef(0, b * K16, K16))
    assert q.take_run(2 * K16) == [BlockRef(0, 0, K16), BlockRef(0, K16, K16)]
    q.cancel(BlockRef(0, 3 * K16, K16))
    q.add(BlockRef(1, 0, K16))  # not contiguous with block 2 any more
    assert q.take_run(10 * K16) == [BlockRef(0, 2 * K16, K16)]


def test_runs_start_with_the_oldest_request() -> None:
    q = BlockQueue(piece_length=K16, limit=100)
    q.add(BlockRef(3, 0, K16))
    q.add(BlockRef(2, 0, K16))
    assert q.take_run(10 * K16) == [BlockRef(3, 0, K16)]  # block 2 precedes it: not merged


def test_cancel_duplicates_and_the_limit() -> None:
    q = BlockQueue(piece_length=K16, limit=2)
    assert q.add(BlockRef(0, 0, K16)) and not q.add(BlockRef(0, 0, K16))
    assert q.add(BlockRef(1, 0, K16)) and not q.add(BlockRef(2, 0, K16))  # full
    assert q.cancel(BlockRef(0, 0, K16)) and not q.cancel(BlockRef(0, 0, K16))
    assert q.clear() == [BlockRef(1, 0, K16)] and len(q) == 0


# -- HTTP answers ------------------------------------------------------------------------------
def test_content_range() -> None:
    assert parse_content_range("bytes 0-99/1000") == (0, 99)
    assert parse_content_range("Bytes 5-5/*") == (5, 5)
    assert parse_content_range("bytes 9-3/10") is None
    assert parse_content_range("bytes */1000") is None
    assert parse_content_range("") is None
    assert range_header(100, 50) == "bytes=100-149"


def test_retry_after_seconds_dates_and_the_cap() -> None:
    assert retry_after("7", 0.0, 300) == 7.0
    assert retry_after("100000", 0.0, 300) == 300
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 42, usegmt=True)
    assert retry_after(date, now, 300) == pytest.approx(42, abs=1)
    assert retry_after(email.utils.formatdate(now - 5, usegmt=True), now, 300) == 0.0
    assert retry_after("soon", now, 300) is None
    assert retry_after(None, now, 300) is None


def test_backoff_doubles_to_the_cap() -> None:
    assert [backoff(n, 5, 30) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 30, 30]


@pytest.mark.parametrize(
    ("status", "final"),
    [(404, True), (403, True), (410, True), (408, False), (429, False), (500, False), (503, False)],
)
def test_which_statuses_give_up(status: int, final: bool) -> None:
    assert gives_up(status) is final


# -- the outbound policy for web seeds (core/outbound.py) --------------------------------------
def test_a_public_web_seed_is_used() -> None:
    verdict = check_web_seed_url("http://mirror.example.org/pub/?a=1", allow_local=False)
    assert verdict.refused is None and not verdict.local_ok


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/x", "http://localhost/x", "http://[::1]/x", "http://10.1.2.3/"]
)
def test_a_local_web_seed_needs_the_option(url: str) -> None:
    refused = check_web_seed_url(url, allow_local=False).refused
    assert refused is not None and "allow_local_trackers" in refused
    verdict = check_web_seed_url(url, allow_local=True)
    assert verdict.refused is None and verdict.local_ok


def test_a_local_web_seed_with_a_query_string_is_refused_even_with_the_option() -> None:
    refused = check_web_seed_url("http://127.0.0.1/x?cmd=reboot", allow_local=True).refused
    assert refused is not None and "query string" in refused


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/", "http://[fe80::1]/x"])
def test_link_local_is_never_asked(url: str) -> None:
    refused = check_web_seed_url(url, allow_local=True).refused
    assert refused is not None and "link-local" in refused


@pytest.mark.parametrize("url", ["ftp://h/x", "file:///etc/passwd", "http:///nohost"])
def test_only_http_urls_with_a_host(url: str) -> None:
    assert check_web_seed_url(url, allow_local=True).refused is not None


def test_the_address_a_name_resolved_to_is_judged() -> None:
    assert "allow_local_trackers" in (refused_web_seed_address("127.0.0.1", False) or "")
    assert refused_web_seed_address("127.0.0.1", True) is None
    assert "link-local" in (refused_web_seed_address("169.254.169.254", True) or "")
    assert refused_web_seed_address("93.184.216.34", False) is None


def test_a_web_seed_address_is_shown_as_its_url() -> None:
    from btd.core.types import format_address

    assert format_address(("http://h:8/x/", 0)) == "http://h:8/x/"
    assert format_address(("::1", 6881)) == "[::1]:6881"
    assert format_address(("10.0.0.1", 6881)) == "10.0.0.1:6881"

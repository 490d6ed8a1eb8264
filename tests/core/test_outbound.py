"""The outbound policy (core/outbound.py): which tracker URLs btd may ask (issue 13 class 4)."""

from __future__ import annotations

import pytest

from btd.core.outbound import check_url, is_local, parse_ip, refused_address

LOCAL_HOSTS = [
    "127.0.0.1",
    "127.1.2.3",
    "[::1]",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata services live here
    "100.64.0.1",
    "0.0.0.0",
    "[::]",
    "[fe80::1]",
    "[fd00::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:192.168.0.1]",
    "224.0.0.1",
    "localhost",
    "LOCALHOST.",
    "printer.localhost",
]


@pytest.mark.parametrize("host", LOCAL_HOSTS)
def test_local_hosts_need_a_tracker_path(host: str) -> None:
    verdict = check_url(f"http://{host}:9091/transmission/rpc?x=1")
    assert verdict.refused is not None and "SSRF" in verdict.refused
    assert check_url(f"udp://{host}:6969").refused is not None
    assert check_url(f"http://{host}:6969/announce").refused is None
    assert check_url(f"udp://{host}:6969/announce").local_ok
    assert check_url(f"http://{host}:6969/a/announce.php?passkey=1").refused is None
    assert check_url(f"http://{host}/scrape").refused is None
    allowed = check_url(f"http://{host}:9091/rpc", allow_local=True)
    assert allowed.refused is None and allowed.local_ok


@pytest.mark.parametrize("host", ["1.2.3.4", "[2001:4860::1]", "tracker.example", "a"])
def test_public_hosts_may_have_any_path(host: str) -> None:
    verdict = check_url(f"http://{host}/ann?pk=1")
    assert verdict.refused is None
    assert not verdict.local_ok  # a name must not resolve to a local address


def test_resolved_addresses() -> None:
    assert refused_address("127.0.0.1", local_ok=False) is not None
    assert "resolves to 10.0.0.7" in (refused_address("10.0.0.7", local_ok=False) or "")
    assert refused_address("::ffff:127.0.0.1", local_ok=False) is not None
    assert refused_address("127.0.0.1", local_ok=True) is None
    assert refused_address("93.184.216.34", local_ok=False) is None
    assert refused_address("not an address", local_ok=False) is None


def test_ip_literals() -> None:
    assert parse_ip("[::1]") is not None and is_local(parse_ip("[::1]"))  # type: ignore[arg-type]
    assert parse_ip("fe80::1%eth0") is not None
    assert parse_ip("tracker.example") is None
    assert check_url("http://[::1:6969/announce").refused is not None  # not a URL

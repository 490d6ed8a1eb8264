from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from btd.core.errors import MetainfoError
from btd.core.magnet import Magnet, parse_magnet

HASH = bytes(range(20))


def test_hex_hash_name_trackers_and_peers() -> None:
    uri = (
        f"magnet:?xt=urn:btih:{HASH.hex().upper()}&dn=My%20File&tr=http%3A%2F%2F127.0.0.1%2Fa"
        "&tr=udp://127.0.0.1:80&tr=ftp://nope&x.pe=127.0.0.1:6881&x.pe=[::1]:51413"
    )
    m = parse_magnet(uri)
    assert m.info_hash == HASH
    assert m.name == "My File"
    assert m.trackers == ("http://127.0.0.1/a", "udp://127.0.0.1:80")
    assert m.peers == (("127.0.0.1", 6881), ("::1", 51413))


def test_base32_hash() -> None:
    b32 = base64.b32encode(HASH).decode()
    assert parse_magnet(f"magnet:?xt=urn:btih:{b32}").info_hash == HASH
    assert parse_magnet(f"magnet:?xt=urn:btih:{b32.lower()}").info_hash == HASH


def test_round_trip() -> None:
    m = Magnet(HASH, "a & b", ("http://127.0.0.1:1/announce",), (("::1", 5),))
    assert parse_magnet(m.to_uri()) == m


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://example/", "not a magnet link"),
        ("magnet:?dn=x", "no urn:btih"),
        ("magnet:?xt=urn:btih:1234", "40 hex or 32 base32"),
        ("magnet:?xt=urn:btih:" + "zz" * 20, "not 40 hex"),
        ("magnet:?xt=urn:btih:" + "1" * 32, "not valid base32"),
        (f"magnet:?xt=urn:btih:{HASH.hex()}&xt=urn:btih:{'00' * 20}", "two different"),
        (f"magnet:?xt=urn:btih:{HASH.hex()}&x.pe=host:1", "not an IP address"),
        (f"magnet:?xt=urn:btih:{HASH.hex()}&x.pe=127.0.0.1:0", "out of range"),
        ("magnet:?xt=urn:btih:" + "a" * 70000, "longer than 64 KiB"),
    ],
)
def test_bad_magnets_are_refused_clearly(uri: str, message: str) -> None:
    with pytest.raises(MetainfoError, match=message):
        parse_magnet(uri)


@given(st.text(max_size=300))
def test_garbage_raises_only_metainfo_error(text: str) -> None:
    try:
        parse_magnet("magnet:?" + text)
    except MetainfoError:
        pass


# -- issue 13 class 6: dn bounded and cleaned, malformed escapes refused -------------------------
def test_dn_loses_control_characters() -> None:
    m = parse_magnet(f"magnet:?xt=urn:btih:{HASH.hex()}&dn=a%00b%1B%5B31mred%1B%5B0m%0A")
    assert m.name == "ab[31mred[0m"
    assert parse_magnet(f"magnet:?xt=urn:btih:{HASH.hex()}&dn=%00%07").name is None


def test_dn_is_bounded() -> None:
    from btd.core.limits import MAX_MAGNET_NAME

    ok = parse_magnet(f"magnet:?xt=urn:btih:{HASH.hex()}&dn={'x' * MAX_MAGNET_NAME}")
    assert ok.name == "x" * MAX_MAGNET_NAME
    with pytest.raises(MetainfoError, match="dn: 1025 characters"):
        parse_magnet(f"magnet:?xt=urn:btih:{HASH.hex()}&dn={'x' * (MAX_MAGNET_NAME + 1)}")


@pytest.mark.parametrize("tail", ["&dn=100%", "&dn=a%zzb", "&tr=http://t/%G1announce", "&dn=%4"])
def test_malformed_escapes_are_refused(tail: str) -> None:
    with pytest.raises(MetainfoError, match="is not a %-escape"):
        parse_magnet(f"magnet:?xt=urn:btih:{HASH.hex()}{tail}")


@pytest.mark.parametrize("host", ["[v:1]", "[:1]", "::1]"])
def test_a_tracker_with_a_malformed_ipv6_host_is_ignored(host: str) -> None:
    """Found by tests/fuzz: urllib's ValueError escaped parse_magnet."""
    magnet = parse_magnet(f"magnet:?xt=urn:btih:{'ab' * 20}&tr=udp://{host}:6969")
    assert magnet.trackers == ()


# -- BitTorrent v2 (BEP 52): xt=urn:btmh:1220<64 hex> ---------------------------------------------
V2 = bytes(range(32))
BTMH = "urn:btmh:1220" + V2.hex()


def test_btmh_only_magnet_names_the_swarm_by_its_first_20_bytes() -> None:
    mag = parse_magnet(f"magnet:?xt={BTMH}&dn=v2")
    assert mag.info_hash == V2[:20] and mag.info_hash_v2 == V2 and not mag.v1
    assert mag.metadata_hash == V2  # the info dictionary is checked by SHA-256
    assert parse_magnet(mag.to_uri()) == mag
    assert "btih" not in mag.to_uri()


def test_hybrid_magnet_keeps_its_v1_swarm() -> None:
    v1 = "c" * 40
    mag = parse_magnet(f"magnet:?xt=urn:btih:{v1}&xt={BTMH}")
    assert mag.hex == v1 and mag.info_hash_v2 == V2 and mag.v1
    assert mag.metadata_hash == bytes.fromhex(v1)
    assert parse_magnet(mag.to_uri()) == mag


@pytest.mark.parametrize(
    "xt, why",
    [
        ("urn:btmh:1114" + "ab" * 20, "SHA-256 multihash"),
        ("urn:btmh:1220" + "ab" * 31, "68 hex digits"),
        ("urn:btmh:1220" + "zz" * 32, "not hex"),
    ],
)
def test_bad_btmh_is_refused(xt: str, why: str) -> None:
    with pytest.raises(MetainfoError, match=why):
        parse_magnet(f"magnet:?xt={xt}")


def test_two_different_btmh_hashes_are_refused() -> None:
    with pytest.raises(MetainfoError, match="two different"):
        parse_magnet(f"magnet:?xt={BTMH}&xt.2=urn:btmh:1220{'ee' * 32}")

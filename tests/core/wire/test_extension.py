"""BEP 10 extension handshake codec and the per-connection id registry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btd.core import bencode
from btd.core.errors import ProtocolError
from btd.core.wire.codec import WireDecoder, encode
from btd.core.wire.extension import (
    ExtensionHandshake,
    ExtensionRegistry,
    decode_extension_handshake,
    encode_extension_handshake,
)
from btd.core.wire.messages import Extended


def test_round_trip_all_fields() -> None:
    h = ExtensionHandshake(
        m={"ut_metadata": 2, "ut_pex": 1, "lt_donthave": 0},
        v="btd 0.1.0",
        p=6881,
        reqq=2000,
        metadata_size=31337,
        yourip=bytes([127, 0, 0, 1]),
        ipv4=bytes([127, 0, 0, 2]),
        ipv6=bytes(15) + b"\x01",
        upload_only=True,
        extra={b"complete_ago": 5},
    )
    msg = encode_extension_handshake(h)
    assert msg.ext_id == 0
    assert decode_extension_handshake(msg.payload) == h
    # and through the wire codec
    (back,) = WireDecoder(expect_handshake=False).feed(encode(msg))
    assert isinstance(back, Extended) and decode_extension_handshake(back.payload) == h


def test_minimal_round_trip_and_wire_form() -> None:
    msg = encode_extension_handshake(ExtensionHandshake(m={"ut_pex": 1}))
    assert msg == Extended(0, b"d1:md6:ut_pexi1eee")
    assert decode_extension_handshake(b"de") == ExtensionHandshake()


def test_libtorrent_style_handshake() -> None:
    payload = bencode.encode(
        {
            b"m": {b"ut_metadata": 3, b"ut_pex": 1, b"upload_only": 4},
            b"v": b"libtorrent 2.0.9",
            b"p": 51413,
            b"reqq": 500,
            b"metadata_size": 4321,
            b"yourip": bytes(16),
            b"complete_ago": -1,
        }
    )
    h = decode_extension_handshake(payload)
    assert h.m == {"ut_metadata": 3, "ut_pex": 1, "upload_only": 4}
    assert (h.v, h.p, h.reqq, h.metadata_size) == ("libtorrent 2.0.9", 51413, 500, 4321)
    assert h.yourip == bytes(16) and h.extra == {b"complete_ago": -1}


def test_wrong_types_for_known_keys_are_ignored() -> None:
    payload = bencode.encode(
        {
            b"m": {b"ok": 1, b"neg": -1, b"big": 256, b"str": b"x", b"\xff\xfe": 5},
            b"v": 12,
            b"p": b"6881",
            b"reqq": 0,
            b"metadata_size": -5,
            b"yourip": b"abc",
            b"ipv4": bytes(16),
            b"ipv6": bytes(4),
            b"upload_only": b"yes",
        }
    )
    h = decode_extension_handshake(payload)
    assert h == ExtensionHandshake(m={"ok": 1})


def test_port_out_of_range_ignored_and_bad_utf8_client_name_replaced() -> None:
    h = decode_extension_handshake(bencode.encode({b"p": 70000, b"v": b"caf\xe9"}))
    assert h.p is None and h.v == "caf\ufffd"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"d",
        b"le",
        b"i3e",
        b"4:spam",
        b"d1:mi1ee",
        b"d1:mle",
        b"de trailing",
        b"\xff" * 9,
        b"d1:md6:ut_pexi1eee junk",
    ],
)
def test_garbage_payload_is_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_extension_handshake(payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(payload: bytes) -> None:
    try:
        decode_extension_handshake(payload)
    except ProtocolError:
        pass


def test_deep_nesting_is_refused_not_crashed() -> None:
    with pytest.raises(ProtocolError):
        decode_extension_handshake(b"d1:x" + b"l" * 5000 + b"e" * 5000 + b"e")


# ----------------------------------------------------------------- registry


def test_registry_maps_both_directions() -> None:
    reg = ExtensionRegistry.from_names(["ut_metadata", "ut_pex"])
    assert dict(reg.local) == {"ut_metadata": 1, "ut_pex": 2}
    reg.update_remote({"ut_pex": 7, "lt_donthave": 3})
    assert reg.incoming_name(2) == "ut_pex" and reg.incoming_name(7) is None
    assert reg.outgoing_id("ut_pex") == 7 and reg.outgoing_id("ut_metadata") is None
    assert reg.peer_supports("lt_donthave") and not reg.peer_supports("ut_metadata")


def test_later_handshake_updates_and_disables() -> None:
    reg = ExtensionRegistry({"ut_pex": 1})
    reg.update_remote({"ut_pex": 7, "ut_metadata": 2})
    reg.update_remote({"ut_pex": 0, "ut_metadata": 9})
    assert dict(reg.remote) == {"ut_metadata": 9}


@pytest.mark.parametrize("local", [{"a": 0}, {"a": 256}, {"a": 1, "b": 1}, {"": 1}, {"a": "1"}])
def test_registry_refuses_bad_local_tables(local: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ExtensionRegistry(local)  # type: ignore[arg-type]


def test_registry_views_are_read_only() -> None:
    reg = ExtensionRegistry({"ut_pex": 1})
    with pytest.raises(TypeError):
        reg.local["x"] = 2  # type: ignore[index]

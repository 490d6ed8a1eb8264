"""Every parser of untrusted input, with what it may raise: anything else is a bug.

A target takes bytes (the fuzzer's input, or a saved crasher) and either returns or raises
one of its ``allowed`` exceptions. Timing is part of the contract too: no input of a few KB
may take long (``SLOW_SECONDS``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from btd.core import bencode
from btd.core.config import parse_config
from btd.core.errors import BencodeError, ConfigError, MetainfoError, ProtocolError, TrackerError
from btd.core.magnet import parse_magnet
from btd.core.metainfo import parse_info, parse_metainfo
from btd.core.rpc.dispatch import Batch, Dispatcher
from btd.core.rpc.framing import LineFramer
from btd.core.tracker.codec import parse_announce_response, parse_scrape_response
from btd.core.wire.codec import WireDecoder
from btd.core.wire.extension import decode_extension_handshake
from btd.core.wire.metadata import decode_message as decode_metadata
from btd.core.wire.mse import Responder, req2_key
from btd.plugins.dht.krpc import KrpcError
from btd.plugins.dht.krpc import decode_message as decode_krpc
from btd.plugins.dht.state import StateError, decode_state
from btd.plugins.pex_codec import decode_pex
from btd.plugins.udp_tracker.codec import parse_reply as parse_udp_reply
from btd.plugins.utp.packet import decode as decode_utp

SLOW_SECONDS = 1.0


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], Any]
    allowed: tuple[type[BaseException], ...]


def _bencode(data: bytes) -> None:
    for fn in (bencode.decode, bencode.decode_prefix, bencode.decode_with_span):
        try:
            fn(data, max_depth=64, max_tokens=100_000)
        except BencodeError as exc:
            assert 0 <= exc.offset <= len(data)


def _wire(data: bytes) -> None:
    """The whole stream, then the same bytes in odd-sized pieces: the same verdict."""
    verdicts = []
    for step in (len(data) or 1, 7, 1):
        decoder = WireDecoder(expect_handshake=data[:1] == b"\x13")
        decoder.set_num_pieces(100)
        try:
            for i in range(0, len(data), step):
                decoder.feed(data[i : i + step])
            verdicts.append("ok")
        except ProtocolError:
            verdicts.append("error")
    assert len(set(verdicts)) == 1, verdicts


_MSE_HASH = b"\x22" * 20


def _mse(data: bytes) -> None:
    """A responder fed a stranger's bytes: raw (the key exchange and sync), and as the
    encrypted head behind a correct exchange (the lengths and the initial payload)."""
    from mse_forge import forged_request, public_key

    lookup = {req2_key(_MSE_HASH): _MSE_HASH}.get
    for step in (len(data) or 1, 5):
        raw = Responder(lookup)
        for i in range(0, len(data), step):
            raw.receive(data[i : i + step])
    forged = Responder(lookup)
    forged.receive(forged_request(forged.receive(public_key()), _MSE_HASH, data))


def _udp(data: bytes) -> None:
    parse_udp_reply(data)
    parse_udp_reply(data, ipv6=True)


def _utp(data: bytes) -> None:
    """A datagram parsed, and if it parses, encoded back to the same packet."""
    packet = decode_utp(data)
    assert decode_utp(packet.encode()) == packet


def _magnet(data: bytes) -> None:
    parse_magnet(data.decode("utf-8", "surrogateescape"))


def _config(data: bytes) -> None:
    parse_config(data.decode("utf-8", "replace"), "fuzz.yaml", env={})


def _scrape(data: bytes) -> None:
    parse_scrape_response(data, b"\x11" * 20)


def _info(data: bytes) -> None:
    parse_info(data)


def _echo(**params: Any) -> Any:
    return params


_DISPATCHER = Dispatcher({"echo.params": _echo, "session.info": lambda: {"version": "x"}})


def _rpc(data: bytes) -> None:
    """Frames from the socket, each dispatched: a reply is always valid JSON-RPC."""
    framer = LineFramer(max_frame=64 * 1024)
    try:
        frames = framer.feed(data + b"\n")
    except ProtocolError:
        return
    for frame in frames:
        answer = _DISPATCHER.dispatch(frame, connection=None)
        replies = (
            [_DISPATCHER.dispatch_member(m, None) for m in answer.members]
            if isinstance(answer, Batch)  # the server runs a batch member by member
            else [answer]
        )
        for reply in replies:
            for item in reply.items if reply is not None else ():
                message = getattr(item, "message", item)
                if isinstance(message, dict):
                    json.dumps(message)
                    assert message.get("jsonrpc") == "2.0", message


TARGETS = {
    t.name: t
    for t in (
        Target("bencode", _bencode, ()),
        Target("metainfo", parse_metainfo, (MetainfoError,)),
        Target("info", _info, (MetainfoError,)),
        Target("magnet", _magnet, (MetainfoError,)),
        Target("wire", _wire, ()),
        Target("extension_handshake", decode_extension_handshake, (ProtocolError,)),
        Target("ut_metadata", decode_metadata, (ProtocolError,)),
        Target("ut_pex", decode_pex, (ProtocolError,)),
        Target("mse", _mse, (ProtocolError,)),
        Target("tracker_http", parse_announce_response, (TrackerError,)),
        Target("tracker_scrape", _scrape, (TrackerError,)),
        Target("tracker_udp", _udp, (TrackerError,)),
        Target("utp", _utp, (ProtocolError,)),
        Target("krpc", decode_krpc, (KrpcError,)),
        Target("dht_state", decode_state, (StateError,)),
        Target("rpc", _rpc, ()),
        Target("config", _config, (ConfigError,)),
    )
}

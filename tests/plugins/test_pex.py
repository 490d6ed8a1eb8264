"""The pex plugin's handler with fake torrents and peers on a twisted Clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from twisted.internet.task import Clock

from btd.core import bencode
from btd.core.config import parse_config
from btd.core.errors import ConfigError, ProtocolError
from btd.core.extensions import Extensions
from btd.core.plugin import make_plugin_manager
from btd.plugins import pex
from btd.plugins.pex_codec import PexMessage, PexPeer, decode_pex, encode_pex

OUR_PORT = 6000


@dataclass
class FakeLink:
    address: tuple[str, int]
    outgoing: bool
    closed: bool = False


@dataclass
class FakeHas:
    complete: bool = False


class FakePeer:
    def __init__(
        self,
        address: tuple[str, int],
        *,
        outgoing: bool = True,
        listen_port: int | None = None,
        pex: bool = True,
        seed: bool = False,
    ) -> None:
        self.link = FakeLink(address, outgoing)
        self.listen_port = listen_port
        self.has = FakeHas(seed)
        self.ext = {"ut_pex"} if pex else set()
        self.sent: list[PexMessage] = []
        self.sent_at: list[float] = []
        self.clock: Clock | None = None

    def supports(self, name: str) -> bool:
        return name in self.ext

    def send_extended(self, name: str, payload: bytes) -> bool:
        if name not in self.ext:
            return False
        self.sent.append(decode_pex(payload))
        self.sent_at.append(self.clock.seconds() if self.clock else 0.0)
        return True


@dataclass(eq=False)
class FakeTorrent:
    clock: Clock
    private: bool = False
    peers: dict[Any, None] = field(default_factory=dict)
    learned: list[tuple[str, int]] = field(default_factory=list)

    def add_peers(self, addresses: list[tuple[str, int]]) -> int:
        new = [a for a in addresses if a not in self.learned]
        self.learned.extend(new)
        return len(new)


@pytest.fixture()
def clock() -> Clock:
    return Clock()


def make(
    clock: Clock, interval: float = 60, max_peers: int = 50, start: bool = True
) -> pex.PexHandler:
    handler = pex.PexHandler(pex.Settings(interval, max_peers), listen_port=lambda: OUR_PORT)
    if start:
        handler.start(clock)
    return handler


def connect(handler: pex.PexHandler, torrent: FakeTorrent, peer: FakePeer) -> FakePeer:
    peer.clock = torrent.clock
    torrent.peers[peer] = None
    handler.peer_ready(torrent, peer)
    return peer


def disconnect(handler: pex.PexHandler, torrent: FakeTorrent, peer: FakePeer) -> None:
    del torrent.peers[peer]
    handler.peer_gone(torrent, peer)


def addresses(msg: PexMessage) -> set[tuple[str, int]]:
    return {p.address for p in msg.added}


# -- sending --------------------------------------------------------------------------------
def test_first_message_lists_current_peers_with_flags(clock: Clock) -> None:
    handler, t = make(clock, start=False), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 7001), seed=True))
    b = connect(handler, t, FakePeer(("10.0.0.2", 40000), outgoing=False, listen_port=7002))
    connect(handler, t, FakePeer(("10.0.0.3", 40001), outgoing=False))  # no listen port
    connect(handler, t, FakePeer(("10.0.0.4", 7004), pex=False))
    clock.advance(5)
    assert a.sent == []  # nothing before the session started
    handler.start(clock)
    clock.advance(1)
    assert len(a.sent) == 1
    # not itself; the inbound peer under its listen port; the portless one left out;
    # 0x10: we reached it ourselves
    assert {p.address: p.flags for p in a.sent[0].added} == {
        ("10.0.0.2", 7002): 0,
        ("10.0.0.4", 7004): 0x10,
    }
    # the seed: 0x02 as well; b is not told about itself under its listen address
    assert {p.address: p.flags for p in b.sent[0].added} == {
        ("10.0.0.1", 7001): 0x12,
        ("10.0.0.4", 7004): 0x10,
    }
    assert handler.status()["messages_out"] == 3  # a, b and the portless inbound peer


def test_ipv6_peers_go_out_in_added6(clock: Clock) -> None:
    """BEP 11 on a dual-stack swarm: IPv6 peers are told in ``added6``, IPv4 in ``added``."""
    handler, t = make(clock, start=False), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 7001)))
    connect(handler, t, FakePeer(("2001:db8::7", 7007), seed=True))
    connect(handler, t, FakePeer(("::1", 7008)))
    handler.start(clock)
    clock.advance(1)
    payload = bencode.decode(encode_pex(a.sent[0]))
    assert len(payload[b"added6"]) == 2 * 18 and len(payload.get(b"added", b"")) == 0
    assert addresses(a.sent[0]) == {("2001:db8::7", 7007), ("::1", 7008)}


def test_diff_and_rate_limit(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    assert a.sent == []  # alone: nothing to say
    b = connect(handler, t, FakePeer(("10.0.0.2", 2)))
    # b's extension handshake is news for a, and b gets its first list: both at once
    assert [addresses(m) for m in a.sent] == [{("10.0.0.2", 2)}]
    assert [addresses(m) for m in b.sent] == [{("10.0.0.1", 1)}]
    clock.advance(1)
    c = connect(handler, t, FakePeer(("10.0.0.3", 3)))
    assert [addresses(m) for m in c.sent] == [{("10.0.0.1", 1), ("10.0.0.2", 2)}]
    disconnect(handler, t, b)
    for _ in range(58):
        clock.advance(1)
    assert len(a.sent) == 1 and clock.seconds() == 59  # the news waits for the minute
    clock.advance(1)
    assert len(a.sent) == 2 and a.sent_at == [0.0, 60.0]
    assert addresses(a.sent[1]) == {("10.0.0.3", 3)} and a.sent[1].dropped == (("10.0.0.2", 2),)
    clock.advance(1)
    assert len(c.sent) == 2 and c.sent_at == [1.0, 61.0] and c.sent[1].dropped == (("10.0.0.2", 2),)
    assert c.sent[1].added == ()
    for _ in range(120):
        clock.advance(1)
    assert len(a.sent) == 2 and len(c.sent) == 2  # nothing changed: nothing sent


def test_a_quiet_peer_hears_the_next_change_at_once(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    clock.advance(30)
    assert a.sent == []  # alone: nothing to say, and no minute starts
    connect(handler, t, FakePeer(("10.0.0.2", 2), pex=False))
    assert [addresses(m) for m in a.sent] == [{("10.0.0.2", 2)}]


def test_news_is_held_back_until_the_minute_passes(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    connect(handler, t, FakePeer(("10.0.0.2", 2)))
    for i in range(3, 10):
        clock.advance(5)
        connect(handler, t, FakePeer((f"10.0.0.{i}", i)))
    assert len(a.sent) == 1
    clock.advance(25)
    assert len(a.sent) == 2 and len(a.sent[1].added) == 7


def test_at_most_max_peers_per_message_rest_follows(clock: Clock) -> None:
    handler, t = make(clock, interval=10, start=False), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.1.0.1", 1)))
    for i in range(70):
        connect(handler, t, FakePeer((f"10.2.0.{i}", 100 + i), pex=False))
    handler.start(clock)
    clock.advance(1)
    assert len(a.sent) == 1 and len(a.sent[0].added) == 50
    clock.advance(9)
    assert len(a.sent) == 1
    clock.advance(1)
    assert len(a.sent) == 2 and len(a.sent[1].added) == 20
    assert addresses(a.sent[0]) | addresses(a.sent[1]) == {
        (f"10.2.0.{i}", 100 + i) for i in range(70)
    }
    small, t2 = make(clock, max_peers=5, start=False), FakeTorrent(clock)
    x = connect(small, t2, FakePeer(("10.3.0.1", 1)))
    for i in range(9):
        connect(small, t2, FakePeer((f"10.4.0.{i}", 1), pex=False))
    small.start(clock)
    clock.advance(1)
    assert len(x.sent[0].added) == 5


def test_private_torrents_send_nothing(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock, private=True)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    connect(handler, t, FakePeer(("10.0.0.2", 2)))
    clock.advance(120)
    assert a.sent == [] and handler.status()["torrents"] == 0


def test_peer_switching_pex_off_gets_nothing(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    a.ext.clear()  # a later extension handshake with ut_pex: 0
    handler.peer_ready(t, a)
    connect(handler, t, FakePeer(("10.0.0.2", 2)))
    clock.advance(1)
    assert a.sent == [] and handler.status()["peers"] == 1


def test_state_is_forgotten_when_peers_go(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    b = connect(handler, t, FakePeer(("10.0.0.2", 2)))
    handler.message(t, a, encode_pex(PexMessage()))
    disconnect(handler, t, a)
    disconnect(handler, t, b)
    assert handler.status()["torrents"] == 0 and handler._in == {}
    handler.stop()
    assert not handler.status()["running"]


# -- receiving ------------------------------------------------------------------------------
def pex_payload(*peers: tuple[str, int]) -> bytes:
    return encode_pex(PexMessage(added=tuple(PexPeer(h, p, 0) for h, p in peers)))


def test_added_peers_go_to_the_torrent(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    handler.message(t, a, pex_payload(("10.9.0.1", 5), ("2001:db8::2", 6), ("127.0.0.1", OUR_PORT)))
    assert t.learned == [("10.9.0.1", 5), ("2001:db8::2", 6)]  # not ourselves
    status = handler.status()
    assert status["messages_in"] == 1 and status["peers_learned"] == 2


def test_port_zero_is_ignored(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    payload = bencode.encode({b"added": bytes([10, 9, 0, 1, 0, 0, 10, 9, 0, 2, 0, 7])})
    handler.message(t, a, payload)
    assert t.learned == [("10.9.0.2", 7)]


def test_at_most_max_peers_taken_per_message(clock: Clock) -> None:
    handler, t = make(clock, max_peers=10), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    handler.message(t, a, pex_payload(*[(f"10.9.0.{i}", 5) for i in range(40)]))
    assert len(t.learned) == 10


def test_private_torrent_ignores_incoming(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock, private=True)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    handler.message(t, a, pex_payload(("10.9.0.1", 5)))
    handler.message(t, a, b"not even bencode")
    assert t.learned == [] and handler.status()["ignored_private"] == 2


def test_messages_sooner_than_45_s_are_ignored(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    handler.message(t, a, pex_payload(("10.9.0.1", 5)))
    clock.advance(30)
    handler.message(t, a, pex_payload(("10.9.0.2", 5)))
    assert t.learned == [("10.9.0.1", 5)] and handler.status()["ignored_early"] == 1
    clock.advance(15)
    handler.message(t, a, pex_payload(("10.9.0.3", 5)))
    assert t.learned[-1] == ("10.9.0.3", 5)


def test_a_flood_drops_the_peer(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    for _ in range(pex.FLOOD_MESSAGES):
        handler.message(t, a, pex_payload(("10.9.0.1", 5)))
        clock.advance(1)
    with pytest.raises(ProtocolError, match="flood"):
        handler.message(t, a, pex_payload(("10.9.0.1", 5)))
    assert handler.status()["floods"] == 1


def test_steady_senders_are_never_dropped(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    for _ in range(100):  # every 10 s: most ignored, never a flood
        handler.message(t, a, pex_payload(("10.9.0.1", 5)))
        clock.advance(10)
    assert handler.status()["floods"] == 0


def test_malformed_message_drops_the_peer(clock: Clock) -> None:
    handler, t = make(clock), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    with pytest.raises(ProtocolError):
        handler.message(t, a, bencode.encode({b"added": b"12345"}))
    assert handler.status()["malformed"] == 1


def test_short_interval_scales_the_incoming_limits(clock: Clock) -> None:
    handler, t = make(clock, interval=1), FakeTorrent(clock)
    a = connect(handler, t, FakePeer(("10.0.0.1", 1)))
    for i in range(30):
        handler.message(t, a, pex_payload((f"10.9.0.{i}", 5)))
        clock.advance(1)
    assert len(t.learned) == 30


# -- settings and the plugin ----------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, key",
    [
        ({"interval": 0.5}, "plugins.pex.interval"),
        ({"interval": "60"}, "plugins.pex.interval"),
        ({"interval": True}, "plugins.pex.interval"),
        ({"max_peers": 0}, "plugins.pex.max_peers"),
        ({"max_peers": 51}, "plugins.pex.max_peers"),
        ({"max_peers": 2.0}, "plugins.pex.max_peers"),
        ({"bogus": 1}, "plugins.pex.bogus"),
        ([1], "plugins.pex"),
    ],
)
def test_bad_settings(raw: Any, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        pex.validate(raw)
    assert info.value.key == key


def test_settings_defaults_and_values() -> None:
    assert pex.validate({}) == pex.Settings(60.0, 50)
    assert pex.validate({"interval": 1, "max_peers": 7}) == pex.Settings(1.0, 7)


def test_plugin_hooks(clock: Clock) -> None:
    host = make_plugin_manager({"pex": {}}, available={"pex": lambda: pex.PexPlugin})
    config = parse_config("plugins:\n  pex:\n    interval: 5\n    max_peers: 9\n", "btd.yaml")
    host.configure(config)
    handlers: dict[str, Any] = {}
    for contributed in host.call("btd_extension_handlers"):
        handlers.update(contributed)
    handler = handlers["ut_pex"]
    assert isinstance(handler, pex.PexHandler) and handler.settings == pex.Settings(5.0, 9)
    assert Extensions(handlers).ids["ut_pex"] == 1

    class FakeSession:
        reactor = clock
        listen_port = 4242

    session = FakeSession()
    host.call("btd_session_started", session=session)
    assert handler.running and handler.listen_port() == 4242
    (methods,) = host.call("btd_rpc_methods", session=session)
    status = methods["pex.status"]()
    assert status["running"] and status["interval"] == 5.0 and status["messages_in"] == 0
    host.call("btd_session_stopping", session=session)
    assert not handler.running
    other = make_plugin_manager({"pex": {}}, available={"pex": lambda: pex.PexPlugin})
    other.configure(parse_config("plugins:\n  pex: {}\n", "btd.yaml"))
    assert other.pm.get_plugin("pex").settings == pex.Settings()  # its own settings
    assert host.pm.get_plugin("pex").settings == pex.Settings(5.0, 9)

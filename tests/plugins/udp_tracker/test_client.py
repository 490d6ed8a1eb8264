"""UdpTrackerClient on a fake clock and a fake UDP port; the plugin's hooks.

The fake reactor is a task.Clock that also "listens" (a port recording what is sent)
and resolves names; tracker answers are injected with ``datagram_received``.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.python.failure import Failure

import btd.plugins.udp_tracker as plugin
from btd.core.config import parse_config
from btd.core.errors import ConfigError, TrackerError
from btd.core.plugin import make_plugin_manager
from btd.core.tracker.codec import AnnounceRequest, AnnounceResponse
from btd.plugins.udp_tracker.client import UdpTrackerClient

IH = bytes(range(20))
PID = b"-BT0100-" + b"abcdefghijkl"
URL = "udp://127.0.0.1:6969/announce"
TRACKER = ("127.0.0.1", 6969)
CID = 0x0123456789ABCDEF


class FakePort:
    def __init__(self, clock: task.Clock, interface: str) -> None:
        self.clock = clock
        self.interface = interface
        self.sent: list[tuple[float, bytes, tuple[str, int]]] = []
        self.listening = True
        self.fail_with: Exception | None = None

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((self.clock.seconds(), data, addr))

    def getHost(self) -> Any:
        return SimpleNamespace(host=self.interface, port=40000)

    def stopListening(self) -> defer.Deferred[None]:
        self.listening = False
        return defer.succeed(None)


class FakeReactor(task.Clock):
    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FakePort] = []
        self.names: dict[str, defer.Deferred[str]] = {}
        self.triggers: list[tuple[str, str, Any]] = []

    def listenUDP(self, port: int, protocol: Any, interface: str = "") -> FakePort:
        assert port == 0
        fake = FakePort(self, interface)
        self.ports.append(fake)
        return fake

    def resolve(self, name: str) -> defer.Deferred[str]:
        d: defer.Deferred[str] = defer.Deferred()
        self.names[name] = d
        return d


def request(event: str = "started", port: int = 6881) -> AnnounceRequest:
    return AnnounceRequest(
        info_hash=IH, peer_id=PID, port=port, uploaded=0, downloaded=0, left=100, event=event
    )


def action_tid(data: bytes) -> tuple[int, int]:
    """What a tracker reads: the action and transaction id of a request (after 8 bytes)."""
    return struct.unpack_from(">II", data, 8)


def connect_reply(tid: int, cid: int = CID) -> bytes:
    return struct.pack(">IIQ", 0, tid, cid)


def announce_reply(
    tid: int, peers: bytes = b"\x7f\x00\x00\x02\x1a\xe1", interval: int = 900
) -> bytes:
    return struct.pack(">IIIII", 1, tid, interval, 4, 7) + peers


@pytest.fixture()
def reactor() -> FakeReactor:
    return FakeReactor()


def make(reactor: FakeReactor, **kw: Any) -> tuple[UdpTrackerClient, FakePort]:
    client = UdpTrackerClient(reactor, **kw)
    port = client.listen()
    assert isinstance(port, FakePort)
    return client, port


def result_of(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    return out[0]


def error_of(d: defer.Deferred[Any]) -> str:
    res = result_of(d)
    assert isinstance(res, Failure), res
    assert res.check(TrackerError), res
    return str(res.value)


def do_connect(client: UdpTrackerClient, port: FakePort, cid: int = CID) -> None:
    _, data, addr = port.sent[-1]
    action, tid = action_tid(data)
    assert action == 0
    client.datagram_received(connect_reply(tid, cid), addr)


# -- the exchange -------------------------------------------------------------------------


def test_connect_then_announce(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    d = client.announce(URL, request())
    assert len(port.sent) == 1
    _, data, addr = port.sent[0]
    assert addr == TRACKER and len(data) == 16 and action_tid(data)[0] == 0
    do_connect(client, port)
    assert len(port.sent) == 2
    _, data, addr = port.sent[1]
    assert len(data) == 98 and addr == TRACKER
    cid, action, tid = struct.unpack_from(">QII", data)
    assert (cid, action) == (CID, 1)
    assert data[16:36] == IH and data[36:56] == PID
    assert not d.called
    client.datagram_received(announce_reply(tid), TRACKER)
    resp = result_of(d)
    assert resp == AnnounceResponse(900, None, None, 7, 4, (("127.0.0.2", 6881),), None)
    assert reactor.getDelayedCalls() == []  # no retransmission timer left behind
    assert client.stats()["pending"] == 0
    assert client.stats()["sent"] == 2 and client.stats()["connects"] == 1


def complete_announce(client: UdpTrackerClient, port: FakePort) -> Any:
    d = client.announce(URL, request(""))
    _, data, addr = port.sent[-1]
    if action_tid(data)[0] == 0:
        do_connect(client, port)
        _, data, addr = port.sent[-1]
    client.datagram_received(announce_reply(action_tid(data)[1]), addr)
    return result_of(d)


def test_connection_id_is_reused_for_60_seconds(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    complete_announce(client, port)
    reactor.advance(59)
    before = len(port.sent)
    complete_announce(client, port)
    assert len(port.sent) == before + 1  # no connect: straight to the announce
    assert struct.unpack_from(">Q", port.sent[-1][1])[0] == CID
    reactor.advance(2)  # 61 s after the connect: expired
    before = len(port.sent)
    complete_announce(client, port)
    assert len(port.sent) == before + 2
    assert action_tid(port.sent[before][1])[0] == 0
    assert client.stats()["connects"] == 2


def test_connection_ids_are_per_tracker(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    complete_announce(client, port)
    client.announce("udp://127.0.0.1:7000/announce", request())
    assert action_tid(port.sent[-1][1])[0] == 0  # another tracker: connect first


def test_retransmission_doubles_from_15_seconds(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    d = client.announce(URL, request())
    reactor.pump([1] * 8000)
    times = [t for t, _, _ in port.sent]
    assert times == [15 * (2**n - 1) for n in range(9)]  # 0, 15, 45, 105, ... 3825
    assert error_of(d) == "udp tracker timed out"
    assert reactor.seconds() >= 15 * (2**9 - 1)
    stats = client.stats()
    assert (stats["retransmits"], stats["timeouts"], stats["pending"]) == (8, 1, 0)
    assert reactor.getDelayedCalls() == []


def test_timeout_is_not_early(reactor: FakeReactor) -> None:
    client, port = make(reactor, retry_base=2, max_retries=2)
    d = client.announce(URL, request())
    for step in (2, 4, 7.5):
        reactor.advance(step)
    assert not d.called and len(port.sent) == 3
    reactor.advance(0.5)
    assert error_of(d) == "udp tracker timed out"


def test_no_retries(reactor: FakeReactor) -> None:
    client, port = make(reactor, retry_base=1, max_retries=0)
    d = client.announce(URL, request())
    reactor.advance(1)
    assert error_of(d) == "udp tracker timed out" and len(port.sent) == 1


def test_retransmission_reconnects_once_the_connection_id_expired(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    client.announce(URL, request())
    do_connect(client, port)  # t = 0: announce sent
    reactor.advance(15)  # announce again (id still valid)
    reactor.advance(30)  # t = 45: again
    reactor.advance(60)  # t = 105: the id is 105 s old: connect first
    actions = [action_tid(data)[0] for _, data, _ in port.sent]
    assert actions == [0, 1, 1, 1, 0]
    announce_tids = {action_tid(data)[1] for _, data, _ in port.sent[1:4]}
    assert len(announce_tids) == 1  # a retransmission keeps its transaction id


def test_late_answer_to_a_retransmitted_request_counts(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    d = client.announce(URL, request())
    do_connect(client, port)
    tid = action_tid(port.sent[-1][1])[1]
    reactor.advance(15)
    client.datagram_received(announce_reply(tid), TRACKER)
    assert isinstance(result_of(d), AnnounceResponse)


# -- what is ignored ----------------------------------------------------------------------


def test_bad_datagrams_are_ignored_and_counted(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    d = client.announce(URL, request())
    tid = action_tid(port.sent[-1][1])[1]
    client.datagram_received(connect_reply(tid ^ 1), TRACKER)  # unknown transaction
    client.datagram_received(connect_reply(tid), ("127.0.0.1", 6970))  # wrong port
    client.datagram_received(connect_reply(tid), ("127.0.0.2", 6969))  # wrong host
    client.datagram_received(b"\x00\x00", TRACKER)  # truncated header
    client.datagram_received(connect_reply(tid)[:12], TRACKER)  # truncated connect
    client.datagram_received(announce_reply(tid), TRACKER)  # wrong action for a connect
    client.datagram_received(struct.pack(">II", 9, tid) + b"junk", TRACKER)  # garbage action
    client.datagram_received(connect_reply(tid), ("not an ip", "x"))  # nonsense address
    stats = client.stats()
    assert stats["ignored_unknown_transaction"] == 1
    assert stats["ignored_wrong_source"] == 3
    assert stats["ignored_malformed"] == 4
    assert stats["received"] == 8
    assert not d.called and len(port.sent) == 1
    do_connect(client, port)  # the real answer still works
    atid = action_tid(port.sent[-1][1])[1]
    client.datagram_received(announce_reply(atid, peers=b"\x01\x02\x03"), TRACKER)  # ragged
    client.datagram_received(announce_reply(atid), ("127.0.0.1", 1))
    assert not d.called
    client.datagram_received(announce_reply(atid), TRACKER)
    assert isinstance(result_of(d), AnnounceResponse)
    client.datagram_received(announce_reply(atid), TRACKER)  # a duplicate, after the fact
    assert client.stats()["ignored_unknown_transaction"] == 2


@pytest.mark.parametrize("junk", [b"", b"\xff" * 7, b"\x00" * 8, b"\x00" * 2000])
def test_garbage_never_raises(reactor: FakeReactor, junk: bytes) -> None:
    client, _ = make(reactor)
    client.datagram_received(junk, TRACKER)
    assert client.stats()["received"] == 1


# -- errors -------------------------------------------------------------------------------


def test_error_action_fails_with_the_trackers_message(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    d = client.announce(URL, request())
    do_connect(client, port)
    tid = action_tid(port.sent[-1][1])[1]
    client.datagram_received(
        struct.pack(">II", 3, tid) + b"Requested download is not authorized", TRACKER
    )
    assert error_of(d) == "Requested download is not authorized"
    assert client.stats()["tracker_errors"] == 1
    assert reactor.getDelayedCalls() == []
    client.announce(URL, request())  # the error may be about our id: connect again
    assert action_tid(port.sent[-1][1])[0] == 0


def test_error_answer_to_a_connect(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    d = client.announce(URL, request())
    tid = action_tid(port.sent[-1][1])[1]
    client.datagram_received(struct.pack(">II", 3, tid) + b"go away", ("127.0.0.2", 6969))
    assert not d.called  # from a stranger: ignored
    client.datagram_received(struct.pack(">II", 3, tid) + b"go away", TRACKER)
    assert error_of(d) == "go away"


def test_send_failure_is_a_tracker_error(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    port.fail_with = OSError(101, "Network is unreachable")
    d = client.announce(URL, request())
    assert "Network is unreachable" in error_of(d)
    assert client.stats()["pending"] == 0 and reactor.getDelayedCalls() == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/a", "udp://127.0.0.1/announce", "udp://[::1"])
def test_bad_urls(reactor: FakeReactor, url: str) -> None:
    client, port = make(reactor)
    error_of(client.announce(url, request()))
    assert port.sent == []


def test_not_listening_and_closed(reactor: FakeReactor) -> None:
    client = UdpTrackerClient(reactor)
    assert "not listening" in error_of(client.announce(URL, request()))
    client.listen()
    d = client.announce(URL, request())
    closed = client.close()
    assert "closed" in error_of(d)
    assert result_of(closed) is None and not reactor.ports[0].listening
    assert reactor.getDelayedCalls() == []
    assert "not listening" in error_of(client.announce(URL, request()))
    assert result_of(client.close()) is None  # twice is fine


def test_cancel_forgets_the_transaction(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    d = client.announce(URL, request())
    tid = action_tid(port.sent[-1][1])[1]
    d.cancel()
    assert result_of(d).check(defer.CancelledError)
    assert client.stats()["pending"] == 0 and reactor.getDelayedCalls() == []
    client.datagram_received(connect_reply(tid), TRACKER)
    assert client.stats()["ignored_unknown_transaction"] == 1


# -- several trackers, names, IPv6 ----------------------------------------------------------


def test_two_trackers_share_the_socket(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    other = ("127.0.0.1", 7000)
    d1 = client.announce(URL, request())
    d2 = client.announce("udp://127.0.0.1:7000/announce", request())
    assert len(reactor.ports) == 1
    (_, c1, a1), (_, c2, a2) = port.sent
    assert (a1, a2) == (TRACKER, other)
    t1, t2 = action_tid(c1)[1], action_tid(c2)[1]
    assert t1 != t2
    client.datagram_received(connect_reply(t2, 222), TRACKER)  # B's id from A: refused
    assert client.stats()["ignored_wrong_source"] == 1
    client.datagram_received(connect_reply(t2, 222), other)
    client.datagram_received(connect_reply(t1, 111), TRACKER)
    (_, r2, a2), (_, r1, a1) = port.sent[2:]
    assert (a1, a2) == (TRACKER, other)
    assert struct.unpack_from(">Q", r1)[0] == 111 and struct.unpack_from(">Q", r2)[0] == 222
    client.datagram_received(announce_reply(action_tid(r1)[1], interval=100), TRACKER)
    client.datagram_received(announce_reply(action_tid(r2)[1], interval=200), other)
    assert result_of(d1).interval == 100 and result_of(d2).interval == 200


def test_hostnames_are_resolved_by_the_reactor(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    d = client.announce("udp://tracker.test:6969/announce", request())
    assert port.sent == [] and "tracker.test" in reactor.names
    reactor.names["tracker.test"].callback("127.0.0.3")
    assert port.sent[0][2] == ("127.0.0.3", 6969)
    do_connect(client, port)
    client.datagram_received(announce_reply(action_tid(port.sent[-1][1])[1]), ("127.0.0.3", 6969))
    assert isinstance(result_of(d), AnnounceResponse)


def test_resolution_failure(reactor: FakeReactor) -> None:
    client, _ = make(reactor)
    d = client.announce("udp://nowhere.test:6969", request())
    reactor.names["nowhere.test"].errback(OSError("no such host"))
    assert "cannot resolve nowhere.test" in error_of(d)


def test_cancel_while_resolving(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    d = client.announce("udp://slow.test:6969", request())
    d.cancel()
    reactor.names["slow.test"].callback("127.0.0.1")
    assert port.sent == [] and client.stats()["pending"] == 0


def test_ipv6_tracker_gets_18_byte_peers(reactor: FakeReactor) -> None:
    client, port = make(reactor, bind="::")
    d = client.announce("udp://[::1]:6969/announce", request())
    assert port.sent[0][2] == ("::1", 6969)
    do_connect(client, port)
    peer = bytes(15) + b"\x01" + b"\x1a\xe2"
    tid = action_tid(port.sent[-1][1])[1]
    client.datagram_received(announce_reply(tid, peers=peer), ("0:0::1", 6969))
    assert result_of(d).peers == (("::1", 6882),)


def test_ipv4_tracker_over_a_dual_stack_socket(reactor: FakeReactor) -> None:
    client, port = make(reactor, bind="::")
    d = client.announce(URL, request())
    assert port.sent[0][2] == ("::ffff:127.0.0.1", 6969)
    tid = action_tid(port.sent[0][1])[1]
    client.datagram_received(connect_reply(tid), ("::ffff:127.0.0.1", 6969))
    tid = action_tid(port.sent[-1][1])[1]
    client.datagram_received(announce_reply(tid), ("::ffff:127.0.0.1", 6969))
    assert result_of(d).peers == (("127.0.0.2", 6881),)  # 6-byte peers: an IPv4 request


def test_ipv6_tracker_needs_an_ipv6_socket(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    assert "IPv6" in error_of(client.announce("udp://[::1]:6969/announce", request()))
    assert port.sent == []


def test_scrape(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    d = client.scrape(URL, IH)
    do_connect(client, port)
    data = port.sent[-1][1]
    assert struct.unpack_from(">QII", data)[:2] == (CID, 2) and data[16:] == IH
    tid = action_tid(data)[1]
    client.datagram_received(struct.pack(">IIIII", 2, tid, 5, 9, 3), TRACKER)
    assert result_of(d) == (5, 3, 9)


# -- the plugin ---------------------------------------------------------------------------


@pytest.fixture()
def fresh_plugin() -> Any:
    return plugin.UdpTrackerPlugin()


def configure(udp: Any, settings: Any, listen_host: str = "0.0.0.0") -> None:
    session = SimpleNamespace(listen_host=listen_host)
    udp.btd_configure(SimpleNamespace(plugins={"udp_tracker": settings}, session=session))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "::"])
def test_the_socket_follows_listen_host_unless_bind_is_set(fresh_plugin: Any, host: str) -> None:
    """Issue 13 class 8: with listen_host naming one address, the UDP socket must not
    answer on every interface."""
    configure(fresh_plugin, None, listen_host=host)
    assert fresh_plugin.settings["bind"] == host
    configure(fresh_plugin, {"bind": "0.0.0.0"}, listen_host=host)
    assert fresh_plugin.settings["bind"] == "0.0.0.0"


def test_configure_takes_settings(fresh_plugin: Any) -> None:
    configure(fresh_plugin, {"retry_base": 0.5, "max_retries": 0, "bind": "::1"})
    assert fresh_plugin.settings == {"retry_base": 0.5, "max_retries": 0, "bind": "::1"}
    configure(fresh_plugin, None)
    assert fresh_plugin.settings == plugin.DEFAULTS


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"retry_base": 0}, "retry_base"),
        ({"retry_base": -1}, "retry_base"),
        ({"retry_base": "15"}, "retry_base"),
        ({"retry_base": True}, "retry_base"),
        ({"retry_base": float("inf")}, "retry_base"),
        ({"max_retries": 9}, "max_retries"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 2.0}, "max_retries"),
        ({"bind": "localhost"}, "bind"),
        ({"bind": 127}, "bind"),
        ({"timeout": 5}, "timeout"),
    ],
)
def test_configure_refuses_bad_settings(fresh_plugin: Any, settings: Any, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        configure(fresh_plugin, settings)
    assert info.value.key == f"plugins.udp_tracker.{key}"


def test_configure_through_the_plugin_manager() -> None:
    text = "plugins:\n  udp_tracker:\n    max_retries: 12\n"
    config = parse_config(text, "btd.yaml", env={"HOME": "/nonexistent"})
    host = make_plugin_manager(config.plugins)
    assert host.enabled == ("udp_tracker",)
    with pytest.raises(ConfigError, match=r"^btd\.yaml:3: plugins\.udp_tracker\.max_retries"):
        host.configure(config)
    info = {row["name"]: row for row in host.plugin_info()}["udp_tracker"]
    assert info["version"] == plugin.__version__
    assert "btd_tracker_client" in info["hooks"]


def session_for(reactor: FakeReactor) -> Any:
    daemon = SimpleNamespace(shutdown_timeout=5)
    return SimpleNamespace(reactor=reactor, config=SimpleNamespace(daemon=daemon))


def test_session_lifecycle(fresh_plugin: Any, reactor: FakeReactor) -> None:
    udp = fresh_plugin
    configure(udp, {"bind": "127.0.0.1", "retry_base": 1})
    handle = udp.btd_tracker_client(URL)
    assert handle is udp.trackers
    assert udp.btd_tracker_client("UDP://[::1]:1/announce") is handle
    assert udp.btd_tracker_client("http://127.0.0.1/announce") is None
    assert udp.btd_tracker_client("udpx://127.0.0.1:1") is None
    # Torrents restored at start announce before the socket is open: held, not failed.
    early = handle.announce(URL, request())
    cancelled = handle.announce(URL, request())
    cancelled.cancel()
    assert not early.called and handle.stats() == {}
    session = session_for(reactor)
    udp.btd_session_started(session)
    (port,) = reactor.ports
    assert port.interface == "127.0.0.1"
    assert isinstance(handle.client, UdpTrackerClient)
    assert len(port.sent) == 1 and handle.stats()["pending"] == 1  # the early one, only
    do_connect(handle.client, port)
    tid = action_tid(port.sent[-1][1])[1]
    handle.client.datagram_received(announce_reply(tid), TRACKER)
    assert isinstance(result_of(early), AnnounceResponse)
    assert not hasattr(udp, "btd_session_stopping")  # the torrents' stop comes first
    # The torrents' "stopped" announces go out while they stop...
    d = handle.announce(URL, request("stopped"))
    assert port.listening and len(port.sent) == 3
    # ...and once every torrent has stopped, the socket closes.
    closed = udp.btd_session_stopped(session)
    assert result_of(closed) is None
    assert not port.listening and reactor.getDelayedCalls() == []
    assert "closed" in error_of(d)
    assert handle.client is None and handle.stats() == {}
    assert "not open" in error_of(handle.scrape(URL, IH))
    assert udp.btd_session_stopped(session) is None  # nothing left to close
    configure(udp, {})  # the next session start (same process): hold requests again
    assert not handle.announce(URL, request()).called


def test_socket_that_cannot_open_fails_waiting_announces(
    fresh_plugin: Any, reactor: FakeReactor
) -> None:
    configure(fresh_plugin, {})
    early = fresh_plugin.trackers.announce(URL, request())

    def refuse(*args: Any, **kw: Any) -> Any:
        raise OSError(99, "Cannot assign requested address")

    reactor.listenUDP = refuse  # type: ignore[method-assign]
    with pytest.raises(OSError):
        fresh_plugin.btd_session_started(session_for(reactor))
    assert "cannot open the udp tracker socket" in error_of(early)
    assert "not open" in error_of(fresh_plugin.trackers.announce(URL, request()))


def test_two_managers_have_their_own_socket_handle() -> None:
    one, two = make_plugin_manager({"udp_tracker": {}}), make_plugin_manager({"udp_tracker": {}})
    a = one.first("btd_tracker_client", url=URL)
    b = two.first("btd_tracker_client", url=URL)
    assert isinstance(a, plugin.UdpTrackers) and isinstance(b, plugin.UdpTrackers)
    assert a is not b


def test_hooks_match_the_contract() -> None:
    host = make_plugin_manager({"udp_tracker": {}})
    host.pm.check_pending()


def test_close_while_resolving(reactor: FakeReactor) -> None:
    client, port = make(reactor)
    d = client.announce("udp://slow.test:6969", request())
    assert client.stats()["pending"] == 1
    client.close()
    assert error_of(d) == "udp tracker client closed"
    reactor.names["slow.test"].callback("127.0.0.1")
    assert port.sent == [] and client.stats()["pending"] == 0

"""DhtNode on a fake clock and a fake UDP port: answers, timeouts, rate limits, garbage."""

from __future__ import annotations

import random
from typing import Any

import pytest

from btd.core.bencode import encode
from btd.plugins.dht import krpc
from btd.plugins.dht.krpc import KrpcError
from btd.plugins.dht.node import DhtNode, KrpcRemoteError, KrpcTimeout

OWN = b"\x80" * 20
OTHER = b"\x01" * 20
IH = bytes(range(20))
PEER = ("127.0.0.5", 7000)


@pytest.fixture()
def reactor(dht_fakes: Any) -> Any:
    return dht_fakes.FakeReactor()


def make_node(reactor: Any, **kw: Any) -> DhtNode:
    node = DhtNode(reactor, OWN, bind="127.0.0.2", port=6881, rng=random.Random(1), **kw)
    node.listen()
    return node


def sent(reactor: Any) -> list[tuple[Any, tuple[str, int]]]:
    port = reactor.ports[0]
    out = [(krpc.decode_message(d), a) for d, a in port.sent]
    port.sent.clear()
    return out


def query(node: DhtNode, q: krpc.Query, addr: tuple[str, int] = PEER) -> None:
    node.datagram_received(krpc.encode_query(q), addr)


def test_answers_ping_and_pings_back_an_unknown_querier(reactor: Any) -> None:
    node = make_node(reactor)
    assert reactor.ports[0].port == 6881 and node.port == 6881
    query(node, krpc.Ping(b"t1", OTHER))
    (answer, to), (verify, to2) = sent(reactor)
    assert answer == krpc.Response(b"t1", OWN) and to == PEER
    assert isinstance(verify, krpc.Ping) and to2 == PEER
    assert len(node.routing) == 0  # not before it answers
    node.datagram_received(krpc.encode_response(verify.tid, OTHER), PEER)
    assert node.routing.get(OTHER).address == PEER
    assert node.stats["queries_in"] == 1 and node.stats["responses_in"] == 1


def test_find_node_answers_at_most_k_nodes(reactor: Any) -> None:
    node = make_node(reactor)
    for i in range(40):
        node.routing.responded(bytes([i + 2]) * 20, (f"10.0.0.{i + 1}", 1000 + i), 0.0)
    query(node, krpc.FindNode(b"t", OTHER, OTHER))
    answer, _ = sent(reactor)[0]
    assert isinstance(answer, krpc.Response) and 0 < len(answer.nodes) <= 8
    distances = [
        int.from_bytes(n.node_id, "big") ^ int.from_bytes(OTHER, "big") for n in answer.nodes
    ]
    assert distances == sorted(distances)


def test_get_peers_token_and_announce(reactor: Any) -> None:
    announced: list[Any] = []
    node = make_node(reactor, on_announce=lambda ih, a: announced.append((ih, a)))
    query(node, krpc.GetPeers(b"g1", OTHER, IH))
    answer = sent(reactor)[0][0]
    assert answer.token and answer.values == ()
    query(node, krpc.AnnouncePeer(b"a1", OTHER, IH, 51413, answer.token))
    assert sent(reactor)[0][0] == krpc.Response(b"a1", OWN)
    assert announced == [(IH, ("127.0.0.5", 51413))]
    # implied_port: the UDP source port is the peer's port
    query(node, krpc.AnnouncePeer(b"a2", OTHER, IH, 1, answer.token, True))
    sent(reactor)
    query(node, krpc.GetPeers(b"g2", OTHER, IH), ("127.0.0.9", 1234))
    values = sent(reactor)[0][0].values
    assert sorted(values) == [("127.0.0.5", 7000), ("127.0.0.5", 51413)]


def test_announce_with_a_bad_or_foreign_token_is_refused(reactor: Any) -> None:
    node = make_node(reactor)
    query(node, krpc.GetPeers(b"g1", OTHER, IH))
    token = sent(reactor)[0][0].token
    query(node, krpc.AnnouncePeer(b"a1", OTHER, IH, 51413, token), ("127.0.0.6", 7000))
    answer = sent(reactor)[0][0]
    assert answer == krpc.Error(b"a1", 203, "bad token")
    assert len(node.peers) == 0 and node.stats["bad_tokens"] == 1


def test_get_peers_answers_at_most_100_values(reactor: Any) -> None:
    node = make_node(reactor)
    for i in range(100):
        node.peers.add(IH, (f"10.1.{i // 200}.{i % 200 + 1}", 2000 + i), 0.0)
    query(node, krpc.GetPeers(b"g", OTHER, IH))
    data, _ = reactor.ports[0].sent[0]
    assert len(krpc.decode_message(data).values) == 100
    assert len(data) < 1500  # one unfragmented datagram


def test_unknown_method_gets_204(reactor: Any) -> None:
    node = make_node(reactor)
    query(node, krpc.UnknownQuery(b"u", OTHER, b"vote"))
    assert sent(reactor)[0][0] == krpc.Error(b"u", 204, "method unknown")


def test_garbage_is_counted_and_never_answered(reactor: Any) -> None:
    node = make_node(reactor)
    rng = random.Random(3)
    garbage = [rng.randbytes(rng.randrange(0, 200)) for _ in range(200)]
    garbage += [
        b"d1:t2:aa1:y1:qe",
        encode({b"t": b"x", b"y": b"q", b"q": b"ping", b"a": {b"id": b"s"}}),
    ]
    for g in garbage:
        node.datagram_received(g, PEER)
    assert reactor.ports[0].sent == []
    assert node.stats["malformed"] == len(garbage)


def test_queries_from_our_own_id_are_ignored(reactor: Any) -> None:
    node = make_node(reactor)
    query(node, krpc.Ping(b"t", OWN))
    assert reactor.ports[0].sent == [] and node.stats["own_id"] == 1


def test_response_matching_needs_tid_and_address(reactor: Any) -> None:
    node = make_node(reactor)
    results: list[Any] = []
    node.ping(PEER).addBoth(results.append)
    ((q, _),) = sent(reactor)
    node.datagram_received(krpc.encode_response(q.tid, OTHER), ("127.0.0.66", 7000))
    node.datagram_received(krpc.encode_response(b"zzzz", OTHER), PEER)
    node.datagram_received(krpc.encode_response(q.tid, OWN), PEER)  # our own id: ignored
    assert results == [] and node.stats["unmatched"] == 2 and node.stats["own_id"] == 1
    node.datagram_received(krpc.encode_response(q.tid, OTHER), PEER)
    assert results == [krpc.Response(q.tid, OTHER)]
    node.datagram_received(krpc.encode_response(q.tid, OTHER), PEER)  # a duplicate
    assert node.stats["unmatched"] == 3


def test_remote_error_fails_the_query(reactor: Any) -> None:
    node = make_node(reactor)
    results: list[Any] = []
    node.get_peers(PEER, IH).addErrback(lambda f: results.append(f.value))
    ((q, _),) = sent(reactor)
    node.datagram_received(krpc.encode_error(q.tid, 202, "busy"), PEER)
    assert isinstance(results[0], KrpcRemoteError) and results[0].code == 202


def test_query_times_out_and_counts_against_the_node(reactor: Any) -> None:
    node = make_node(reactor)
    node.routing.responded(OTHER, PEER, 0.0)
    results: list[Any] = []
    node.find_node(PEER, IH, OTHER).addErrback(lambda f: results.append(f.value))
    reactor.advance(4.9)
    assert results == []
    reactor.advance(0.2)
    assert isinstance(results[0], KrpcTimeout)
    assert node.routing.get(OTHER).failures == 1 and node.stats["timeouts"] == 1
    assert node.pending == 0
    ((q, _),) = sent(reactor)
    node.datagram_received(krpc.encode_response(q.tid, OTHER), PEER)  # too late
    assert node.stats["unmatched"] == 1


def test_per_ip_rate_limit(reactor: Any) -> None:
    node = make_node(reactor, ip_rate=5, ip_burst=20)
    node.routing.responded(OTHER, PEER, 0.0)  # known: no verification pings
    for i in range(30):
        query(node, krpc.Ping(i.to_bytes(2, "big"), OTHER))
    assert len(sent(reactor)) == 20 and node.stats["rate_limited"] == 10
    query(node, krpc.Ping(b"x", b"\x02" * 20), ("127.0.0.7", 1))  # another IP is served
    assert sent(reactor)[0][0] == krpc.Response(b"x", OWN)
    reactor.advance(1.0)
    for i in range(10):
        query(node, krpc.Ping(i.to_bytes(2, "big"), OTHER))
    assert len(sent(reactor)) == 5


def test_global_incoming_budget(reactor: Any) -> None:
    node = make_node(reactor, global_rate=10, ip_burst=5)
    for i in range(20):
        query(node, krpc.Ping(b"p", bytes([i + 1]) * 20), (f"127.0.1.{i + 1}", 9))
    answers = [m for m, _ in sent(reactor) if isinstance(m, krpc.Response)]
    assert len(answers) == 10 and node.stats["rate_limited"] == 10


def test_outgoing_budget_queues_then_refuses(reactor: Any) -> None:
    node = make_node(reactor, send_rate=2, max_queued=3)
    results: list[Any] = []
    for i in range(6):
        node.ping((f"127.0.2.{i + 1}", 9)).addErrback(lambda f: results.append(f.value))
    assert len(sent(reactor)) == 2  # the burst
    assert len(results) == 1 and isinstance(results[0], KrpcError)
    assert node.stats["budget_drops"] == 1 and node.pending == 5
    reactor.advance(0.5)
    assert len(sent(reactor)) == 1
    reactor.advance(1.0)
    assert len(sent(reactor)) == 2


def test_close_fails_pending_and_stops_listening(reactor: Any) -> None:
    node = make_node(reactor, send_rate=1)
    results: list[Any] = []
    for i in range(3):
        node.ping((f"127.0.2.{i + 1}", 9)).addErrback(lambda f: results.append(f.value))
    d = node.close()
    assert d.called and not reactor.ports[0].listening
    assert len(results) == 3 and all(isinstance(r, KrpcError) for r in results)
    assert reactor.getDelayedCalls() == []
    failed: list[Any] = []
    node.ping(PEER).addErrback(failed.append)
    assert failed


def test_full_bucket_questionable_node_is_pinged_twice_then_replaced(reactor: Any) -> None:
    node = make_node(reactor)
    far = [bytes([0x01, i]) + bytes(18) for i in range(9)]  # all in the far half
    for i, nid in enumerate(far[:8]):
        node.routing.responded(nid, (f"10.0.3.{i + 1}", 1), 0.0)
    node.routing.responded(b"\x80" + b"\x01" * 19, ("10.0.4.1", 1), 0.0)  # splits ours
    reactor.advance(16 * 60)
    results: list[Any] = []
    node.ping(("10.0.5.1", 1)).addBoth(results.append)
    ((q, _),) = sent(reactor)
    node.datagram_received(krpc.encode_response(q.tid, far[8]), ("10.0.5.1", 1))
    ((ping, to),) = sent(reactor)  # the least recently seen questionable node
    assert isinstance(ping, krpc.Ping) and to == ("10.0.3.1", 1)
    reactor.advance(5.1)
    ((again, to),) = sent(reactor)  # BEP 5: one more try
    assert isinstance(again, krpc.Ping) and to == ("10.0.3.1", 1)
    reactor.advance(5.1)
    assert node.routing.get(far[0]) is None and node.routing.get(far[8]) is not None


def test_cannot_listen_twice_on_a_taken_port(reactor: Any) -> None:
    from twisted.internet.error import CannotListenError

    reactor.taken.add(6881)
    node = DhtNode(reactor, OWN, bind="127.0.0.2", port=6881)
    with pytest.raises(CannotListenError):
        node.listen()


def test_send_errors_are_counted(reactor: Any) -> None:
    node = make_node(reactor)

    def boom(data: bytes, addr: Any) -> None:
        raise OSError("unreachable")

    reactor.ports[0].write = boom
    node.ping(PEER).addErrback(lambda _: None)
    assert node.stats["send_errors"] == 1
    reactor.advance(10)

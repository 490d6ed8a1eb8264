"""Magnet links in the session: waiting durably for metadata, then becoming torrents.

The session runs on a MemoryReactorClock with an inline verifier and ``threadpool = None``
(``run_blocking`` runs at once), so every Deferred has fired when the call returns unless a
test holds the work back. Methods are called through ``torrent_methods`` as the RPC server
would. Trackers are ``udp://`` with the udp_tracker plugin off: nothing is contacted.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import session_harness
from session_harness import PL, HeldBlocking, Probe, content, hashes, result
from torrent_harness import Swarm
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher

from btd.core import session_status
from btd.core.bencode import encode
from btd.core.bitfield import Bitfield
from btd.core.magnets import RETRY_AFTER, torrent_bytes
from btd.core.metadata_fetch import MetadataFetch
from btd.core.metainfo import parse_metainfo
from btd.core.net.peer import PeerProtocol
from btd.core.rpc import errors as codes
from btd.core.rpc.errors import RpcError
from btd.core.rpc.torrent_methods import torrent_methods
from btd.core.session import Session
from btd.core.torrent import Torrent
from btd.core.wire import messages as m
from btd.core.wire import metadata as ut
from btd.core.wire.codec import WireDecoder, encode_handshake
from btd.core.wire.codec import encode as wire_encode
from btd.core.wire.extension import decode_extension_handshake

DATA = content(40_000, 1)
INFO = encode(
    {
        b"length": len(DATA),
        b"name": b"file.bin",
        b"piece length": PL,
        b"pieces": hashes(DATA),
    }
)
IH = hashlib.sha1(INFO).digest()
HEX = IH.hex()
TRACKERS = ("udp://127.0.0.1:6969/announce", "udp://[::1]:6970/announce")
URI = f"magnet:?xt=urn:btih:{HEX}&dn=file.bin&tr={TRACKERS[0]}&tr={TRACKERS[1]}"


# -- harness -----------------------------------------------------------------------------------
class InlineVerifier:
    """The Verifier's interface, done at once (nothing is on disk in these tests)."""

    def recheck(
        self,
        storage: Any,
        piece_hashes: bytes,
        piece_length: int,
        total_length: int,
        *,
        pieces: Any = None,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> defer.Deferred[Bitfield]:
        return defer.succeed(Bitfield(-(-total_length // piece_length)))

    def verify_and_write(self, storage: Any, index: int, data: bytes, expected: bytes) -> Any:
        return defer.succeed(False)

    def read_blocks(self, storage: Any, spans: list[tuple[int, int, int]]) -> Any:
        return defer.maybeDeferred(lambda: [storage.read(*span) for span in spans])

    def read_block(self, storage: Any, index: int, begin: int, length: int) -> Any:
        return defer.maybeDeferred(storage.read, index, begin, length)

    def flush(self, storage: Any) -> Any:
        return defer.succeed(None)

    def check_files(self, storage: Any) -> Any:
        return defer.maybeDeferred(storage.check_files)


def make_session(tmp_path: Path, probe: Probe | None = None) -> Session:
    return session_harness.make_session(tmp_path, probe, verifier=InlineVerifier())


def call(session: Session, method: str, **params: Any) -> Any:
    value = torrent_methods(session)[method](**params)
    return result(value) if isinstance(value, defer.Deferred) else value


def rpc_error(session: Session, method: str, **params: Any) -> RpcError:
    with pytest.raises(RpcError) as caught:
        call(session, method, **params)
    return caught.value


def magnets_json(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "state" / "magnets.json"
    return json.loads(path.read_text()) if path.exists() else {}


def waiting(session: Session) -> MetadataFetch:
    fetch = session.find(HEX)
    assert isinstance(fetch, MetadataFetch)
    return fetch


# -- adding ------------------------------------------------------------------------------------
def test_a_magnet_is_durable_before_the_reply_and_waits_in_the_list(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    d = torrent_methods(session)["torrent.add"](magnet=URI, save_path=str(tmp_path / "x"))
    assert not d.called and magnets_json(tmp_path) == {}
    seen: list[dict[str, Any]] = []
    d.addCallback(lambda r: seen.append(magnets_json(tmp_path)) or r)
    held.run()
    assert result(d) == {"info_hash": HEX, "name": "file.bin", "added": True}
    [stored] = seen
    assert list(stored) == [HEX]
    assert stored[HEX]["options"] == {"save_path": str(tmp_path / "x")}  # what was given
    assert stored[HEX]["uri"].startswith(f"magnet:?xt=urn:btih:{HEX}")
    assert probe.kinds() == ["added"] and probe.events[0].data == {"metadata": False}

    [listed] = call(session, "torrent.list")
    assert listed["info_hash"] == HEX and listed["state"] == "metadata"
    assert listed["name"] == "file.bin" and listed["size"] is None
    assert listed["save_path"] == str(tmp_path / "x")
    assert call(session, "torrent.list", state="metadata", fields=["info_hash", "state"]) == [
        {"info_hash": HEX, "state": "metadata"}
    ]
    assert call(session, "torrent.list", state="downloading") == []
    got = call(session, "torrent.get", info_hash=HEX[:8])
    assert got["state"] == "metadata" and got["files"] == [] and got["banned"] == []
    assert [t["url"] for t in got["trackers"]] == list(TRACKERS)
    assert [t["url"] for t in call(session, "torrent.trackers", info_hash=HEX)] == list(TRACKERS)
    assert (
        session_status.stats(session)["states"] == {"metadata": 1}
        and session_status.stats(session)["torrents"] == 1
    )
    assert waiting(session).active


def test_adding_it_again_is_not_an_error(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    assert call(session, "torrent.add", magnet=URI)["added"] is True
    again = call(session, "torrent.add", magnet=f"magnet:?xt=urn:btih:{HEX.upper()}")
    assert again == {
        "info_hash": HEX,
        "name": "file.bin",
        "added": False,
        "save_path": str(tmp_path / "dl"),
    }
    assert probe.kinds() == ["added"] and len(session.swarms()) == 1


def test_a_magnet_for_a_torrent_already_there_is_not_added(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(torrent_bytes(INFO, ())))
    assert call(session, "torrent.add", magnet=URI)["added"] is False
    assert session.magnets.fetches == {} and magnets_json(tmp_path) == {}


@pytest.mark.parametrize(
    "bad",
    [
        "magnet:?xt=urn:btih:1234",
        "magnet:?dn=nothing",
        "http://example.org/x.torrent",
        "",
        f"magnet:?xt=urn:btih:{'z' * 40}",
    ],
)
def test_a_bad_magnet_is_invalid_torrent_and_adds_nothing(tmp_path: Path, bad: str) -> None:
    session = make_session(tmp_path)
    error = rpc_error(session, "torrent.add", magnet=bad)
    assert error.code == codes.INVALID_TORRENT and error.data == {"field": "magnet"}
    assert error.message.startswith("invalid magnet: ")
    assert call(session, "torrent.list") == [] and magnets_json(tmp_path) == {}


def test_magnet_parameters_are_checked(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    assert (
        rpc_error(session, "torrent.add", magnet=URI, metainfo="ZGU=").code == codes.INVALID_PARAMS
    )
    assert rpc_error(session, "torrent.add", magnet=5).data == {"field": "magnet"}
    unknown = rpc_error(session, "torrent.add", magnet=URI, strategy="no-such")
    assert unknown.code == codes.INVALID_PARAMS and unknown.data == {"field": "strategy"}
    assert session.magnets.fetches == {} and magnets_json(tmp_path) == {}


def test_a_store_that_cannot_be_written_adds_nothing(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    (tmp_path / "state").write_text("a file where the state directory should be")
    error = rpc_error(session, "torrent.add", magnet=URI)
    assert error.code == codes.STORAGE
    assert session.magnets.fetches == {}


# -- a waiting magnet through the methods -------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("torrent.pause", {}),
        ("torrent.resume", {}),
        ("torrent.verify", {}),
        ("torrent.files", {}),
        ("torrent.peers", {}),
        ("torrent.set", {"strategy": "sequential"}),
    ],
)
def test_methods_that_need_metadata_answer_no_metadata(
    tmp_path: Path, method: str, params: dict[str, Any]
) -> None:
    session = make_session(tmp_path)
    call(session, "torrent.add", magnet=URI)
    error = rpc_error(session, method, info_hash=HEX[:6], **params)
    assert error.code == codes.NO_METADATA == -32006
    assert error.data == {"field": "info_hash", "value": HEX[:6]}
    assert "waiting for its metadata" in error.message


def test_add_peer_gives_the_waiting_magnet_a_peer(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    call(session, "torrent.add", magnet=URI)
    assert call(session, "torrent.add_peer", info_hash=HEX, address="127.0.0.1", port=7001) == {
        "info_hash": HEX,
        "added": True,
    }
    ((host, port, factory, _timeout, _bind),) = session.reactor.tcpClients
    assert (host, port) == ("127.0.0.1", 7001) and factory.torrent is waiting(session)


def test_remove_a_waiting_magnet(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    call(session, "torrent.add", magnet=URI)
    fetch = waiting(session)
    answer = call(session, "torrent.remove", info_hash=HEX, delete_data=True)
    assert answer == {"info_hash": HEX, "removed": True, "deleted_data": False}
    assert call(session, "torrent.list") == [] and magnets_json(tmp_path) == {}
    assert not fetch.active and probe.kinds() == ["added", "removed"]
    assert rpc_error(session, "torrent.get", info_hash=HEX).code == codes.NOT_FOUND
    restarted = make_session(tmp_path)
    restarted.start()
    assert restarted.swarms() == []


def test_removed_while_being_saved_does_not_come_back(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    d = session.add_magnet(URI)
    removed = session.magnets.remove(waiting(session))
    held.queue.reverse()  # two pool threads: the delete may run before the save
    held.run()
    held.run()
    assert result(d)["added"] is True and result(removed)["removed"] is True
    assert magnets_json(tmp_path) == {} and session.swarms() == []


def test_a_restart_brings_the_waiting_magnet_back(tmp_path: Path) -> None:
    first = make_session(tmp_path)
    call(first, "torrent.add", magnet=URI, save_path=str(tmp_path / "x"), strategy="sequential")
    result(first.stop())
    assert not waiting(first).active

    second = make_session(tmp_path)
    second.start()
    fetch = waiting(second)
    assert fetch.active and fetch.magnet.trackers == TRACKERS and fetch.name == "file.bin"
    assert fetch.options.save_path == tmp_path / "x" and fetch.options.strategy == "sequential"
    assert second.connector.route(IH) is fetch


def test_a_corrupt_magnets_json_is_reported_and_kept_aside(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "magnets.json").write_text("{oops")
    logged: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        session = make_session(tmp_path)
        session.start()
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert session.swarms() == []
    assert any("magnets.json" in str(e.get("problem")) for e in logged)
    [aside] = (tmp_path / "state").glob("magnets.json.damaged-*")
    assert aside.read_text() == "{oops"  # kept as it was; a new file takes new magnets
    call(session, "torrent.add", magnet=URI)
    assert len(session.swarms()) == 1


# -- metadata arrives ---------------------------------------------------------------------------
def test_metadata_makes_it_a_torrent(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    call(session, "torrent.add", magnet=URI, save_path=str(tmp_path / "x"), paused=True)
    fetch = waiting(session)
    fetch.add_peers([("127.0.0.1", 7001), ("127.0.0.1", 7002)])
    session.magnets._metadata(fetch, INFO)

    t = session.find(HEX)
    assert isinstance(t, Torrent) and t.info_hash == IH and t.meta.info_bytes == INFO
    assert t.state == "paused" and t.options.save_path == tmp_path / "x"
    assert [list(tier) for tier in t.meta.announce_tiers] == [[TRACKERS[0]], [TRACKERS[1]]]
    assert {("127.0.0.1", 7001), ("127.0.0.1", 7002)} <= set(t.candidates.addresses())
    assert not fetch.active and session.magnets.fetches == {}
    kinds = probe.kinds()  # the magnet's added, the torrent's added (and its check), metadata
    assert kinds[:2] == ["added", "added"] and kinds.count("metadata") == 1
    event = probe.events[kinds.index("metadata")]
    assert event.info_hash == HEX and event.data == {"size": len(DATA)}
    assert magnets_json(tmp_path) == {}
    folder = tmp_path / "state" / "torrents"
    stored = parse_metainfo((folder / f"{HEX}.torrent").read_bytes())
    assert stored.info_hash == IH and stored.announce_tiers == t.meta.announce_tiers
    assert json.loads((folder / f"{HEX}.json").read_text())["paused"] is True
    [listed] = call(session, "torrent.list")
    assert listed["state"] == "paused" and listed["size"] == len(DATA)

    restarted = make_session(tmp_path)  # now an ordinary torrent, and no longer a magnet
    restarted.start()
    assert isinstance(restarted.find(HEX), Torrent) and restarted.magnets.fetches == {}


def test_it_stays_listed_while_its_metadata_is_stored(tmp_path: Path) -> None:
    """Between the metadata and the stored torrent (a pool job) it is listed once, as the
    magnet: never in neither list (a torrent.list then showed nothing), never twice."""
    session = make_session(tmp_path)
    call(session, "torrent.add", magnet=URI, save_path=str(tmp_path / "x"))
    fetch = waiting(session)
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    session.magnets._metadata(fetch, INFO)
    while held.queue and session.magnets.fetches:  # until it is handed over
        held.run_one()
    assert session.magnets.fetches == {}  # being stored as a torrent now
    assert [r["info_hash"] for r in call(session, "torrent.list")] == [HEX]
    held.run()
    [listed] = call(session, "torrent.list")
    assert listed["info_hash"] == HEX and listed["state"] != "metadata"


def test_peers_banned_while_fetching_stay_banned_for_the_torrent(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    call(session, "torrent.add", magnet=URI, paused=True)
    fetch = waiting(session)
    fetch.candidates.ban(("127.0.0.1", 6666), "lied about the metadata", peer_id=b"L" * 20)
    fetch.banned.append("127.0.0.1:6666")
    session.magnets._metadata(fetch, INFO)
    t = session.find(HEX)
    assert ("127.0.0.1", 6666) in t.candidates.banned and b"L" * 20 in t.candidates.banned_peer_ids
    assert t.banned == ["127.0.0.1:6666"]
    assert t.add_peers([("127.0.0.1", 6666)]) == 0


def test_metadata_that_is_no_valid_torrent_adds_nothing(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    bad_info = encode({b"length": 10, b"name": b"x", b"piece length": 1000, b"pieces": b"\1" * 20})
    bad_hex = hashlib.sha1(bad_info).hexdigest()  # the hash holds: only the content is bad
    call(session, "torrent.add", magnet=f"magnet:?xt=urn:btih:{bad_hex}")
    fetch = session.find(bad_hex)
    session.magnets._metadata(fetch, bad_info)
    assert session.torrents == {} and not fetch.active
    assert probe.kinds() == ["added", "error"]
    assert "piece length" in probe.events[-1].data["error"]
    assert probe.events[-1].data["state"] == "metadata"
    [listed] = call(session, "torrent.list")
    assert listed["state"] == "metadata" and "metadata refused" in listed["error"]
    assert not (tmp_path / "state" / "torrents").exists()


def test_metadata_that_cannot_be_stored_is_fetched_again_later(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    call(session, "torrent.add", magnet=URI)
    (tmp_path / "state" / "torrents").write_text("a file where a folder should be")
    fetch = waiting(session)
    session.magnets._metadata(fetch, INFO)
    assert session.torrents == {} and waiting(session) is fetch
    assert probe.kinds()[-1] == "error" and fetch.error
    assert HEX in magnets_json(tmp_path) and not fetch.active
    (tmp_path / "state" / "torrents").unlink()
    session.reactor.advance(RETRY_AFTER)
    assert fetch.active
    session.magnets._metadata(fetch, INFO)
    assert isinstance(session.find(HEX), Torrent) and magnets_json(tmp_path) == {}


def test_a_stale_fetch_is_ignored(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    call(session, "torrent.add", magnet=URI)
    fetch = waiting(session)
    call(session, "torrent.remove", info_hash=HEX)
    session.magnets._metadata(fetch, INFO)
    assert session.swarms() == [] and not (tmp_path / "state" / "torrents").exists()


def test_a_ban_while_fetching_is_a_peer_banned_event(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    call(session, "torrent.add", magnet=URI)
    fetch = waiting(session)
    assert fetch.on_ban is not None
    fetch.on_ban(fetch, "127.0.0.1:45000", "sent metadata that does not match the info hash")
    event = probe.events[-1]
    assert (event.kind, event.info_hash) == ("peer_banned", HEX)
    assert event.data == {
        "address": "127.0.0.1:45000",
        "reason": "sent metadata that does not match the info hash",
    }


# -- over the wire: an inbound peer gives us the metadata --------------------------------------
class Remote:
    """A peer that connected to us: bytes through the real PeerProtocol, routed by the session."""

    def __init__(self, session: Session, port: int = 41000) -> None:
        self.proto = PeerProtocol(session.connector, session.reactor)
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        self.proto.makeConnection(self.transport)
        self.decoder = WireDecoder(expect_handshake=True)
        self.seen = 0

    def send(self, *msgs: Any) -> None:
        for msg in msgs:
            data = encode_handshake(msg) if isinstance(msg, m.Handshake) else wire_encode(msg)
            self.proto.dataReceived(data)

    def new(self) -> list[Any]:
        raw = self.transport.value()
        out = self.decoder.feed(raw[self.seen :])
        self.seen = len(raw)
        return list(out)


def test_an_inbound_peer_serves_the_metadata_and_it_becomes_a_torrent(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    call(session, "torrent.add", magnet=URI)
    peer = Remote(session)
    peer.send(m.Handshake(IH, b"-LT2000-000000000001", m.make_reserved(extensions=True, fast=True)))
    assert isinstance(peer.proto.peer.fetch, MetadataFetch)
    peer.send(m.Extended(0, encode({b"m": {b"ut_metadata": 3}, b"metadata_size": len(INFO)})))
    asks = [
        ut.decode_message(x.payload).piece
        for x in peer.new()
        if isinstance(x, m.Extended) and x.ext_id == 3
    ]
    assert asks == [0]
    ours = session.extensions.ids[ut.EXTENSION_NAME]
    peer.send(m.Extended(ours, ut.encode_data(0, INFO)))
    t = session.find(HEX)
    assert isinstance(t, Torrent) and "metadata" in probe.kinds()
    assert peer.transport.disconnecting  # the metadata connection is closed...
    assert session.connector.route(IH) is t  # ...and the peer's next connection goes to the torrent


# -- the torrent serves its metadata ------------------------------------------------------------
def test_a_torrent_serves_ut_metadata(tmp_path: Path) -> None:
    s = Swarm(tmp_path).start()
    info = s.meta.info_bytes
    conn = s.peer()
    ours = [x for x in conn.new() if isinstance(x, m.Extended) and x.ext_id == 0]
    hs = decode_extension_handshake(ours[0].payload)
    assert hs.metadata_size == len(info) and ut.EXTENSION_NAME in hs.m
    conn.send(m.Extended(0, encode({b"m": {b"ut_metadata": 3}})))
    conn.send(m.Extended(hs.m[ut.EXTENSION_NAME], ut.encode_request(0)))
    [reply] = [x for x in conn.new() if isinstance(x, m.Extended)]
    assert reply.ext_id == 3
    msg = ut.decode_message(reply.payload)
    assert (msg.msg_type, msg.piece, msg.total_size) == (ut.DATA, 0, len(info))
    assert msg.data == info[: ut.METADATA_PIECE]
    conn.send(m.Extended(hs.m[ut.EXTENSION_NAME], ut.encode_request(99)))
    [reject] = [x for x in conn.new() if isinstance(x, m.Extended)]
    assert ut.decode_message(reject.payload) == ut.MetadataMessage(ut.REJECT, 99)
    assert not conn.closing


# -- a .torrent for a magnet still waiting -------------------------------------------------------
def test_superseded_hands_the_magnet_over_to_the_torrent(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    call(session, "torrent.add", magnet=URI)
    fetch = waiting(session)
    fetch.add_peers([("127.0.0.1", 7001)])
    result(session.add(torrent_bytes(INFO, ())))
    t = session.torrents[IH]
    session.magnets.superseded(t)
    assert session.magnets.fetches == {} and not fetch.active
    assert ("127.0.0.1", 7001) in t.candidates.addresses()
    assert magnets_json(tmp_path) == {} and session.swarms() == [t]
    session.magnets.superseded(t)  # nothing waiting: nothing to do


def test_a_torrent_added_for_a_waiting_magnet_replaces_it(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    call(session, "torrent.add", magnet=URI)
    metainfo = base64.b64encode(torrent_bytes(INFO, ())).decode()
    assert call(session, "torrent.add", metainfo=metainfo)["added"] is True
    assert [t["state"] for t in call(session, "torrent.list")] == ["downloading"]
    assert magnets_json(tmp_path) == {}

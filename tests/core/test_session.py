"""Session: adding, finding, removing and restoring torrents, events, peer routing, stats.

The session runs on a MemoryReactorClock with a synchronous verifier that really hashes
the files (hashlib) and ``threadpool = None`` (``run_blocking`` runs inline), so every
Deferred here has fired by the time the call returns unless a test holds it back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from session_harness import (
    HashingVerifier,
    HeldBlocking,
    Probe,
    content,
    make_session,
    multi,
    result,
    single,
)
from twisted.internet import defer
from twisted.logger import globalLogPublisher

from btd.core import session_status, torrent_loader
from btd.core.bitfield import Bitfield
from btd.core.errors import MetainfoError, StorageError
from btd.core.events import TorrentEvent
from btd.core.limits import CONNECT_TIMEOUT
from btd.core.plugin import hookimpl
from btd.core.swarm import TorrentNotFound
from btd.core.wire import messages as m


# -- harness -----------------------------------------------------------------------------------
def info_hash(torrent: bytes) -> str:
    from btd.core.metainfo import parse_metainfo

    return parse_metainfo(torrent).hex


def stored(tmp_path: Path) -> list[str]:
    folder = tmp_path / "state" / "torrents"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


DATA = content(40_000, 1)  # 3 pieces, the last one short
TORRENT = single("file.bin", DATA)
HEX = info_hash(TORRENT)


# -- adding ------------------------------------------------------------------------------------
def test_add_is_durable_before_the_deferred_fires(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    d = session.add(TORRENT)
    assert not d.called and session.torrents == {} and stored(tmp_path) == []
    seen: list[list[str]] = []
    d.addCallback(lambda r: seen.append(stored(tmp_path)) or r)
    # A second add while the first is still being written is not a second torrent.
    assert result(session.add(TORRENT))["added"] is False
    held.run()
    assert seen == [[f"{HEX}.json", f"{HEX}.torrent"]]
    assert result(d) == {"info_hash": HEX, "name": "file.bin", "added": True}
    assert list(session.torrents) == [bytes.fromhex(HEX)]


def test_adding_again_is_not_an_error(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    assert result(session.add(TORRENT))["added"] is True
    again = result(session.add(TORRENT, save_path=str(tmp_path / "elsewhere")))
    assert again == {
        "info_hash": HEX,
        "name": "file.bin",
        "added": False,
        "save_path": str(tmp_path / "dl"),  # where it stays, not where it was asked to go
    }
    assert [e.kind for e in probe.events].count("added") == 1
    assert len(session.torrents) == 1


def test_stored_copy_is_the_torrent_as_given_with_its_options(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT, save_path=str(tmp_path / "elsewhere"), paused=True))
    folder = tmp_path / "state" / "torrents"
    assert (folder / f"{HEX}.torrent").read_bytes() == TORRENT
    options = json.loads((folder / f"{HEX}.json").read_text())
    assert options["save_path"] == str(tmp_path / "elsewhere")
    assert options["paused"] is True
    assert options["strategy"] == "rarest-first"


def test_existing_data_is_checked_and_the_torrent_seeds(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "file.bin").write_bytes(DATA)
    result(session.add(TORRENT))
    t = session.find(HEX)
    assert t.state == "seeding" and t.complete
    assert session.verifier.rechecks == [[0, 1, 2]]


def test_without_data_nothing_is_hashed_and_it_downloads(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    t = session.find(HEX)
    assert t.state == "downloading" and t.book.have.count == 0
    assert session.verifier.rechecks == []


def test_added_paused_is_checked_but_stays_paused(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "file.bin").write_bytes(DATA)
    result(session.add(TORRENT, paused=True))
    t = session.find(HEX)
    assert t.state == "paused" and t.complete
    assert session.connector.route(t.info_hash) is None


def test_invalid_metainfo_adds_nothing(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    with pytest.raises(MetainfoError):
        session.add(b"this is not bencode")
    assert session.torrents == {} and stored(tmp_path) == []


def test_unknown_strategy_adds_nothing(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    with pytest.raises(ValueError, match="no-such"):
        session.add(TORRENT, strategy="no-such")
    assert session.torrents == {} and stored(tmp_path) == []
    assert result(session.add(TORRENT))["added"] is True  # not stuck as "being added"


def test_storage_error_while_saving_adds_nothing(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    (tmp_path / "state").write_text("a file where the state directory should be")
    with pytest.raises(StorageError):
        result(session.add(TORRENT))
    assert session.torrents == {} and probe.events == []
    (tmp_path / "state").unlink()
    assert result(session.add(TORRENT))["added"] is True  # the failed add left no trace


def test_a_start_that_raises_does_not_fail_a_durable_add(tmp_path: Path, logged: list[Any]) -> None:
    session = make_session(tmp_path)
    session.verifier = None  # recheck would blow up: AttributeError inside Torrent.start
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "file.bin").write_bytes(DATA)
    assert result(session.add(TORRENT))["added"] is True
    assert HEX in stored(tmp_path)[1]
    assert any("starting" in str(e.get("log_format")) for e in logged)


# -- restoring ---------------------------------------------------------------------------------
def test_a_new_session_brings_torrents_back_with_their_options(tmp_path: Path) -> None:
    first = make_session(tmp_path)
    other = single("other.bin", content(20_000, 2))
    result(first.add(TORRENT, save_path=str(tmp_path / "a"), paused=True))
    result(first.add(other, strategy="sequential"))
    first.reactor.advance(5)
    added_at = {t.hex: t.added_at for t in first.torrents.values()}
    result(first.stop())

    second = make_session(tmp_path)
    second.start()
    assert sorted(t.hex for t in second.torrents.values()) == sorted([HEX, info_hash(other)])
    t = second.find(HEX)
    assert t.state == "paused" and t.options.paused
    assert t.options.save_path == tmp_path / "a"
    o = second.find(info_hash(other))
    assert o.state == "downloading" and o.options.strategy == "sequential"
    assert o.options.save_path == tmp_path / "dl"
    assert {t.hex: t.added_at for t in second.torrents.values()} == added_at


def test_pause_and_resume_are_remembered_across_restarts(tmp_path: Path) -> None:
    first = make_session(tmp_path)
    result(first.add(TORRENT))
    result(first.find(HEX).pause())
    second = make_session(tmp_path)
    second.start()
    assert second.find(HEX).state == "paused"
    second.find(HEX).resume()
    assert second.find(HEX).state == "downloading"
    third = make_session(tmp_path)
    third.start()
    assert third.find(HEX).state == "downloading"


def test_a_lookup_during_start_up_waits_for_nothing_and_is_clear(tmp_path: Path) -> None:
    first = make_session(tmp_path)
    result(first.add(TORRENT))
    second = make_session(tmp_path)
    held = HeldBlocking()
    second.run_blocking = held  # type: ignore[method-assign]
    second.start()
    assert session_status.info(second)["loading"] is True
    with pytest.raises(TorrentNotFound, match="still reading its stored torrents"):
        second.find(HEX[:8])
    held.run()  # the store is read; the torrent comes up in slices, or when asked for
    assert second.find(HEX[:8]).hex == HEX
    held.run()
    assert session_status.info(second)["loading"] is False


def test_a_stored_torrent_asked_for_comes_up_before_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_session(tmp_path)
    result(first.add(TORRENT))
    monkeypatch.setattr(torrent_loader, "LOAD_SLICE", 0)  # no torrent's turn ever comes
    second = make_session(tmp_path)
    second.start()
    assert second.torrents == {} and session_status.info(second)["loading"] is True
    assert second.find(HEX).hex == HEX  # the full hash
    third = make_session(tmp_path)
    third.start()
    assert third.find(HEX[:6]).hex == HEX  # a prefix
    assert list(third.torrents) == [bytes.fromhex(HEX)]


def test_corrupt_stored_files_are_reported_and_skipped(tmp_path: Path, logged: list[Any]) -> None:
    first = make_session(tmp_path)
    broken = single("broken.bin", content(20_000, 3))
    odd = single("odd.bin", content(20_000, 4))
    for t in (TORRENT, broken, odd):
        result(first.add(t))
    folder = tmp_path / "state" / "torrents"
    (folder / f"{info_hash(broken)}.torrent").write_bytes(b"garbage")
    (folder / f"{info_hash(odd)}.json").write_text("{oops")
    renamed = "f" * 40  # a .torrent whose file name is not its info hash
    (folder / f"{renamed}.torrent").write_bytes(single("renamed.bin", content(20_000, 5)))

    second = make_session(tmp_path)
    second.start()
    assert [t.hex for t in second.torrents.values()] == [HEX]
    errors = " ".join(
        str(e.get("problem", "")) + str(e.get("h", ""))
        for e in logged
        if e.get("log_level") and e["log_level"].name == "error"
    )
    for name in (info_hash(broken), info_hash(odd), renamed):
        assert name in errors


def test_start_with_an_empty_state_dir_loads_nothing(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    session.start()
    assert session.torrents == {}


# -- finding -----------------------------------------------------------------------------------
def two_sharing_a_first_digit() -> tuple[bytes, bytes]:
    seen: dict[str, bytes] = {}
    for n in range(40):
        t = single(f"t{n}.bin", content(20_000, 100 + n))
        first = info_hash(t)[0]
        if first in seen:
            return seen[first], t
        seen[first] = t
    raise AssertionError("unreachable: 17 torrents always share a digit")


def test_find_by_full_hash_prefix_and_uppercase(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    t = session.find(HEX)
    assert session.find(HEX[:6]) is t
    assert session.find(HEX[:6].upper()) is t
    assert session.find(HEX.upper()) is t


@pytest.mark.parametrize("prefix", ["", "zz", "0" * 41])
def test_find_unknown(tmp_path: Path, prefix: str) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    with pytest.raises(TorrentNotFound) as info:
        session.find(prefix)
    assert not info.value.ambiguous


def test_find_unknown_full_hash(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    other = ("0" if HEX[0] != "0" else "1") * 40
    with pytest.raises(TorrentNotFound) as info:
        session.find(other)
    assert not info.value.ambiguous


def test_find_ambiguous(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    a, b = two_sharing_a_first_digit()
    result(session.add(a))
    result(session.add(b))
    with pytest.raises(TorrentNotFound, match="2 torrents") as info:
        session.find(info_hash(a)[0])
    assert info.value.ambiguous
    assert session.find(info_hash(a)).hex == info_hash(a)


# -- removing ----------------------------------------------------------------------------------
def test_remove_keeps_the_data_and_forgets_the_state(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "file.bin").write_bytes(DATA)
    result(session.add(TORRENT))
    answer = result(session.remove(session.find(HEX)))
    assert answer == {"info_hash": HEX, "removed": True, "deleted_data": False}
    assert session.torrents == {} and stored(tmp_path) == []
    assert (tmp_path / "dl" / "file.bin").read_bytes() == DATA
    assert probe.events[-1].kind == "removed" and probe.events[-1].data == {"deleted_data": False}
    with pytest.raises(TorrentNotFound):
        session.find(HEX)
    restarted = make_session(tmp_path)
    restarted.start()
    assert restarted.torrents == {}


def test_remove_with_delete_data_removes_the_files_and_their_folder(tmp_path: Path) -> None:
    files = [(["a.bin"], content(20_000, 6)), (["sub", "b.bin"], content(30_000, 7))]
    torrent = multi("album", files)
    session = make_session(tmp_path)
    for path, data in files:
        target = tmp_path / "dl" / "album" / Path(*path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (tmp_path / "dl" / "unrelated.txt").write_text("stays")
    result(session.add(torrent))
    assert session.find(info_hash(torrent)).state == "seeding"
    answer = result(session.remove(session.find(info_hash(torrent)), delete_data=True))
    assert answer["deleted_data"] is True
    assert not (tmp_path / "dl" / "album").exists()
    assert (tmp_path / "dl" / "unrelated.txt").read_text() == "stays"
    assert stored(tmp_path) == []


def test_removed_torrent_can_be_added_again(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    result(session.remove(session.find(HEX)))
    assert result(session.add(TORRENT))["added"] is True
    assert stored(tmp_path) == [f"{HEX}.json", f"{HEX}.torrent"]


def test_readding_while_the_removal_is_still_stopping_stays_durable(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    t = session.find(HEX)
    slow_stop: defer.Deferred[None] = defer.Deferred()
    t.stop = lambda close_storage=True: slow_stop  # type: ignore[method-assign]
    d = session.remove(t)
    assert result(session.add(TORRENT))["added"] is True
    slow_stop.callback(None)
    assert result(d)["removed"] is True
    assert stored(tmp_path) == [f"{HEX}.json", f"{HEX}.torrent"]


# -- events, stats, peers ----------------------------------------------------------------------
def test_events_reach_listeners_and_plugins(tmp_path: Path) -> None:
    probe = Probe()
    session = make_session(tmp_path, probe)
    heard: list[TorrentEvent] = []

    def broken(event: TorrentEvent) -> None:
        raise RuntimeError("a listener that fails")

    session.add_event_listener(broken)
    session.add_event_listener(heard.append)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "file.bin").write_bytes(DATA)
    result(session.add(TORRENT))
    result(session.find(HEX).pause())
    kinds = [e.kind for e in heard]
    assert kinds == ["added", "verified", "started", "paused"]
    assert [e.kind for e in probe.events] == kinds
    first = heard[0]
    assert (first.info_hash, first.name, first.save_path) == (HEX, "file.bin", str(tmp_path / "dl"))
    assert heard[1].data == {"pieces": 3}
    assert heard[2].data == {"state": "seeding"}


def test_stats_and_info_count_every_torrent(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "file.bin").write_bytes(DATA)
    result(session.add(TORRENT))
    result(session.add(single("other.bin", content(20_000, 8))))
    result(session.add(single("third.bin", content(20_000, 9)), paused=True))
    session.find(HEX).uploaded = 1000
    session.reactor.advance(2.5)
    stats = session_status.stats(session)
    assert stats["torrents"] == 3
    assert stats["states"] == {"seeding": 1, "downloading": 1, "paused": 1}
    assert stats["uploaded"] == 1000 and stats["downloaded"] == 0 and stats["peers"] == 0
    assert stats["uptime"] == 2.5
    info = session_status.info(session)
    assert info["torrents"] == 3 and info["state_dir"] == str(tmp_path / "state")
    assert info["plugins"] == ["rarest_first", "sequential"]


def test_new_peers_are_dialled_through_the_reactor(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    t = session.find(HEX)
    assert t.add_peers([("127.0.0.1", 6999)]) == 1
    ((host, port, factory, timeout, _bind),) = session.reactor.tcpClients
    assert (host, port, timeout) == ("127.0.0.1", 6999, CONNECT_TIMEOUT)
    assert factory.torrent is t
    assert session.connector.total_connections() == 1  # counted while connecting


def test_no_dialling_when_shutting_down(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    session.shutdown()
    assert not session.connector.can_connect()
    session.find(HEX).add_peers([("127.0.0.1", 6999)])
    assert session.reactor.tcpClients == []


def test_route_only_to_active_torrents(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    t = session.find(HEX)
    assert session.connector.route(t.info_hash) is t
    assert session.connector.route(b"\0" * 20) is None
    result(t.pause())
    assert session.connector.route(t.info_hash) is None


def test_stop_stops_every_torrent(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT))
    result(session.add(single("other.bin", content(20_000, 10))))
    result(session.stop())
    assert {t.state for t in session.torrents.values()} == {"stopped"}


def test_shutdown_asks_once_after_the_reply(tmp_path: Path) -> None:
    asked: list[int] = []
    session = make_session(tmp_path)
    session._request_shutdown = lambda: asked.append(1)
    session.shutdown()
    session.shutdown()
    assert session.stopping and asked == []
    session.reactor.advance(0)
    assert asked == [1]


def test_a_check_in_progress_is_seen_and_paused(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "file.bin").write_bytes(DATA)
    held: list[defer.Deferred[Bitfield]] = []

    class SlowVerifier(HashingVerifier):
        def recheck(self, *args: Any, **kwargs: Any) -> defer.Deferred[Bitfield]:
            held.append(defer.Deferred())
            return held[-1]

    session.verifier = SlowVerifier()
    assert result(session.add(TORRENT))["added"] is True  # durable before the check ends
    t = session.find(HEX)
    assert t.state == "checking" and session_status.stats(session)["states"] == {"checking": 1}
    result(t.pause())
    assert t.state == "paused"
    held[0].callback(Bitfield.full(3))  # the stale check's answer is ignored
    assert t.state == "paused" and t.book.have.count == 0
    t.resume()
    assert t.state == "checking" and len(held) == 2
    held[1].callback(Bitfield.full(3))
    assert t.state == "seeding"


def test_dht_bit_and_port_messages_follow_the_dht_plugin(tmp_path: Path) -> None:
    class Dht(Probe):
        port: int | None = None
        seen: list[tuple[str, int]] = []

        @hookimpl
        def btd_dht_port(self) -> int | None:
            return self.port

        @hookimpl
        def btd_dht_node_seen(self, host: str, port: int) -> None:
            self.seen.append((host, port))

    dht = Dht()
    session = make_session(tmp_path, dht)
    assert not m.Handshake(b"x" * 20, b"y" * 20, session.connector.reserved).supports_dht
    dht.port = 6881
    assert m.Handshake(b"x" * 20, b"y" * 20, session.connector.reserved).supports_dht
    session.connector.dht_node_seen("127.0.0.5", 7000)
    assert dht.seen == [("127.0.0.5", 7000)]

"""``torrent.*`` and ``session.stats``: called directly, and a few through the real dispatcher.

The session runs on a MemoryReactorClock (it records connectTCP), with a synchronous
verifier that really hashes the files and ``threadpool = None``, so replies are immediate.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from session_harness import PL, HeldBlocking, content, make_session, multi, single
from torrent_harness import RemotePeers
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from btd.core.bencode import encode
from btd.core.bitfield import Bitfield
from btd.core.events import TorrentEvent
from btd.core.metainfo import parse_metainfo
from btd.core.plugin import hookimpl
from btd.core.rpc import errors as codes
from btd.core.rpc import json_text, list_rows
from btd.core.rpc.errors import RpcError
from btd.core.rpc.methods import build_methods
from btd.core.rpc.peercred import PeerCred
from btd.core.rpc.server import ControlServer
from btd.core.rpc.torrent_methods import MAX_TORRENT_FILE, torrent_methods
from btd.core.seeding_goals import SeedClock
from btd.core.torrent_status import SUMMARY_FIELDS
from btd.core.wire import messages as m


# -- harness -----------------------------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hex_of(torrent: bytes) -> str:
    return parse_metainfo(torrent).hex


DATA = content(40_000, 1)  # 3 pieces
TORRENT = single(b"file.bin", DATA, comment=b"made for a test")
HEX = hex_of(TORRENT)
OTHER = single(b"other.bin", content(20_000, 2))


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        # The file store (no resume plugin): the tests look at <state_dir>/torrents/.
        self.session = make_session(tmp_path)
        self.reactor: MemoryReactorClock = self.session.reactor
        self.events: list[TorrentEvent] = []
        self.session.add_event_listener(self.events.append)
        self.methods = torrent_methods(self.session)
        self.dl = tmp_path / "dl"
        self.dl.mkdir()

    def call(self, name: str, **params: Any) -> Any:
        """The method's answer; a Deferred must have fired (its failure is raised)."""
        value = self.methods[name](**params)
        if isinstance(value, defer.Deferred):
            out: list[Any] = []
            value.addBoth(out.append)
            assert out, f"{name} did not answer"
            if isinstance(out[0], Failure):
                out[0].raiseException()
            return out[0]
        return value

    def error(self, name: str, **params: Any) -> RpcError:
        with pytest.raises(RpcError) as info:
            self.call(name, **params)
        return info.value

    def add(self, torrent: bytes = TORRENT, **params: Any) -> dict[str, Any]:
        return self.call("torrent.add", metainfo=b64(torrent), **params)

    def stored(self) -> list[str]:
        folder = self.tmp / "state" / "torrents"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def bad_param(err: RpcError, field: str) -> None:
    assert err.code == codes.INVALID_PARAMS, err.message
    assert err.data == {"field": field}
    assert err.message.startswith(f"{field}: ")


# -- torrent.add -------------------------------------------------------------------------------
def test_add_by_base64_then_again(h: Harness) -> None:
    assert h.add() == {"info_hash": HEX, "name": "file.bin", "added": True}
    again = h.add()
    assert again == {"info_hash": HEX, "name": "file.bin", "added": False, "save_path": ANY}
    assert again["save_path"] == h.call("torrent.get", info_hash=HEX)["save_path"]
    assert [t["info_hash"] for t in h.call("torrent.list")] == [HEX]
    assert h.stored() == [f"{HEX}.json", f"{HEX}.torrent"]


def test_add_by_path(h: Harness) -> None:
    file = h.tmp / "x.torrent"
    file.write_bytes(TORRENT)
    assert h.call("torrent.add", path=str(file))["added"] is True
    assert h.call("torrent.add", path=str(file))["added"] is False


@pytest.mark.parametrize("make", ["missing", "directory", "fifo"])
def test_add_by_unreadable_path(h: Harness, make: str) -> None:
    target = h.tmp / "x.torrent"
    if make == "directory":
        target.mkdir()
    elif make == "fifo":
        os.mkfifo(target)  # must not block the reactor waiting for a writer
    err = h.error("torrent.add", path=str(target))
    assert err.code == codes.INVALID_TORRENT and err.data == {"field": "path"}
    assert str(target) in err.message
    assert h.session.torrents == {}


def test_add_refuses_a_path_over_10_mb(h: Harness) -> None:
    big = h.tmp / "big.torrent"
    with open(big, "wb") as f:
        f.truncate(MAX_TORRENT_FILE + 1)  # sparse: costs no disk
    err = h.error("torrent.add", path=str(big))
    assert err.code == codes.INVALID_TORRENT and err.data == {"field": "path"}
    assert "10 MB" in err.message


def test_add_by_path_of_bad_content_names_path(h: Harness) -> None:
    file = h.tmp / "x.torrent"
    file.write_bytes(b"not bencode")
    err = h.error("torrent.add", path=str(file))
    assert err.code == codes.INVALID_TORRENT and err.data == {"field": "path"}


def _missing_info() -> bytes:
    return encode({b"announce": b"http://127.0.0.1/announce"})


def _bad_piece_length() -> bytes:
    info = {b"name": b"x", b"piece length": 1000, b"length": 10, b"pieces": b"\0" * 20}
    return encode({b"info": info})


def _short_pieces() -> bytes:
    info = {b"name": b"x", b"piece length": PL, b"length": 10, b"pieces": b"\0" * 19}
    return encode({b"info": info})


def _too_few_pieces() -> bytes:
    info = {b"name": b"x", b"piece length": PL, b"length": PL * 3, b"pieces": b"\0" * 20}
    return encode({b"info": info})


@pytest.mark.parametrize(
    "torrent",
    [
        b"not bencode",
        b"i42e",
        _missing_info(),
        _bad_piece_length(),
        _short_pieces(),
        _too_few_pieces(),
        TORRENT[:-1],
    ],
    ids=["garbage", "integer", "no-info", "piece-length", "pieces-len", "piece-count", "cut"],
)
def test_malformed_torrents_are_refused_and_nothing_is_added(h: Harness, torrent: bytes) -> None:
    h.add(OTHER)
    before = h.call("torrent.list")
    err = h.error("torrent.add", metainfo=b64(torrent))
    assert err.code == codes.INVALID_TORRENT and err.data == {"field": "metainfo"}
    assert err.message.startswith("invalid torrent: ")
    assert h.call("torrent.list") == before
    assert h.stored() == [f"{hex_of(OTHER)}.json", f"{hex_of(OTHER)}.torrent"]
    assert [e.kind for e in h.events].count("added") == 1


def test_traversing_names_are_sanitized_not_refused(h: Harness) -> None:
    files = [
        ([b"..", b"..", b"etc", b"passwd"], content(20_000, 3)),
        ([b"/abs", b"x\0y"], content(20_000, 4)),
        ([b"ok.txt"], content(5_000, 5)),
    ]
    torrent = multi(b"../../evil", files)
    answer = h.add(torrent)
    assert answer["added"] is True and "/" not in answer["name"]
    t = h.session.find(answer["info_hash"])
    root = os.path.realpath(h.dl)
    paths = [os.path.realpath(t.storage.file_path(i)) for i in range(len(files))]
    for p in paths:
        assert os.path.commonpath([root, p]) == root and p != root
    # Really write every piece and look: nothing appeared outside the save path.
    blob = b"".join(d for _, d in files)
    outside_before = sorted(p.name for p in h.tmp.iterdir())
    for i in range(t.num_pieces):
        t.storage.write_piece(i, blob[i * PL : (i + 1) * PL])
    assert sorted(p.name for p in h.tmp.iterdir()) == outside_before
    for p, (_, data) in zip(paths, files):
        assert Path(p).read_bytes() == data
    listed = [f["path"] for f in h.call("torrent.files", info_hash=answer["info_hash"])]
    assert all(".." not in f.split("/") and not f.startswith("/") for f in listed)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"metainfo": b64(TORRENT), "paused": "yes"}, "paused"),
        ({"metainfo": b64(TORRENT), "paused": None}, "paused"),
        ({"metainfo": b64(TORRENT), "save_path": "relative/dir"}, "save_path"),
        ({"metainfo": b64(TORRENT), "save_path": "/tmp/a\0b"}, "save_path"),
        ({"metainfo": b64(TORRENT), "save_path": "/tmp/dl/../../etc"}, "save_path"),
        ({"metainfo": b64(TORRENT), "save_path": "~no-such-user-here/x"}, "save_path"),
        ({"metainfo": b64(TORRENT), "save_path": 5}, "save_path"),
        ({"metainfo": b64(TORRENT), "strategy": "no-such-strategy"}, "strategy"),
        ({"metainfo": b64(TORRENT), "strategy": 1}, "strategy"),
        ({"metainfo": b64(TORRENT), "path": "/x.torrent"}, "metainfo"),
        ({}, "metainfo"),
        ({"metainfo": "%%% not base64 %%%"}, "metainfo"),
        ({"metainfo": "é"}, "metainfo"),
        ({"metainfo": 12}, "metainfo"),
        ({"path": "relative.torrent"}, "path"),
        ({"path": "/tmp/a\0b.torrent"}, "path"),
        ({"path": "/tmp/../etc/x.torrent"}, "path"),
        ({"path": ["/x.torrent"]}, "path"),
    ],
)
def test_add_bad_params(h: Harness, params: dict[str, Any], field: str) -> None:
    bad_param(h.error("torrent.add", **params), field)
    assert h.session.torrents == {} and h.stored() == []


def test_add_with_options(h: Harness) -> None:
    save = h.tmp / "custom"
    h.add(save_path=str(save), paused=True, strategy="sequential")
    t = h.call("torrent.get", info_hash=HEX)
    assert (t["save_path"], t["state"], t["strategy"]) == (str(save), "paused", "sequential")
    options = json.loads((h.tmp / "state" / "torrents" / f"{HEX}.json").read_text())
    assert options["save_path"] == str(save) and options["paused"] is True
    assert options["strategy"] == "sequential"


def test_add_storage_error_adds_nothing(h: Harness) -> None:
    (h.tmp / "state").write_text("a file, not a directory")
    err = h.error("torrent.add", metainfo=b64(TORRENT))
    assert err.code == codes.STORAGE and "cannot save" in err.message
    assert h.session.torrents == {} and h.events == []


def test_add_while_shutting_down(h: Harness) -> None:
    h.session.shutdown()
    err = h.error("torrent.add", metainfo=b64(TORRENT))
    assert err.code == codes.SHUTTING_DOWN
    assert h.session.torrents == {}


# -- finding -----------------------------------------------------------------------------------
def test_prefix_lookup(h: Harness) -> None:
    h.add()
    assert h.call("torrent.get", info_hash=HEX[:5].upper())["info_hash"] == HEX
    err = h.error("torrent.get", info_hash="ffff" if not HEX.startswith("ffff") else "0000")
    assert err.code == codes.NOT_FOUND and err.data["field"] == "info_hash"
    bad_param(h.error("torrent.get", info_hash=5), "info_hash")


def test_ambiguous_prefix(h: Harness) -> None:
    seen: dict[str, str] = {}
    for n in range(40):
        answer = h.add(single(f"t{n}".encode(), content(20_000, 100 + n)))
        first = answer["info_hash"][0]
        if first in seen:
            break
        seen[first] = answer["info_hash"]
    err = h.error("torrent.pause", info_hash=first)
    assert err.code == codes.AMBIGUOUS and err.data == {"field": "info_hash", "value": first}
    assert "give more digits" in err.message


@pytest.mark.parametrize(
    "method",
    [
        "torrent.get",
        "torrent.pause",
        "torrent.resume",
        "torrent.remove",
        "torrent.verify",
        "torrent.peers",
        "torrent.files",
        "torrent.trackers",
        "torrent.set",
    ],
)
def test_every_method_says_not_found(h: Harness, method: str) -> None:
    err = h.error(method, info_hash="abc")
    assert err.code == codes.NOT_FOUND and err.data == {"field": "info_hash", "value": "abc"}


# -- list / get / files ------------------------------------------------------------------------
def test_list_fields_and_state_filter(h: Harness) -> None:
    (h.dl / "file.bin").write_bytes(DATA)
    h.add()
    h.reactor.advance(1)
    h.add(OTHER)
    rows = h.call("torrent.list")
    assert [r["info_hash"] for r in rows] == [HEX, hex_of(OTHER)]  # oldest first
    assert set(rows[0]) == set(SUMMARY_FIELDS)
    assert h.call("torrent.list", fields=["name", "state"]) == [
        {"name": "file.bin", "state": "seeding"},
        {"name": "other.bin", "state": "downloading"},
    ]
    assert h.call("torrent.list", fields=["name"], state="seeding") == [{"name": "file.bin"}]
    assert h.call("torrent.list", state="error") == []
    # each field computed alone (only asked fields are computed) equals the full record's
    for name in SUMMARY_FIELDS:
        assert h.call("torrent.list", fields=[name]) == [{name: r[name]} for r in rows], name


# -- torrent.list on the wire: quiet torrents' rows kept (core/rpc/list_rows.py) ---------------
LIST_FIELD_SETS = (
    None,
    ["info_hash", "name", "state", "state_detail", "queue_position", "progress", "size",
     "download_rate", "upload_rate", "peers", "eta", "left", "ratio"],  # btctl list's
    ["name", "check_progress", "seeding_time"],
)  # fmt: skip
assert len(LIST_FIELD_SETS) + 1 <= list_rows.FIELD_SETS  # all kept at once, and one table


def wire_list(h: Harness, fields: list[str] | None, **params: Any) -> list[dict[str, Any]]:
    """What a client reads: the wire form's reply, encoded and decoded."""
    asked = {} if fields is None else {"fields": fields}
    return json_text.loads(json_text.dumps(h.methods["torrent.list"].wire_form(**asked, **params)))


def assert_wire_is_fresh(h: Harness) -> None:
    """Every field set's wire list equals rows built now (kept rows are not stale), in both
    forms."""
    for fields in LIST_FIELD_SETS:
        asked = {} if fields is None else {"fields": fields}
        fresh = json_text.loads(json_text.dumps(h.call("torrent.list", **asked)))
        assert wire_list(h, fields) == fresh, fields
    fields = LIST_FIELD_SETS[1]
    table = wire_list(h, fields, format="table")
    assert table["fields"] == fields
    assert [dict(zip(fields, row, strict=True)) for row in table["rows"]] == wire_list(h, fields)


def torrent_of(h: Harness, info_hash: str = HEX) -> Any:
    return h.session.torrents[bytes.fromhex(info_hash)]


def _seed_clock(h: Harness, t: Any) -> None:
    t.seed_clock = SeedClock.from_json({"seeding_time": 3600})


CHANGES: dict[str, Any] = {
    "pause": lambda h, t: h.call("torrent.pause", info_hash=HEX),
    "pause, resume": lambda h, t: (
        h.call("torrent.pause", info_hash=HEX),
        h.call("torrent.resume", info_hash=HEX),
    ),
    "labels": lambda h, t: h.call("torrent.set", info_hash=HEX, labels=["tv"]),
    "download limit": lambda h, t: h.call("torrent.set", info_hash=HEX, download_limit=1000),
    "queue": lambda h, t: h.call("torrent.queue", info_hash=HEX, move="bottom"),
    "verify": lambda h, t: h.call("torrent.verify", info_hash=HEX),
    "remove the other": lambda h, t: h.call("torrent.remove", info_hash=hex_of(OTHER)),
    "hold": lambda h, t: t.hold("no room"),
    "error": lambda h, t: setattr(t, "error", "disk on fire"),
    "storage problem": lambda h, t: setattr(t, "storage_problem", "storage missing: /x"),
    "hold reason": lambda h, t: setattr(t, "hold_reason", "no room on /x"),
    "completed at": lambda h, t: setattr(t, "completed_at", 12345.0),
    "seed clock": _seed_clock,
    "time passes": lambda h, t: h.reactor.advance(30),
}


@pytest.mark.parametrize("change", CHANGES)
def test_wire_list_rows_follow_every_change(h: Harness, change: str) -> None:
    h.add()  # downloading: nothing on disk
    h.reactor.advance(1)
    h.add(OTHER, paused=True)
    h.add(single(b"third.bin", content(10_000, 3)), paused=True)
    h.call("torrent.add", magnet="magnet:?xt=urn:btih:" + "cd" * 20, paused=True)
    assert_wire_is_fresh(h)  # rows kept for every field set
    CHANGES[change](h, torrent_of(h))
    assert_wire_is_fresh(h)


class Leecher(RemotePeers):
    """A remote peer of one of the harness's torrents."""

    def __init__(self, h: Harness, t: Any) -> None:
        self.clock, self.meta = h.reactor, t.meta
        self.attach(t, t.info_hash)


def test_wire_list_rows_follow_a_peer_that_came_and_went(h: Harness) -> None:
    """A seeding torrent uploads to a peer that then leaves between two lists: its
    counters changed while it was not quiet, and the next list says so."""
    (h.dl / "file.bin").write_bytes(DATA)
    h.add()
    h.add(OTHER, paused=True)
    t = torrent_of(h)
    fields = ["info_hash", "uploaded", "peers", "ratio"]
    assert wire_list(h, fields)[0]["uploaded"] == 0
    peer = Leecher(h, t).open().handshake().send(m.Interested())
    h.reactor.advance(1)
    peer.send(m.Request(0, 0, 16384))
    h.reactor.advance(1)
    assert t.uploaded == 16384
    peer.proto.connectionLost(Failure(ConnectionDone("gone")))
    assert not t.peers
    assert wire_list(h, fields)[0]["uploaded"] == 16384
    assert_wire_is_fresh(h)


def test_wire_list_of_a_seeding_torrent_keeps_its_clock_running(h: Harness) -> None:
    (h.dl / "file.bin").write_bytes(DATA)
    h.add()
    assert torrent_of(h).state == "seeding"
    before = wire_list(h, ["seeding_time", "name"])
    h.reactor.advance(30)
    assert wire_list(h, ["seeding_time", "name"])[0]["seeding_time"] == (
        before[0]["seeding_time"] + 30
    )
    assert_wire_is_fresh(h)


def test_wire_list_keeps_quiet_rows_and_filters(h: Harness) -> None:
    h.add(paused=True)
    h.add(OTHER, paused=True)
    assert wire_list(h, ["name"]) == [{"name": "file.bin"}, {"name": "other.bin"}]
    assert wire_list(h, ["name"], label="tv") == []
    h.call("torrent.set", info_hash=HEX, labels=["tv"])
    assert wire_list(h, ["name"], label="tv") == [{"name": "file.bin"}]
    assert wire_list(h, None, state="paused") == json_text.loads(
        json_text.dumps(h.call("torrent.list", state="paused"))
    )


@pytest.mark.parametrize(
    "params, field",
    [
        ({"fields": ["name", "colour"]}, "fields"),
        ({"fields": [1]}, "fields"),
        ({"fields": "name"}, "fields"),
        ({"state": "sleeping"}, "state"),
        ({"state": 3}, "state"),
        ({"format": "csv"}, "format"),
    ],
)
def test_list_bad_params(h: Harness, params: dict[str, Any], field: str) -> None:
    bad_param(h.error("torrent.list", **params), field)


def test_get_of_a_complete_torrent(h: Harness) -> None:
    (h.dl / "file.bin").write_bytes(DATA)
    h.add()
    t = h.call("torrent.get", info_hash=HEX)
    assert t["state"] == "seeding" and t["progress"] == 1.0 and t["left"] == 0
    assert (t["pieces"], t["pieces_have"], t["piece_length"]) == (3, 3, PL)
    assert t["size"] == len(DATA) and t["eta"] == 0 and t["check_progress"] == 1.0
    assert t["piece_map"] == "e0"
    assert t["comment"] == "made for a test"
    assert t["files"] == [
        {
            "index": 0,
            "path": "file.bin",
            "length": 40_000,
            "completed": 40_000,
            "progress": 1.0,
            "wanted": True,
            "priority": "normal",
        }
    ]
    assert t["trackers"] == [] and t["error"] is None
    json.dumps(t)  # the whole answer is JSON


def test_files_progress_of_a_partly_present_torrent(h: Harness) -> None:
    a, b = content(PL * 2, 6), content(PL + 100, 7)
    torrent = multi(b"album", [([b"a.bin"], a), ([b"b.bin"], b)])
    (h.dl / "album").mkdir()
    (h.dl / "album" / "a.bin").write_bytes(a)
    answer = h.add(torrent)
    files = h.call("torrent.files", info_hash=answer["info_hash"])
    assert all(f.pop("wanted") is True and f.pop("priority") == "normal" for f in files)
    assert files == [
        {"index": 0, "path": "album/a.bin", "length": 2 * PL, "completed": 2 * PL, "progress": 1.0},
        {"index": 1, "path": "album/b.bin", "length": PL + 100, "completed": 0, "progress": 0.0},
    ]
    t = h.call("torrent.get", info_hash=answer["info_hash"])
    assert t["state"] == "downloading" and t["pieces_have"] == 2
    assert t["progress"] == round(2 * PL / (3 * PL + 100), 6)


def test_trackers_and_peers(h: Harness) -> None:
    h.add(single(b"t.bin", DATA, announce=b"http://127.0.0.1:1/announce"))
    info_hash = hex_of(single(b"t.bin", DATA, announce=b"http://127.0.0.1:1/announce"))
    trackers = h.call("torrent.trackers", info_hash=info_hash)
    assert [(t["url"], t["tier"]) for t in trackers] == [("http://127.0.0.1:1/announce", 0)]
    assert h.call("torrent.peers", info_hash=info_hash) == []


class PendingTrackers:
    """A tracker client plugin whose announces never answer (the policy is what is tested)."""

    @hookimpl
    def btd_tracker_client(self, url: str) -> Any:
        return self

    def announce(self, url: str, req: Any) -> defer.Deferred[Any]:
        return defer.Deferred()


def test_a_refused_tracker_says_why_and_the_option_lifts_it(h: Harness) -> None:
    h.session = make_session(h.tmp / "trackers", probe=PendingTrackers())  # type: ignore[arg-type]
    h.methods = torrent_methods(h.session)
    rpc = b"http://127.0.0.1:1/transmission/rpc"
    info_hash = h.add(single(b"t.bin", DATA, announce=rpc))["info_hash"]
    (tracker,) = h.call("torrent.trackers", info_hash=info_hash)
    assert tracker["status"] == "refused" and "allow_local_trackers" in tracker["last_error"]
    h.call("torrent.set", info_hash=info_hash, allow_local_trackers=True)
    (tracker,) = h.call("torrent.trackers", info_hash=info_hash)
    assert tracker["status"] != "refused" and tracker["last_error"] is None
    bad = h.error("torrent.set", info_hash=info_hash, allow_local_trackers=1)
    bad_param(bad, "allow_local_trackers")
    rpc2 = single(b"u.bin", DATA, announce=rpc)
    info_hash = h.add(rpc2, allow_local_trackers=True)["info_hash"]
    (tracker,) = h.call("torrent.trackers", info_hash=info_hash)
    assert tracker["status"] != "refused"


# -- pause / resume / remove / verify ----------------------------------------------------------
def test_pause_and_resume(h: Harness) -> None:
    (h.dl / "file.bin").write_bytes(DATA)
    h.add()
    options = h.tmp / "state" / "torrents" / f"{HEX}.json"
    assert h.call("torrent.pause", info_hash=HEX) == {"info_hash": HEX, "state": "paused"}
    assert json.loads(options.read_text())["paused"] is True
    assert h.call("torrent.pause", info_hash=HEX)["state"] == "paused"  # again: no change
    assert h.call("torrent.resume", info_hash=HEX) == {"info_hash": HEX, "state": "seeding"}
    assert json.loads(options.read_text())["paused"] is False
    assert h.call("torrent.resume", info_hash=HEX)["state"] == "seeding"
    assert [e.kind for e in h.events].count("paused") == 1


def test_remove_keeps_data(h: Harness) -> None:
    (h.dl / "file.bin").write_bytes(DATA)
    h.add()
    answer = h.call("torrent.remove", info_hash=HEX[:8])
    assert answer == {"info_hash": HEX, "removed": True, "deleted_data": False}
    assert (h.dl / "file.bin").exists() and h.stored() == []
    assert h.call("torrent.list") == []
    assert h.events[-1].kind == "removed" and h.events[-1].data == {"deleted_data": False}
    assert h.error("torrent.remove", info_hash=HEX).code == codes.NOT_FOUND


def test_remove_with_delete_data(h: Harness) -> None:
    (h.dl / "file.bin").write_bytes(DATA)
    (h.dl / "keep.txt").write_text("not the torrent's")
    h.add()
    answer = h.call("torrent.remove", info_hash=HEX, delete_data=True)
    assert answer["deleted_data"] is True
    assert not (h.dl / "file.bin").exists() and (h.dl / "keep.txt").exists()
    assert h.stored() == []
    assert h.events[-1].data == {"deleted_data": True}


def test_remove_bad_delete_data(h: Harness) -> None:
    h.add()
    bad_param(h.error("torrent.remove", info_hash=HEX, delete_data="yes"), "delete_data")
    assert h.call("torrent.list", fields=["info_hash"]) == [{"info_hash": HEX}]


def test_verify_finds_damaged_data(h: Harness) -> None:
    (h.dl / "file.bin").write_bytes(DATA)
    h.add()
    damaged = bytearray(DATA)
    damaged[PL + 5] ^= 0xFF  # piece 1
    (h.dl / "file.bin").write_bytes(bytes(damaged))
    assert h.call("torrent.get", info_hash=HEX)["pieces_have"] == 3  # not noticed yet
    assert h.call("torrent.verify", info_hash=HEX) == {"info_hash": HEX, "state": "downloading"}
    t = h.call("torrent.get", info_hash=HEX)
    assert t["pieces_have"] == 2 and t["piece_map"] == "a0"


def test_verify_of_a_paused_torrent_stays_paused(h: Harness) -> None:
    (h.dl / "file.bin").write_bytes(DATA)
    h.add(paused=True)
    (h.dl / "file.bin").write_bytes(b"\0" * len(DATA))
    assert h.call("torrent.verify", info_hash=HEX)["state"] == "paused"
    assert h.call("torrent.get", info_hash=HEX)["pieces_have"] == 0


def test_verify_answers_at_once_while_checking(h: Harness) -> None:
    (h.dl / "file.bin").write_bytes(DATA)
    h.add()
    held: list[defer.Deferred[Bitfield]] = []
    h.session.verifier.recheck = lambda *a, **k: held.append(defer.Deferred()) or held[-1]
    assert h.call("torrent.verify", info_hash=HEX) == {"info_hash": HEX, "state": "checking"}
    assert h.call("torrent.list", fields=["state", "check_progress"]) == [
        {"state": "checking", "check_progress": 0.0}
    ]
    held[0].callback(Bitfield.full(3))
    assert h.call("torrent.get", info_hash=HEX)["state"] == "seeding"


# -- add_peer / set / stats --------------------------------------------------------------------
def test_add_peer_dials_through_the_reactor(h: Harness) -> None:
    h.add()
    assert h.call("torrent.add_peer", info_hash=HEX, address="127.0.0.1", port=6999) == {
        "info_hash": HEX,
        "added": True,
    }
    assert [(c[0], c[1]) for c in h.reactor.tcpClients] == [("127.0.0.1", 6999)]
    again = h.call("torrent.add_peer", info_hash=HEX, address="127.0.0.1", port=6999)
    assert again["added"] is False
    assert len(h.reactor.tcpClients) == 1


def test_add_peer_redials_a_peer_we_were_connected_to(h: Harness) -> None:
    h.add()
    h.call("torrent.add_peer", info_hash=HEX, address="127.0.0.1", port=6999)
    t = h.session.find(HEX)
    t.connection_failed(("127.0.0.1", 6999), "Connection refused")  # backing off now
    again = h.call("torrent.add_peer", info_hash=HEX, address="127.0.0.1", port=6999)
    assert again["added"] is True  # the user asked: dialled at once, not "already known"
    assert len(h.reactor.tcpClients) == 2


def test_disconnect_counts_in_get_and_stats(h: Harness) -> None:
    h.add()
    h.add(OTHER)
    for info_hash in (HEX, hex_of(OTHER)):
        t = h.session.find(info_hash)
        t.add_peers([("127.0.0.1", 6999)])
        t.connection_failed(("127.0.0.1", 6999), "Connection refused")
    got = h.call("torrent.get", info_hash=HEX)["disconnects"]
    assert got["connect_failed"] == 1 and sum(got.values()) == 1
    totals = h.call("session.stats")["disconnects"]
    assert totals["connect_failed"] == 2 and sum(totals.values()) == 2
    assert set(totals) == set(got)


def test_reannounce(h: Harness) -> None:
    h.add()
    reply = h.call("torrent.reannounce", info_hash=HEX[:8])
    assert reply == {
        "info_hash": HEX,
        "announce_in": None,
        "message": "not announcing: it has no usable tracker",
    }
    h.call("torrent.pause", info_hash=HEX)
    assert h.call("torrent.reannounce", info_hash=HEX)["message"] == "not announcing: it is paused"
    bad_param(h.error("torrent.reannounce", info_hash=3), "info_hash")
    assert h.error("torrent.reannounce", info_hash="ffff").code == codes.NOT_FOUND


@pytest.mark.parametrize(
    "address, port, field",
    [
        ("not-an-ip", 6881, "address"),
        ("localhost", 6881, "address"),
        ("127.0.0.1", 0, "port"),
        ("127.0.0.1", 65536, "port"),
        ("127.0.0.1", -1, "port"),
        ("127.0.0.1", "6881", "port"),
        ("127.0.0.1", True, "port"),
        (None, 6881, "address"),
    ],
)
def test_add_peer_bad_params(h: Harness, address: Any, port: Any, field: str) -> None:
    h.add()
    bad_param(h.error("torrent.add_peer", info_hash=HEX, address=address, port=port), field)
    assert h.reactor.tcpClients == []


def test_set_strategy(h: Harness) -> None:
    h.add()
    reply = h.call("torrent.set", info_hash=HEX, strategy="sequential")
    assert reply["info_hash"] == HEX and reply["strategy"] == "sequential"
    assert reply["queue_position"] == 0  # every settable setting is answered
    options = json.loads((h.tmp / "state" / "torrents" / f"{HEX}.json").read_text())
    assert options["strategy"] == "sequential"
    bad_param(h.error("torrent.set", info_hash=HEX, strategy="no-such"), "strategy")
    bad_param(h.error("torrent.set", info_hash=HEX, strategy=3), "strategy")
    assert h.call("torrent.set", info_hash=HEX)["strategy"] == "sequential"  # unchanged


def test_session_stats(h: Harness) -> None:
    (h.dl / "file.bin").write_bytes(DATA)
    h.add()
    h.add(OTHER)
    h.add(single(b"third.bin", content(20_000, 8)), paused=True)
    stats = h.call("session.stats")
    assert stats["torrents"] == 3
    assert stats["states"] == {"seeding": 1, "downloading": 1, "paused": 1}
    assert {
        "peers",
        "download_rate",
        "upload_rate",
        "downloaded",
        "uploaded",
        "uptime",
        "listen_port",
    } <= set(stats)
    json.dumps(stats)


# -- through the real dispatcher ---------------------------------------------------------------
ME = PeerCred(pid=1, uid=1000, gid=1000)


class Wire:
    def __init__(self, h: Harness) -> None:
        server = ControlServer(
            build_methods(h.session),
            clock=h.reactor,
            our_uid=ME.uid,
            peer_cred=lambda transport: ME,
            groups_of=lambda uid, gid: [gid],
        )
        self.transport = StringTransport()
        self.proto = server.buildProtocol(None)
        self.proto.makeConnection(self.transport)
        self.next_id = 0

    def ask(self, method: str, params: Any = None) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": self.next_id}
        if params is not None:
            msg["params"] = params
        self.proto.dataReceived(json.dumps(msg).encode() + b"\n")
        lines = self.transport.value().splitlines()
        self.transport.clear()
        assert len(lines) == 1, lines
        reply = json.loads(lines[0])
        assert reply["id"] == self.next_id
        return reply


def test_wire_list_sends_kept_rows_through_the_server(h: Harness) -> None:
    wire = Wire(h)
    h.add(paused=True)
    h.add(OTHER, paused=True)
    first = wire.ask("torrent.list", {"fields": ["name", "state"]})["result"]
    assert first == [
        {"name": "file.bin", "state": "paused"},
        {"name": "other.bin", "state": "paused"},
    ]
    h.call("torrent.resume", info_hash=HEX)
    again = wire.ask("torrent.list", {"fields": ["name", "state"]})["result"]
    assert again == [{"name": "file.bin", "state": "downloading"}, first[1]]
    rows = h.call("torrent.list", fields=["name"])  # in the daemon: plain values
    assert rows == [{"name": "file.bin"}, {"name": "other.bin"}]


def test_wire_add_get_and_errors(h: Harness) -> None:
    wire = Wire(h)
    reply = wire.ask("torrent.add", {"metainfo": b64(TORRENT)})
    assert reply["result"] == {"info_hash": HEX, "name": "file.bin", "added": True}
    assert wire.ask("torrent.add", [b64(TORRENT)])["result"]["added"] is False  # positional

    error = wire.ask("torrent.add", {"metainfo": b64(TORRENT), "paused": "yes"})["error"]
    assert error["code"] == -32602 and error["data"] == {"field": "paused"}

    error = wire.ask("torrent.add", {"metainfo": b64(b"junk")})["error"]
    assert error["code"] == -32003 and error["data"] == {"field": "metainfo"}

    error = wire.ask("torrent.get", {"info_hash": "0123456789" if HEX[0] != "0" else "f"})["error"]
    assert error["code"] == -32001 and error["data"]["field"] == "info_hash"

    h.add(OTHER)
    for n in range(40):
        h.add(single(f"w{n}".encode(), content(20_000, 200 + n)))
    firsts = [t["info_hash"][0] for t in h.call("torrent.list", fields=["info_hash"])]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    error = wire.ask("torrent.pause", {"info_hash": shared})["error"]
    assert error["code"] == -32002 and error["data"]["field"] == "info_hash"

    error = wire.ask("torrent.get", {"hash": HEX})["error"]  # wrong parameter name
    assert error["code"] == -32602

    stats = wire.ask("session.stats")["result"]
    assert stats["torrents"] == len(h.session.torrents)


def test_wire_storage_and_shutdown_errors(h: Harness) -> None:
    wire = Wire(h)
    (h.tmp / "state").write_text("a file, not a directory")
    error = wire.ask("torrent.add", {"metainfo": b64(TORRENT)})["error"]
    assert error["code"] == -32004 and "cannot save" in error["message"]
    h.session.shutdown()
    error = wire.ask("torrent.add", {"metainfo": b64(TORRENT)})["error"]
    assert error["code"] == -32005


def test_every_torrent_method_is_listed_with_a_description(h: Harness) -> None:
    listed = Wire(h).ask("session.methods")["result"]
    for name in torrent_methods(h.session):
        assert listed.get(name), name


# -- docs/RPC.md stays true ----------------------------------------------------------------------
RPC_MD = Path(__file__).resolve().parents[3] / "docs" / "RPC.md"


def _section(title_start: str) -> str:
    text = RPC_MD.read_text()
    start = text.index(f"### `{title_start}")
    end = text.find("\n### ", start + 1)
    return text[start:end]


def _table_names(section: str) -> set[str]:
    import re

    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z_0-9]+)`", line.split("|")[1]))
    return names


def test_every_method_is_documented(h: Harness) -> None:
    for name in torrent_methods(h.session):
        assert _section(f"{name}(")


def test_documented_summary_and_get_members_are_the_real_ones(h: Harness) -> None:
    assert _table_names(_section("torrent.list(")) == set(SUMMARY_FIELDS)
    h.add()
    extra = set(h.call("torrent.get", info_hash=HEX)) - set(SUMMARY_FIELDS)
    assert _table_names(_section("torrent.get(")) == extra


# -- torrent.add with a list (the batch form) ------------------------------------------------
def batch(h: Harness, items: list[Any]) -> list[dict[str, Any]]:
    """``torrent.add(torrents=items)``, the reactor turned until it answers."""
    d = h.methods["torrent.add"](torrents=items)
    out: list[Any] = []
    d.addBoth(out.append)
    for _ in range(10_000):
        if out:
            break
        h.reactor.advance(0)
    assert out, "the batch did not answer"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def many(n: int, seed: int = 500) -> list[bytes]:
    return [single(f"b{seed + i}.bin".encode(), content(1_000, seed + i)) for i in range(n)]


def test_batch_mixed_good_bad_and_duplicates(h: Harness) -> None:
    h.add()  # already there before the batch
    file = h.tmp / "other.torrent"
    file.write_bytes(OTHER)
    items = [
        {"metainfo": b64(TORRENT)},  # 0: already present
        {"path": str(file), "paused": True},  # 1: added, paused
        {"metainfo": "%%% not base64"},  # 2: bad base64
        {"metainfo": b64(b"junk")},  # 3: not a torrent
        {"path": str(file)},  # 4: the same torrent as item 1
        {"metainfo": b64(TORRENT), "paused": "yes"},  # 5: bad option
        {"metainfo": b64(many(1)[0]), "strategy": "nope"},  # 6: unknown strategy
        "not an object",  # 7
        {"metainfo": b64(many(1, 900)[0]), "colour": "red"},  # 8: unknown key
        {"magnet": "magnet:?xt=urn:btih:" + "ab" * 20, "paused": True},  # 9: a magnet
        {"magnet": "magnet:?dn=no-hash"},  # 10: bad magnet
    ]
    results = batch(h, items)
    assert len(results) == len(items)
    other = hex_of(OTHER)
    assert results[0] == {"info_hash": HEX, "name": "file.bin", "added": False, "save_path": ANY}
    assert results[1] == {"info_hash": other, "name": "other.bin", "added": True}
    assert results[4] == {
        **results[1],
        "added": False,
        "save_path": str(h.session.options_for({}).save_path),
    }

    def error(i: int) -> dict[str, Any]:
        assert set(results[i]) == {"error"}, results[i]
        assert results[i]["error"]["data"]["index"] == i
        return results[i]["error"]

    assert error(2)["code"] == codes.INVALID_PARAMS and error(2)["data"]["field"] == "metainfo"
    assert error(3)["code"] == codes.INVALID_TORRENT and error(3)["data"]["field"] == "metainfo"
    assert error(5)["code"] == codes.INVALID_PARAMS and error(5)["data"]["field"] == "paused"
    assert error(6)["code"] == codes.INVALID_PARAMS and error(6)["data"]["field"] == "strategy"
    assert error(7)["code"] == codes.INVALID_PARAMS and error(7)["data"]["field"] == "torrents"
    assert error(8)["data"]["field"] == "colour"
    assert results[9] == {"info_hash": "ab" * 20, "name": ANY, "added": True}
    assert error(10)["code"] == codes.INVALID_TORRENT and error(10)["data"]["field"] == "magnet"
    listed = {t["info_hash"]: t["state"] for t in h.call("torrent.list")}
    assert listed == {HEX: ANY, other: "paused", "ab" * 20: "metadata"}
    assert h.stored() == sorted([f"{x}.{s}" for x in (HEX, other) for s in ("json", "torrent")])
    assert [e.kind for e in h.events].count("added") == 3


def test_batch_is_durable_before_the_reply_in_one_store_write(tmp_path: Path) -> None:
    session = make_session(tmp_path, plugins={"resume_sqlite": {}, "rarest_first": {}})
    store = session.store
    writes: list[int] = []
    real = store.save_torrents
    store.save_torrents = lambda items: (writes.append(len(items)), real(items))[1]
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    torrents = many(250)
    d = torrent_methods(session)["torrent.add"](
        torrents=[{"metainfo": b64(t)} for t in torrents] + [{"metainfo": b64(torrents[0])}]
    )
    seen: list[Any] = []

    def replied(results: list[dict[str, Any]]) -> None:
        stored, _ = store.load_all()  # what a crash right now would keep
        seen.append((results, {s.info_hash for s in stored}))

    d.addCallback(replied)
    for _ in range(1_000):
        if seen:
            break
        held.run()
        session.reactor.advance(0)
    assert seen, "no reply"
    results, stored = seen[0]
    assert [r["added"] for r in results] == [True] * 250 + [False]
    assert stored == {hex_of(t) for t in torrents}
    assert writes == [250]  # one transaction for the whole batch
    assert len(session.torrents) == 250


def test_batch_yields_to_the_reactor(h: Harness) -> None:
    """A batch larger than a slice does not finish within one reactor turn."""
    d = h.methods["torrent.add"](torrents=[{"metainfo": b64(t)} for t in many(350)])
    assert not d.called  # went back to the reactor between slices
    results = batch_result(h, d)
    assert [r["added"] for r in results] == [True] * 350


def batch_result(h: Harness, d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    while not out:
        h.reactor.advance(0)
    return out[0]


def test_batch_save_path_checked_once_per_path_and_failures_are_per_item(h: Harness) -> None:
    blocker = h.tmp / "a-file"
    blocker.write_text("x")
    items = [{"metainfo": b64(t), "save_path": str(h.tmp / "good")} for t in many(3)]
    items += [{"metainfo": b64(t), "save_path": str(blocker / "sub")} for t in many(2, 700)]
    checked: list[Any] = []
    import btd.core.batch_add as batch_add

    real = batch_add.check_save_path
    batch_add.check_save_path = lambda p: (checked.append(p), real(p))[1]
    try:
        results = batch(h, items)
    finally:
        batch_add.check_save_path = real
    assert sorted(map(str, checked)) == sorted([str(h.tmp / "good"), str(blocker / "sub")])
    assert [r.get("added") for r in results[:3]] == [True] * 3
    for r in results[3:]:
        assert r["error"]["code"] == codes.STORAGE and r["error"]["data"]["field"] == "save_path"
    assert len(h.session.torrents) == 3


def test_batch_store_failure_adds_none(h: Harness) -> None:
    (h.tmp / "state").write_text("a file, not a directory")
    results = batch(h, [{"metainfo": b64(t)} for t in many(3)])
    assert all(r["error"]["code"] == codes.STORAGE for r in results)
    assert h.session.torrents == {} and h.events == []
    (h.tmp / "state").unlink()
    assert all(r["added"] for r in batch(h, [{"metainfo": b64(t)} for t in many(3)]))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"torrents": "x"}, "torrents"),
        ({"torrents": [{}] * 10_001}, "torrents"),
        ({"torrents": [], "paused": True}, "paused"),
        ({"torrents": [], "metainfo": "x"}, "metainfo"),
    ],
)
def test_batch_bad_params(h: Harness, params: dict[str, Any], field: str) -> None:
    err = h.error("torrent.add", **params)
    assert err.code == codes.INVALID_PARAMS and err.data == {"field": field}, err.message


def test_batch_empty_and_shutting_down(h: Harness) -> None:
    assert batch(h, []) == []
    h.session.shutdown()
    assert h.error("torrent.add", torrents=[]).code == codes.SHUTTING_DOWN


def test_wire_batch(h: Harness) -> None:
    wire = Wire(h)
    reply = wire.ask("torrent.add", {"torrents": [{"metainfo": b64(TORRENT)}, {"path": "x"}]})
    first, second = reply["result"]
    assert first == {"info_hash": HEX, "name": "file.bin", "added": True}
    assert second["error"]["code"] == -32602
    assert second["error"]["data"] == {"field": "path", "index": 1}


def test_batch_re_add_waits_for_a_removal_still_being_stored(h: Harness) -> None:
    h.add()
    held = HeldBlocking()
    h.session.run_blocking = held  # type: ignore[method-assign]
    removed = h.methods["torrent.remove"](info_hash=HEX)  # its store delete is held
    d = h.methods["torrent.add"](torrents=[{"metainfo": b64(TORRENT)}, {"metainfo": b64(OTHER)}])
    out: list[Any] = []
    d.addBoth(out.append)
    for _ in range(100):  # newest job first: a thread pool may run them in any order
        while held.queue:
            fn, args, job = held.queue.pop()
            job.callback(fn(*args))
        h.reactor.advance(0)
    assert removed.called and [r["added"] for r in out[0]] == [True, True]
    assert h.stored() == sorted(
        f"{x}.{s}" for x in (HEX, hex_of(OTHER)) for s in ("json", "torrent")
    )


def test_set_and_add_speed_limits(h: Harness) -> None:
    h.add()
    reply = h.call("torrent.set", info_hash=HEX, download_limit=1000, upload_limit=0)
    assert (reply["download_limit"], reply["upload_limit"]) == (1000, 0)
    got = h.call("torrent.get", info_hash=HEX)
    assert (got["download_limit"], got["upload_limit"]) == (1000, 0)
    listed = h.call("torrent.list", fields=["download_limit", "upload_limit"])
    assert listed == [{"download_limit": 1000, "upload_limit": 0}]
    options = json.loads((h.tmp / "state" / "torrents" / f"{HEX}.json").read_text())
    assert options["download_limit"] == 1000  # kept across restarts
    for bad in (-1, 1.5, True, "5M", 10**13):
        bad_param(h.error("torrent.set", info_hash=HEX, upload_limit=bad), "upload_limit")
        bad_param(h.error("torrent.add", metainfo="x", download_limit=bad), "download_limit")
    assert h.call("torrent.get", info_hash=HEX)["upload_limit"] == 0  # nothing applied


# -- file selection ------------------------------------------------------------------------------
def test_files_skipped_at_add_and_set_files_later(h: Harness) -> None:
    a, b, c = content(PL + 10, 21), content(PL, 22), content(PL - 10, 23)
    torrent = multi(b"pack", [([b"a"], a), ([b"b"], b), ([b"c"], c)])
    info_hash = h.add(torrent, files_skipped=[0, 2])["info_hash"]
    files = h.call("torrent.files", info_hash=info_hash)
    assert [(f["wanted"], f["priority"]) for f in files] == [
        (False, "normal"),
        (True, "normal"),
        (False, "normal"),
    ]
    t = h.call("torrent.get", info_hash=info_hash)
    assert t["size"] == 3 * PL and t["wanted"] == 2 * PL  # pieces 1 and 2 touch b
    rows = h.call("torrent.set_files", info_hash=info_hash, indices=[2], priority="high")
    assert rows[2]["priority"] == "high" and rows[2]["wanted"] is False
    rows = h.call("torrent.set_files", info_hash=info_hash, indices=[0, 2], wanted=True)
    assert all(r["wanted"] for r in rows)
    assert h.call("torrent.get", info_hash=info_hash)["wanted"] == 3 * PL
    bad_param(
        h.error("torrent.set_files", info_hash=info_hash, indices=[3], wanted=True), "indices"
    )
    bad_param(h.error("torrent.set_files", info_hash=info_hash, indices=[0]), "wanted")
    bad_param(h.error("torrent.set_files", info_hash=info_hash, indices=[0], wanted=1), "wanted")
    err = h.error("torrent.set_files", info_hash=info_hash, indices=[0], priority="top")
    bad_param(err, "priority")
    bad_param(h.error("torrent.add", metainfo=b64(TORRENT), files_skipped=[1]), "files_skipped")
    err = h.error("torrent.add", magnet="magnet:?xt=urn:btih:" + "ab" * 20, files_skipped=[0])
    bad_param(err, "files_skipped")
    out = batch(h, [{"metainfo": b64(TORRENT), "files_skipped": [5]}])
    assert out[0]["error"]["data"] == {"field": "files_skipped", "index": 0}


def test_file_priorities_at_add(h: Harness) -> None:
    torrent = multi(b"two", [([b"a"], content(PL, 31)), ([b"b"], content(PL, 32))])
    info_hash = h.add(torrent, file_priorities={"1": "high"})["info_hash"]
    files = h.call("torrent.files", info_hash=info_hash)
    assert [f["priority"] for f in files] == ["normal", "high"]
    bad_param(h.error("torrent.add", metainfo=b64(TORRENT), file_priorities={"x": "high"}),
              "file_priorities")  # fmt: skip
    out = batch(h, [{"metainfo": b64(torrent), "file_priorities": {"2": "low"}}])
    assert out[0]["error"]["data"] == {"field": "file_priorities", "index": 0}


def test_a_file_given_by_path_is_never_quoted_in_the_error(h: Harness) -> None:
    """Issue 13 class 8: the daemon may read what its caller may not (``/etc/shadow`` gave
    its first byte away as "unexpected byte b'r'")."""
    secret = h.tmp / "shadow"
    secret.write_bytes(b"zq:$6$qz-hash:19000:0:99999:7:::\n")
    err = h.error("torrent.add", path=str(secret))
    assert err.code == codes.INVALID_TORRENT and err.data == {"field": "path"}
    assert str(secret) in err.message and "not a usable .torrent file" in err.message
    for leak in ("b'z'", "zq", "hash", "byte", "offset"):
        assert leak not in err.message
    nested = h.error("torrent.add", path=str(h.tmp / "x.torrent"))  # missing: errno only
    assert "No such file" in nested.message
    # the caller's own bytes are explained as before
    mine = h.error("torrent.add", metainfo=b64(secret.read_bytes()))
    assert mine.message.startswith("invalid torrent: ") and "not a valid .torrent" in mine.message
    # a batch item by path says the same, and quotes nothing either
    (item,) = h.call("torrent.add", torrents=[{"path": str(secret)}])
    assert "zq" not in item["error"]["message"] and item["error"]["data"]["field"] == "path"

"""Transmission's RPC over a fake btd methods table: names, units, ids and error shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.defer import maybeDeferred, succeed
from twisted.internet.task import Clock

from btd.core.rpc.errors import NOT_FOUND, RpcError
from btd.plugins.http.fields import (
    Record,
    goal_mode,
    goal_value,
    magnet_link,
    status_code,
    torrent_fields,
    tracker_list,
)
from btd.plugins.http.ids import TorrentIds
from btd.plugins.http.transmission import TransmissionRpc


def row(info_hash: str, **extra: Any) -> dict[str, Any]:
    base = {
        "info_hash": info_hash,
        "name": f"t-{info_hash[:2]}",
        "state": "downloading",
        "progress": 0.25,
        "size": 1000,
        "wanted": 800,
        "left": 600,
        "downloaded": 200,
        "uploaded": 100,
        "ratio": 0.5,
        "download_rate": 10,
        "upload_rate": 0,
        "peers": 2,
        "seeds": 1,
        "eta": 60,
        "save_path": "/dl",
        "strategy": "rarest-first",
        "download_limit": 0,
        "upload_limit": 5000,
        "error": None,
        "pieces": 4,
        "pieces_have": 1,
        "piece_length": 256,
        "private": False,
        "added_at": 1000.0,
        "completed_at": None,
        "check_progress": 0.0,
        "labels": ["tv"],
        "queue_position": 0,
        "ratio_limit": None,
        "idle_seeding_limit": -1,
        "seeding_time": 0,
    }
    return {**base, **extra}


class FakeBtd:
    """The methods table the plugin calls, recording each call."""

    def __init__(self) -> None:
        self.rows = [
            row("aa" * 20),
            row("bb" * 20, state="paused", added_at=2000.0, download_rate=0),
        ]
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.settings = {
            "download_limit": 0,
            "upload_limit": 0,
            "alt_download_limit": 0,
            "alt_upload_limit": 0,
            "alt_enabled": False,
            "ratio_limit": 2.0,
            "idle_seeding_limit": -1,
            "max_connections": 200,
            "max_connections_per_torrent": 50,
            "max_active_downloads": -1,
            "max_active_seeds": 3,
        }

    def __call__(self, name: str, **params: Any) -> Any:
        self.calls.append((name, params))
        return maybeDeferred(self.answer, name, params)

    def answer(self, name: str, params: dict[str, Any]) -> Any:
        if name == "torrent.list":
            return [dict(r) for r in self.rows]
        if name == "session.get":
            return dict(self.settings)
        if name == "torrent.files":
            return [
                {"index": 0, "path": "d/a", "length": 600, "completed": 100, "wanted": True,
                 "priority": "high"},
                {"index": 1, "path": "d/b", "length": 400, "completed": 0, "wanted": False,
                 "priority": "normal"},
            ]  # fmt: skip
        if name == "torrent.add_url" and "refused" in params["url"]:
            raise RpcError(-32602, "url: refused (SSRF protection): x", {"field": "url"})
        if name in ("torrent.add", "torrent.add_url"):
            known = any(r["info_hash"] == "cc" * 20 for r in self.rows)
            if not known:
                self.rows.append(row("cc" * 20, added_at=3000.0))
            return {"info_hash": "cc" * 20, "name": "new", "added": not known}
        if name == "torrent.pause" and params["info_hash"] == "bb" * 20:
            raise RpcError(NOT_FOUND, "no torrent matches bbbb")
        if name == "torrent.remove":
            self.rows = [r for r in self.rows if r["info_hash"] != params["info_hash"]]
        return {}


@pytest.fixture()
def btd() -> FakeBtd:
    return FakeBtd()


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def trpc(btd: FakeBtd, clock: Clock) -> TransmissionRpc:
    return TransmissionRpc(btd, TorrentIds(), clock.seconds, lambda f, *a: succeed(f(*a)), "sid")


def ask(trpc: TransmissionRpc, method: str, **arguments: Any) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    body = json.dumps({"method": method, "arguments": arguments, "tag": 5}).encode()
    trpc.handle(body).addCallback(out.append)
    assert out, "the fake answers at once"
    assert out[0]["tag"] == 5
    return out[0]


def test_status_and_goal_mapping() -> None:
    assert status_code("paused", 5) == 0 and status_code("stopped", 0) == 0
    assert status_code("checking", 5) == 2
    assert (status_code("queued", 5), status_code("queued", 0)) == (3, 5)
    assert (status_code("downloading", 5), status_code("metadata", None)) == (4, 4)
    assert status_code("seeding", 0) == 6 and status_code("error", 3) == 0
    assert [goal_mode(v) for v in (None, -1, 1.5)] == [(0, 0.0), (2, 0.0), (1, 1.5)]
    assert [goal_value(0, 3, 1), goal_value(2, 3, 1), goal_value(1, 3, 1)] == [None, -1, 3]
    assert goal_value(1, None, 2.0) == 2.0
    with pytest.raises(ValueError):
        goal_value(1, None, None)
    with pytest.raises(ValueError):
        goal_value(7, 1, None)


def test_fields_of_one_record() -> None:
    files = [{"index": 0, "path": "t/a", "length": 10, "completed": 5, "wanted": True,
              "priority": "low"}]  # fmt: skip
    record = Record(3, row("aa" * 20), files=files, trackers=[
        {"url": "http://t.example/announce", "tier": 0},
        {"url": "udp://u.example:6969", "tier": 1},
    ])  # fmt: skip
    got = torrent_fields(
        record,
        ["id", "status", "downloadLimit", "uploadLimit", "uploadLimited", "sizeWhenDone",
         "leftUntilDone", "haveValid", "files", "fileStats", "priorities", "wanted",
         "seedRatioMode", "seedRatioLimit", "seedIdleMode", "eta", "labels", "fileCount",
         "trackers", "nonsense"],
        {"ratio_limit": 2.0},
        0.0,
    )  # fmt: skip
    assert got["id"] == 3 and got["status"] == 4 and "nonsense" not in got
    assert (got["downloadLimit"], got["uploadLimit"], got["uploadLimited"]) == (0, 5, True)
    assert (got["sizeWhenDone"], got["leftUntilDone"], got["haveValid"]) == (800, 600, 200)
    assert got["files"] == [{"name": "t/a", "length": 10, "bytesCompleted": 5}]
    assert got["fileStats"] == [{"bytesCompleted": 5, "wanted": True, "priority": -1}]
    assert (got["priorities"], got["wanted"], got["fileCount"]) == ([-1], [1], 1)
    assert (got["seedRatioMode"], got["seedRatioLimit"], got["seedIdleMode"]) == (0, 2.0, 2)
    assert got["eta"] == 60 and got["labels"] == ["tv"]
    assert [t["sitename"] for t in got["trackers"]] == ["t.example", "u.example:6969"]
    assert tracker_list(record.trackers or []) == (
        "http://t.example/announce\n\nudp://u.example:6969"
    )
    assert magnet_link("ab", "a b", []) == "magnet:?xt=urn:btih:ab&dn=a%20b"


def test_torrent_get_ids_in_added_order_and_selection(trpc: TransmissionRpc) -> None:
    reply = ask(trpc, "torrent-get", fields=["id", "hashString", "status"])
    assert reply["result"] == "success"
    assert reply["arguments"]["torrents"] == [
        {"id": 1, "hashString": "aa" * 20, "status": 4},
        {"id": 2, "hashString": "bb" * 20, "status": 0},
    ]
    one = ask(trpc, "torrent-get", ids=["bb" * 20], fields=["id"])["arguments"]["torrents"]
    assert one == [{"id": 2}]
    assert ask(trpc, "torrent-get", ids=1, fields=["id"])["arguments"]["torrents"] == [{"id": 1}]
    table = ask(trpc, "torrent-get", fields=["id", "name"], format="table")["arguments"]
    assert table["torrents"] == [["id", "name"], [1, "t-aa"], [2, "t-bb"]]
    recent = ask(trpc, "torrent-get", ids="recently-active", fields=["id"])["arguments"]
    assert recent == {"torrents": [{"id": 1}], "removed": []}
    assert ask(trpc, "torrent-get")["result"] == "no fields specified"


def test_add_remove_and_recently_removed(trpc: TransmissionRpc, clock: Clock) -> None:
    added = ask(trpc, "torrent-add", metainfo="ZGU=", **{"download-dir": "/x", "paused": True})
    assert added["arguments"] == {
        "torrent-added": {"id": 1, "name": "new", "hashString": "cc" * 20}
    }
    dup = ask(trpc, "torrent-add", metainfo="ZGU=")
    assert dup["arguments"]["torrent-duplicate"]["id"] == 1
    ask(trpc, "torrent-get", fields=["id"])  # the older torrents get 2 and 3
    assert ask(trpc, "torrent-remove", ids=[1], **{"delete-local-data": True})["result"] == (
        "success"
    )
    recent = ask(trpc, "torrent-get", ids="recently-active", fields=["id"])["arguments"]
    assert recent["removed"] == [1]
    clock.advance(61)
    assert (
        ask(trpc, "torrent-get", ids="recently-active", fields=["id"])["arguments"]["removed"] == []
    )
    assert trpc.ids.id_of("dd" * 20) == 4  # 1 is never given again


def test_add_by_url_goes_to_torrent_add_url(trpc: TransmissionRpc, btd: FakeBtd) -> None:
    url = "https://example.org/x.torrent?id=1"
    added = ask(trpc, "torrent-add", filename=f" {url}", paused=True)
    assert btd.calls[-1] == ("torrent.add_url", {"url": url, "paused": True})
    assert added["arguments"]["torrent-added"]["hashString"] == "cc" * 20
    refused = ask(trpc, "torrent-add", filename="http://refused/x.torrent")
    assert refused["result"] == "url: refused (SSRF protection): x"
    assert refused["arguments"] == {}


def test_add_translates_options(trpc: TransmissionRpc, btd: FakeBtd) -> None:
    ask(
        trpc,
        "torrent-add",
        filename="magnet:?xt=urn:btih:" + "cc" * 20,
        labels=["a"],
        **{"files-unwanted": [], "priority-high": [], "download-dir": "/d"},
    )
    assert btd.calls[-1] == (
        "torrent.add",
        {"magnet": "magnet:?xt=urn:btih:" + "cc" * 20, "save_path": "/d", "labels": ["a"],
         "files_skipped": []},
    )  # fmt: skip
    ask(
        trpc,
        "torrent-add",
        filename="/srv/x.torrent",
        **{"priority-low": [1], "priority-high": [0]},
    )
    assert btd.calls[-1][1] == {
        "path": "/srv/x.torrent",
        "file_priorities": {"1": "low", "0": "high"},
    }


def test_torrent_set_translates_units_goals_files(trpc: TransmissionRpc, btd: FakeBtd) -> None:
    reply = ask(
        trpc,
        "torrent-set",
        ids=[1],
        downloadLimit=100,
        downloadLimited=True,
        uploadLimited=False,
        seedRatioLimit=1.5,
        seedRatioMode=1,
        seedIdleMode=0,
        labels=["x"],
        **{"files-unwanted": [1], "priority-high": [0], "location": "/new"},
    )
    assert reply["result"] == "success"
    calls = [c for c in btd.calls if c[0] not in ("torrent.list",)]
    assert calls == [
        ("torrent.set", {"info_hash": "aa" * 20, "download_limit": 100_000, "upload_limit": 0,
                         "ratio_limit": 1.5, "idle_seeding_limit": None, "labels": ["x"]}),
        ("torrent.set_files", {"info_hash": "aa" * 20, "indices": [1], "wanted": False}),
        ("torrent.set_files", {"info_hash": "aa" * 20, "indices": [0], "priority": "high"}),
        ("torrent.move", {"info_hash": "aa" * 20, "path": "/new"}),
    ]  # fmt: skip
    refused = ask(trpc, "torrent-set", ids=[1], trackerAdd=["http://x"])
    assert refused == {"result": "btd cannot set trackerAdd", "arguments": {}, "tag": 5}


def test_btd_errors_become_transmission_results(trpc: TransmissionRpc) -> None:
    assert ask(trpc, "torrent-stop", ids=[2])["result"] == "no torrent matches bbbb"
    assert ask(trpc, "nonsense")["result"].startswith("method name not recognized")
    out: list[dict[str, Any]] = []
    trpc.handle(b"{not json").addCallback(out.append)
    assert out == [{"result": "request is not JSON", "arguments": {}}]
    move = ask(trpc, "torrent-set-location", ids=[1], location="/x")
    assert "move: true" in move["result"]


def test_session_get_set_and_stats(trpc: TransmissionRpc, btd: FakeBtd) -> None:
    btd.answer = _with_session(btd.answer)  # type: ignore[method-assign]
    got = ask(trpc, "session-get")["arguments"]
    assert got["rpc-version"] == 17 and got["rpc-version-minimum"] == 14
    assert got["seedRatioLimited"] is True and got["seedRatioLimit"] == 2.0
    assert (got["seed-queue-enabled"], got["seed-queue-size"]) == (True, 3)
    assert got["download-queue-enabled"] is False and got["session-id"] == "sid"
    few = ask(trpc, "session-get", fields=["version", "peer-port"])["arguments"]
    assert set(few) == {"version", "peer-port"}
    ask(
        trpc,
        "session-set",
        **{"speed-limit-down": 100, "speed-limit-down-enabled": True,
           "speed-limit-up-enabled": False, "seedRatioLimited": False,
           "download-queue-size": 4, "download-queue-enabled": True},
    )  # fmt: skip
    assert btd.calls[-1] == (
        "session.set",
        {"settings": {"download_limit": 100_000, "upload_limit": 0, "ratio_limit": -1,
                      "max_active_downloads": 4}},
    )  # fmt: skip
    assert got["encryption"] == "preferred" and got["utp-enabled"] is False
    ask(trpc, "session-set", encryption="required")
    assert btd.calls[-1] == ("session.set", {"settings": {"encryption": "require"}})
    assert ask(trpc, "session-set", encryption="maybe")["result"] == (
        "encryption must be one of required, preferred, tolerated"
    )
    assert ask(trpc, "session-set", **{"utp-enabled": True})["result"] == (
        "btd cannot set utp-enabled"
    )
    stats = ask(trpc, "session-stats")["arguments"]
    assert (stats["torrentCount"], stats["pausedTorrentCount"], stats["activeTorrentCount"]) == (
        3,
        1,
        2,
    )
    assert ask(trpc, "port-test")["arguments"] == {"port-is-open": True}
    free = ask(trpc, "free-space", path="/")["arguments"]
    assert free["path"] == "/" and free["size-bytes"] > 0
    assert ask(trpc, "free-space", path="rel")["result"] == "path must be an absolute path"


def _with_session(answer: Any) -> Any:
    def wrapped(name: str, params: dict[str, Any]) -> Any:
        if name == "session.config":
            return {"session": {"download_dir": "/dl"}, "daemon": {"state_dir": "/st"},
                    "plugins": {"dht": {}}}  # fmt: skip
        if name == "session.stats":
            return {"torrents": 3, "states": {"paused": 1, "downloading": 2}, "listen_port": 6881,
                    "uptime": 5.0}  # fmt: skip
        return answer(name, params)

    return wrapped


def test_a_torrent_with_an_event_is_recently_active_for_a_minute(
    trpc: TransmissionRpc, clock: Clock
) -> None:
    """Transmission's web client polls recently-active only: a pause must show there."""

    def recent() -> list[str]:
        reply = ask(trpc, "torrent-get", ids="recently-active", fields=["hashString"])
        return [t["hashString"] for t in reply["arguments"]["torrents"]]

    assert recent() == ["aa" * 20]  # the one with traffic
    trpc.touch("bb" * 20)  # paused: no traffic, but it just changed
    assert recent() == ["aa" * 20, "bb" * 20]
    clock.advance(30)
    trpc.touch("aa" * 20)
    clock.advance(31)
    assert recent() == ["aa" * 20] and list(trpc.touched) == ["aa" * 20]

"""btctl's torrent commands against a fake daemon, plus one run against a real btd."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_daemon import FakeDaemon, Refused, btctl_in_new_python, run_btctl

from btd.core.rpc.errors import AMBIGUOUS, INVALID_PARAMS, INVALID_TORRENT, NOT_FOUND
from btd.ctl import main as ctl
from btd.ctl.format import LIST_FIELDS, NAME_WIDTH, format_progress, format_rate
from btd.ctl.parser import COMMANDS

REPO = Path(__file__).resolve().parents[2]
TORRENT_COMMANDS = (
    "add", "list", "info", "pause", "resume", "verify", "rm", "peers", "files", "trackers",
    "set", "stats", "add-peer", "reannounce",
)  # fmt: skip

HASH_A = "3f9a" + "11" * 18
HASH_B = "3f9b" + "22" * 18
HASH_C = "c0ff" + "33" * 18


def summary(info_hash: str, name: str, **over: Any) -> dict[str, Any]:
    base = {
        "info_hash": info_hash, "name": name, "state": "downloading", "progress": 0.5,
        "size": 3 * 2**20, "left": 3 * 2**19, "downloaded": 3 * 2**19, "uploaded": 2**19,
        "ratio": 0.3333, "download_rate": 1536 * 1024, "upload_rate": 2048, "peers": 7,
        "seeds": 2, "eta": 3723, "save_path": "/srv/dl", "strategy": "rarest-first",
        "error": None, "pieces": 12, "pieces_have": 6, "piece_length": 262144,
        "private": False, "added_at": 1700000000.0, "completed_at": None,
        "check_progress": 1.0,
    }  # fmt: skip
    return {**base, **over}


TORRENTS = {
    HASH_A: summary(HASH_A, "debian-12.iso"),
    HASH_B: summary(
        HASH_B,
        "A very long torrent name that will not fit\x1b[31m in the column",
        state="seeding",
        progress=1.0,
        left=0,
        eta=0,
        download_rate=0,
        ratio=2.5,
    ),  # fmt: skip
}
FILES = [
    {"index": 0, "path": "dir/a.bin", "length": 2**20, "completed": 2**20, "progress": 1.0,
     "wanted": True, "priority": "high"},
    {"index": 1, "path": "dir/b.bin", "length": 2 * 2**20, "completed": 0, "progress": 0.0,
     "wanted": False, "priority": "normal"},
]  # fmt: skip
TRACKERS = [
    {"url": "http://127.0.0.1:6969/announce", "tier": 0, "status": "working",
     "last_error": None, "last_warning": None, "next_announce": 1795.2, "seeders": 3,
     "leechers": 1, "peers_last": 4},
    {"url": "udp://127.0.0.1:6969", "tier": 1, "status": "error",
     "last_error": "connection refused", "last_warning": None, "next_announce": None,
     "seeders": None, "leechers": None, "peers_last": 0},
]  # fmt: skip
PEERS = [
    {"address": "127.0.0.1", "port": 6881, "client": "LT2090", "peer_id": "00", "progress": 1.0,
     "download_rate": 2**20, "upload_rate": 0, "downloaded": 5, "uploaded": 0,
     "am_choking": True, "am_interested": True, "peer_choking": False,
     "peer_interested": False, "snubbed": False},
    {"address": "::1", "port": 51413, "client": "TR3000", "peer_id": "01", "progress": 0.25,
     "download_rate": 0, "upload_rate": 512, "downloaded": 0, "uploaded": 9,
     "am_choking": False, "am_interested": False, "peer_choking": True,
     "peer_interested": True, "snubbed": True},
]  # fmt: skip
STATS = {
    "torrents": 2, "states": {"downloading": 1, "seeding": 1}, "peers": 7,
    "download_rate": 1536 * 1024, "upload_rate": 2048, "downloaded": 10 * 2**30,
    "uploaded": 2**30, "uptime": 93784.2, "listen_port": 6881,
    "disconnects": {"closed_by_peer": 3, "protocol_error": 0, "timeout": 1, "banned": 0,
                    "left": 0, "redundant": 0, "refused": 0, "connect_failed": 12},
}  # fmt: skip
NO_DISCONNECTS = dict.fromkeys(STATS["disconnects"], 0)
INFO = {"version": "0.1.0", "pid": 7, "uptime": 5.0, "config_path": "/etc/btd/btd.yaml"}

# .torrent contents the fake daemon knows (it decodes the base64 btctl sends)
GOOD = b"d4:infod4:name3:newee"
THREE_FILES = (
    b"d4:infod5:filesld6:lengthi1e4:pathl1:aeed6:lengthi1e4:pathl1:beed6:lengthi1e4:pathl1:ceee"
    b"4:name3:newee"
)
PRESENT = b"d4:infod4:name3:oldee"
PRESENT_AT = b"d4:infod4:name3:subee"  # already there; the daemon says where it stays
BAD = b"this is not bencode"


def resolve(prefix: str) -> str:
    matches = [h for h in (HASH_A, HASH_B) if h.startswith(prefix.lower())]
    if not matches:
        raise Refused(NOT_FOUND, f"no torrent matches {prefix!r}", {"field": "info_hash"})
    if len(matches) > 1:
        raise Refused(AMBIGUOUS, f"{prefix!r} matches {len(matches)} torrents", {"field": "x"})
    return matches[0]


def m_add(p: dict[str, Any]) -> Any:
    if "magnet" in p:
        return {"info_hash": p["magnet"][-40:], "name": "m", "added": True}
    data = base64.b64decode(p["metainfo"], validate=True)
    if data == GOOD or data == THREE_FILES:
        return {"info_hash": HASH_C, "name": "new", "added": True}
    if data == PRESENT:
        return {"info_hash": HASH_A, "name": "debian-12.iso", "added": False}
    if data == PRESENT_AT:
        return {
            "info_hash": HASH_A,
            "name": "debian-12.iso",
            "added": False,
            "save_path": "/srv/dl",
        }
    raise Refused(INVALID_TORRENT, "invalid torrent: not bencoded", {"field": "metainfo"})


def m_list(p: dict[str, Any] | None) -> Any:
    state = (p or {}).get("state")
    if state not in (None, "downloading", "seeding", "paused"):
        raise Refused(INVALID_PARAMS, "state: must be one of [...]", {"field": "state"})
    found = [t for t in TORRENTS.values() if state is None or t["state"] == state]
    if (p or {}).get("format") == "table":  # as the daemon: field names once, then values
        names = p["fields"]
        return {"fields": names, "rows": [[t.get(n) for n in names] for t in found]}
    return found


def m_get(p: dict[str, Any]) -> Any:
    h = resolve(p["info_hash"])
    return {**TORRENTS[h], "files": FILES, "trackers": TRACKERS, "piece_map": "fff0",
            "sources": {"127.0.0.1:6881": 2**20}, "banned": ["127.0.0.7:1"] if h == HASH_A
            else [], "wasted": 16384, "comment": "made for tests", "created_by": None,
            "disconnects": {**NO_DISCONNECTS, "left": 2} if h == HASH_A else NO_DISCONNECTS}  # fmt: skip


def m_set(p: dict[str, Any]) -> Any:
    h = resolve(p["info_hash"])
    known = ("strategy", "ratio_limit", "seeding_time_limit", "force_start")
    if any(key not in (*known, "info_hash") for key in p):
        raise Refused(INVALID_PARAMS, "speed: unknown parameter of torrent.set", {"field": "x"})
    if p.get("strategy", "sequential") not in ("rarest-first", "sequential"):
        raise Refused(INVALID_PARAMS, "strategy: no piece strategy called 'x'", {"field": "s"})
    return {"info_hash": h, **{k: v for k, v in p.items() if k != "info_hash"}}


def m_queue(p: dict[str, Any]) -> Any:
    position = {"top": 0, "down": 1}[p["move"]]
    return {"info_hash": resolve(p["info_hash"]), "queue_position": position, "state": "queued"}


CONFIG = {
    "source": "/etc/btd/btd.yaml",
    "daemon": {"state_dir": "/var/lib/btd", "log_level": "info"},
    "session": {"download_dir": "/srv/dl", "listen_port": 6881, "dht": False},
    "plugins": {"enabled": ["rarest_first", "udp_tracker"], "notify_command": {"argv": []},
                "watch_dir": {"path": "/srv/in\x1b[31m", "interval": 2.5}},
    "limits": {},
}  # fmt: skip

METHODS: dict[str, Callable[[Any], Any]] = {
    "session.info": lambda p: INFO,
    "session.config": lambda p: CONFIG,
    "session.stats": lambda p: STATS,
    "torrent.add": m_add,
    "torrent.list": m_list,
    "torrent.get": m_get,
    "torrent.pause": lambda p: {"info_hash": resolve(p["info_hash"]), "state": "paused"},
    "torrent.resume": lambda p: {"info_hash": resolve(p["info_hash"]), "state": "seeding"},
    "torrent.verify": lambda p: {"info_hash": resolve(p["info_hash"]), "state": "checking"},
    "torrent.remove": lambda p: {
        "info_hash": resolve(p["info_hash"]),
        "removed": True,
        "deleted_data": p["delete_data"],
    },  # fmt: skip
    "torrent.peers": lambda p: PEERS if resolve(p["info_hash"]) == HASH_A else [],
    "torrent.files": lambda p: FILES if resolve(p["info_hash"]) else [],
    "torrent.set_files": lambda p: FILES if resolve(p["info_hash"]) else [],
    "torrent.trackers": lambda p: TRACKERS if resolve(p["info_hash"]) == HASH_A else [],
    "torrent.set": m_set,
    "torrent.queue": m_queue,
    "torrent.reannounce": lambda p: {
        "info_hash": resolve(p["info_hash"]),
        "announce_in": 212.0 if resolve(p["info_hash"]) == HASH_B else 0.0,
        "message": "announcing in 212 s, when the tracker's min interval ends"
        if resolve(p["info_hash"]) == HASH_B
        else "announcing now",
    },  # fmt: skip
    "torrent.add_peer": lambda p: {
        "info_hash": resolve(p["info_hash"]),
        "added": p["address"] != "127.0.0.9",
    },  # fmt: skip
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BTD_SOCKET", raising=False)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(tmp_path / "btd.sock", METHODS)
    yield fake
    fake.stop()


@pytest.fixture
def btctl(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    return functools.partial(run_btctl, capsys, "--socket", str(daemon.path))


def rows(out: str) -> list[list[str]]:
    """A table's lines split on runs of 2+ spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


def field(out: str, key: str) -> str:
    match = re.search(rf"^{re.escape(key)}:\s+(.*)$", out, re.M)
    assert match, f"no {key!r} in:\n{out}"
    return match.group(1)


def torrent_file(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def fake_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


# -- add -------------------------------------------------------------------------------------


def test_add_sends_base64_and_options(btctl, daemon, tmp_path, monkeypatch) -> None:
    good = torrent_file(tmp_path, "good.torrent", GOOD)
    code, out, err = btctl("add", good)
    assert (code, out, err) == (0, f"added {HASH_C} new\n", "")
    method, params = daemon.calls()[-1]
    assert method == "torrent.add"
    assert params == {"metainfo": base64.b64encode(GOOD).decode(), "paused": False}
    monkeypatch.chdir(tmp_path)
    code, _, _ = btctl("add", good, "--paused", "--dir", "sub/dl", "--strategy", "sequential")
    params = daemon.calls()[-1][1]
    assert code == 0 and params["paused"] is True and params["strategy"] == "sequential"
    assert params["save_path"] == str(tmp_path / "sub" / "dl")


def test_add_only_and_skip_send_files_skipped(btctl, daemon, tmp_path) -> None:
    three = torrent_file(tmp_path, "three.torrent", THREE_FILES)
    assert btctl("add", three, "--only", "1")[0] == 0
    assert daemon.calls()[-1][1]["files_skipped"] == [0, 2]
    assert btctl("add", three, "--skip", "0,2")[0] == 0
    assert daemon.calls()[-1][1]["files_skipped"] == [0, 2]
    code, _, err = btctl("add", three, "--only", "3")
    assert code != 0 and "it has 3 files (0..2)" in err
    code, _, err = btctl("add", three, "--only", "x")
    assert code != 0 and "0-based" in err
    code, _, err = btctl("add", "magnet:?xt=urn:btih:" + "a" * 40, "--skip", "1")
    assert code != 0 and "btctl files" in err


def test_files_skip_want_priority_call_set_files(btctl, daemon) -> None:
    code, out, _ = btctl("files", "3f9a", "--skip", "2,3", "--want", "1", "--priority",
                         "high", "4-5", "--priority", "low", "0")  # fmt: skip
    assert code == 0 and rows(out)[0][0] == "#"
    calls = [p for m, p in daemon.calls() if m == "torrent.set_files"]
    assert calls == [
        {"info_hash": "3f9a", "indices": [2, 3], "wanted": False},
        {"info_hash": "3f9a", "indices": [1], "wanted": True},
        {"info_hash": "3f9a", "indices": [4, 5], "priority": "high"},
        {"info_hash": "3f9a", "indices": [0], "priority": "low"},
    ]
    code, _, err = btctl("files", "3f9a", "--priority", "urgent", "1")
    assert code != 0 and "low, normal, high" in err


def test_add_already_present_exits_0(btctl, tmp_path) -> None:
    code, out, err = btctl("add", torrent_file(tmp_path, "old.torrent", PRESENT))
    assert (code, out, err) == (0, f"already present {HASH_A} debian-12.iso\n", "")
    code, out, _ = btctl("--json", "add", torrent_file(tmp_path, "old.torrent", PRESENT))
    assert code == 0
    assert json.loads(out) == [{"info_hash": HASH_A, "name": "debian-12.iso", "added": False}]


def test_add_from_stdin(btctl, daemon, monkeypatch) -> None:
    fake_stdin(monkeypatch, GOOD)
    code, out, _ = btctl("add", "-")
    assert (code, out) == (0, f"added {HASH_C} new\n")
    assert base64.b64decode(daemon.calls()[-1][1]["metainfo"]) == GOOD


def test_add_from_empty_stdin_is_bad_input(btctl, daemon, monkeypatch) -> None:
    fake_stdin(monkeypatch, b"")
    code, out, err = btctl("add", "-")
    assert (code, out) == (ctl.EXIT_BAD_INPUT, "") and "stdin: empty" in err
    assert daemon.calls() == []


def test_add_several_files_one_unreadable(btctl, daemon, tmp_path) -> None:
    good = torrent_file(tmp_path, "good.torrent", GOOD)
    old = torrent_file(tmp_path, "old.torrent", PRESENT)
    missing = str(tmp_path / "missing.torrent")
    code, out, err = btctl("add", good, missing, old)
    assert code == ctl.EXIT_BAD_INPUT == 6
    assert out.splitlines() == [f"added {HASH_C} new", f"already present {HASH_A} debian-12.iso"]
    assert err == f"btctl: cannot read {missing}: No such file or directory\n"
    ((method, params),) = daemon.calls()  # the readable ones, in ONE call
    assert method == "torrent.add"
    assert [base64.b64decode(t["metainfo"]) for t in params["torrents"]] == [GOOD, PRESENT]


def test_add_refused_torrent_exits_1_and_worst_code_wins(btctl, tmp_path) -> None:
    bad = torrent_file(tmp_path, "bad.torrent", BAD)
    good = torrent_file(tmp_path, "good.torrent", GOOD)
    code, out, err = btctl("add", bad, good)
    assert code == ctl.EXIT_REMOTE_ERROR == 1 and out == f"added {HASH_C} new\n"
    assert err == f"btctl: {bad}: invalid torrent: not bencoded (error {INVALID_TORRENT})\n"
    code, _, _ = btctl("add", bad, str(tmp_path), good)  # a directory cannot be read
    assert code == 6


def test_add_many_files_and_magnets_in_one_call(btctl, daemon, tmp_path) -> None:
    good = torrent_file(tmp_path, "good.torrent", GOOD)
    bad = torrent_file(tmp_path, "bad.torrent", BAD)
    magnet = "magnet:?xt=urn:btih:" + "c" * 40
    code, out, err = btctl("add", "--paused", good, bad, magnet, good)
    assert code == ctl.EXIT_REMOTE_ERROR
    assert out.splitlines() == [
        f"added {HASH_C} new",
        "added " + "c" * 40 + " m",
        f"added {HASH_C} new",
    ]
    assert err == f"btctl: {bad}: invalid torrent: not bencoded (error {INVALID_TORRENT})\n"
    ((method, params),) = daemon.calls()
    items = params["torrents"]
    assert (method, len(items)) == ("torrent.add", 4)
    assert items[2] == {"magnet": magnet, "paused": True}
    assert all(item["paused"] is True for item in items)


def test_add_many_json_keeps_the_single_form_shapes(btctl, daemon, tmp_path) -> None:
    good = torrent_file(tmp_path, "good.torrent", GOOD)
    bad = torrent_file(tmp_path, "bad.torrent", BAD)
    code, out, _ = btctl("--json", "add", good, bad, str(tmp_path / "missing"))
    assert code == ctl.EXIT_BAD_INPUT
    first, second, third = json.loads(out)
    assert first == {"info_hash": HASH_C, "name": "new", "added": True}
    assert second == {"file": bad, "error": {"code": INVALID_TORRENT,
        "message": "invalid torrent: not bencoded", "data": {"field": "metainfo"}, "exit": 1}}  # fmt: skip
    assert third["error"]["exit"] == ctl.EXIT_BAD_INPUT
    assert json.loads(btctl("--json", "add", good)[1]) == [first]  # one file: the same shape


def test_add_many_to_a_daemon_without_batches_adds_one_by_one(btctl, daemon, tmp_path) -> None:
    daemon.batch_adds = False
    good = torrent_file(tmp_path, "good.torrent", GOOD)
    old = torrent_file(tmp_path, "old.torrent", PRESENT)
    code, out, _ = btctl("add", good, old)
    assert (code, out.splitlines()) == (
        0,
        [f"added {HASH_C} new", f"already present {HASH_A} debian-12.iso"],
    )
    assert [sorted(p) for _, p in daemon.calls()] == [
        ["torrents"],
        ["metainfo", "paused"],
        ["metainfo", "paused"],
    ]


def test_add_many_is_split_past_the_frame(btctl, daemon, tmp_path, monkeypatch) -> None:
    from btd.ctl import add as ctl_add

    monkeypatch.setattr(ctl_add, "BATCH_ITEMS", 2)
    files = [torrent_file(tmp_path, f"g{n}.torrent", GOOD) for n in range(5)]
    code, out, _ = btctl("add", *files)
    assert code == 0 and out.count("added") == 5
    assert [len(p["torrents"]) for _, p in daemon.calls()] == [2, 2, 1]


def test_add_json_lists_replies_and_errors(btctl, tmp_path) -> None:
    bad = torrent_file(tmp_path, "bad.torrent", BAD)
    empty = torrent_file(tmp_path, "empty.torrent", b"")
    good = torrent_file(tmp_path, "good.torrent", GOOD)
    code, out, err = btctl("add", "--json", good, bad, empty)
    assert code == 6 and err.count("btctl: ") == 2
    assert json.loads(out) == [
        {"info_hash": HASH_C, "name": "new", "added": True},
        {"file": bad, "error": {"code": INVALID_TORRENT, "message": "invalid torrent: not "
         "bencoded", "data": {"field": "metainfo"}, "exit": 1}},
        {"file": empty, "error": {"code": None, "message": f"{empty}: empty, not a .torrent",
         "data": None, "exit": 6}},
    ]  # fmt: skip


def test_add_to_missing_daemon_exits_3(tmp_path, capsys) -> None:
    good = torrent_file(tmp_path, "good.torrent", GOOD)
    code = ctl.main(["--socket", str(tmp_path / "none.sock"), "add", good])
    assert code == ctl.EXIT_UNREACHABLE == 3
    assert "none.sock" in capsys.readouterr().err


# -- list, info -------------------------------------------------------------------------------


def test_list_human(btctl, daemon) -> None:
    code, out, err = btctl("list")
    assert (code, err) == (0, "")
    table = rows(out)
    assert table[0] == ["HASH", "NAME", "STATE", "DONE", "SIZE", "DOWN", "UP", "PEERS", "ETA",
                        "RATIO"]  # fmt: skip
    assert table[1] == [HASH_A[:8], "debian-12.iso", "downloading", "50.0%", "3.0 MiB",
                        "1.5 MiB/s", "2.0 KiB/s", "7", "1h 02m 03s", "0.33"]  # fmt: skip
    name = table[2][1]
    assert len(name) == NAME_WIDTH and name.endswith("…") and "\x1b" not in out
    assert table[2][2:] == ["seeding", "100.0%", "3.0 MiB", "0 B/s", "2.0 KiB/s", "7", "-",
                            "2.50"]  # fmt: skip
    # the table's fields only (the daemon builds and sends no more); --json: every field
    assert daemon.calls() == [("torrent.list", {"fields": list(LIST_FIELDS), "format": "table"})]
    assert btctl("--json", "list")[0] == 0
    assert daemon.calls()[-1] == ("torrent.list", None)


def test_list_json_and_state_filter(btctl, daemon) -> None:
    code, out, _ = btctl("list", "--json")
    assert code == 0 and json.loads(out) == list(TORRENTS.values())
    code, out, _ = btctl("list", "--state", "seeding", "--json")
    assert code == 0 and [t["info_hash"] for t in json.loads(out)] == [HASH_B]
    assert daemon.calls()[-1] == ("torrent.list", {"state": "seeding"})
    code, _, err = btctl("list", "--state", "sleeping")
    assert code == 1 and "state: must be one of" in err


def test_list_empty(btctl, monkeypatch) -> None:
    assert btctl("list", "--state", "paused") == (0, "", "")  # piped: nothing at all
    code, out, _ = btctl("--json", "list", "--state", "paused")
    assert code == 0 and json.loads(out) == []
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert btctl("list", "--state", "paused") == (0, "no torrents\n", "")


def test_info_human(btctl, daemon) -> None:
    code, out, err = btctl("info", "3f9a")
    assert (code, err) == (0, "")
    assert daemon.calls() == [
        ("torrent.get", {"info_hash": "3f9a"}),
        ("torrent.peers", {"info_hash": HASH_A}),
    ]
    head, pieces, files, peers, trackers = out.split("\n\n")
    assert pieces.startswith("pieces: ") and len(pieces) > len("pieces: ")
    assert peers.startswith(f"peers ({len(PEERS)}):")
    assert field(head, "name") == "debian-12.iso" and field(head, "hash") == HASH_A
    assert field(head, "state") == "downloading" and field(head, "progress") == "50.0%"
    assert field(head, "size") == "3.0 MiB (1.5 MiB left)"
    assert field(head, "downloaded") == "1.5 MiB" and field(head, "uploaded") == "512.0 KiB"
    assert field(head, "ratio") == "0.33" and field(head, "down rate") == "1.5 MiB/s"
    assert field(head, "up rate") == "2.0 KiB/s" and field(head, "peers") == "7 (2 seeds)"
    assert field(head, "eta") == "1h 02m 03s" and field(head, "save path") == "/srv/dl"
    assert field(head, "strategy") == "rarest-first" and field(head, "error") == "-"
    assert field(head, "pieces") == "6/12 of 256.0 KiB"
    assert field(head, "comment") == "made for tests" and "created by" not in head
    assert field(head, "wasted") == "16.0 KiB" and field(head, "banned") == "127.0.0.7:1"
    assert field(head, "disconnects") == "left 2"  # only the reasons that happened
    assert rows(files) == [["files (2):"], ["#", "SIZE", "DONE", "WANTED", "PRIORITY", "PATH"],
                           ["0", "1.0 MiB", "100.0%", "yes", "high", "dir/a.bin"],
                           ["1", "2.0 MiB", "0.0%", "no", "normal", "dir/b.bin"]]  # fmt: skip
    table = rows(trackers)
    assert table[0] == ["trackers (2):"] and table[1][:3] == ["TIER", "URL", "STATUS"]
    assert table[2] == ["0", TRACKERS[0]["url"], "working", "29m 55s", "-"]
    assert table[3] == ["1", TRACKERS[1]["url"], "error", "-", "connection refused"]


def test_info_json_is_raw(btctl) -> None:
    code, out, _ = btctl("info", "--json", HASH_B)
    assert code == 0 and json.loads(out) == {
        **TORRENTS[HASH_B], "files": FILES, "trackers": TRACKERS, "piece_map": "fff0",
        "sources": {"127.0.0.1:6881": 2**20}, "banned": [], "wasted": 16384,
        "comment": "made for tests", "created_by": None, "peer_list": [],
        "disconnects": NO_DISCONNECTS,
    }  # fmt: skip
    code, out, _ = btctl("info", HASH_B)
    assert field(out.split("\n\n")[0], "disconnects") == "none"


@pytest.mark.parametrize(("prefix", "message"), [("beef", "no torrent"), ("3f9", "matches 2")])
def test_unknown_or_ambiguous_hash_exits_4(btctl, prefix: str, message: str) -> None:
    for argv in (["info", prefix], ["peers", prefix], ["set", prefix, "strategy=sequential"]):
        code, out, err = btctl(*argv)
        assert (code, out) == (ctl.EXIT_NOT_FOUND, "") and message in err


# -- pause, resume, verify, rm ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "method", "verb"),
    [("pause", "torrent.pause", "paused"), ("resume", "torrent.resume", "resumed"),
     ("verify", "torrent.verify", "verifying")],
)  # fmt: skip
def test_per_hash_commands(btctl, daemon, name: str, method: str, verb: str) -> None:
    code, out, err = btctl(name, "3f9a", "3F9B")
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"{verb} {HASH_A}", f"{verb} {HASH_B}"]
    assert daemon.calls() == [(method, {"info_hash": "3f9a"}), (method, {"info_hash": "3F9B"})]
    code, out, _ = btctl(name, "--json", "3f9a")
    assert code == 0 and [r["info_hash"] for r in json.loads(out)] == [HASH_A]


def test_per_hash_goes_on_after_unknown_hash(btctl) -> None:
    code, out, err = btctl("pause", "beef", "3f9b")
    assert code == 4 and out == f"paused {HASH_B}\n"
    assert err.startswith("btctl: beef: no torrent matches 'beef' (error -32001)")
    code, out, _ = btctl("--json", "pause", "beef", "3f9b", "3f9")
    assert code == 4
    replies = json.loads(out)
    assert replies[0] == {"info_hash": "beef", "error": {
        "code": NOT_FOUND, "message": "no torrent matches 'beef'",
        "data": {"field": "info_hash"}, "exit": 4}}  # fmt: skip
    assert replies[1] == {"info_hash": HASH_B, "state": "paused"}
    assert replies[2]["error"]["code"] == AMBIGUOUS


def test_rm(btctl, daemon) -> None:
    code, out, _ = btctl("rm", "3f9a")
    assert (code, out) == (0, f"removed {HASH_A}\n")
    assert daemon.calls()[-1] == ("torrent.remove", {"info_hash": "3f9a", "delete_data": False})
    code, out, _ = btctl("rm", "--delete-data", "3f9a", "3f9b")
    assert code == 0 and out.splitlines() == [
        f"removed {HASH_A} (data deleted)", f"removed {HASH_B} (data deleted)"]  # fmt: skip
    assert daemon.calls()[-1][1]["delete_data"] is True
    code, out, _ = btctl("--json", "rm", "3f9a")
    assert json.loads(out) == [{"info_hash": HASH_A, "removed": True, "deleted_data": False}]


# -- peers, files, trackers -----------------------------------------------------------------


def test_peers(btctl) -> None:
    code, out, _ = btctl("peers", "3f9a")
    assert code == 0 and rows(out) == [
        ["ADDRESS", "CLIENT", "DONE", "DOWN", "UP", "FLAGS"],
        ["127.0.0.1:6881", "LT2090", "100.0%", "1.0 MiB/s", "0 B/s", "I..c."],
        ["[::1]:51413", "TR3000", "25.0%", "0 B/s", "512 B/s", ".Ci.S"],
    ]  # fmt: skip
    assert btctl("peers", "3f9b") == (0, "no peers\n", "")
    code, out, _ = btctl("peers", "--json", "3f9a")
    assert code == 0 and json.loads(out) == PEERS


def test_files_and_trackers(btctl, daemon) -> None:
    code, out, _ = btctl("files", "3f9a")
    assert code == 0 and rows(out)[1] == ["0", "1.0 MiB", "100.0%", "yes", "high", "dir/a.bin"]
    code, out, _ = btctl("files", "--json", "3f9a")
    assert json.loads(out) == FILES
    code, out, _ = btctl("trackers", "3f9a")
    assert code == 0 and rows(out)[0] == ["TIER", "URL", "STATUS", "NEXT", "LAST ERROR"]
    assert rows(out)[2][-1] == "connection refused"
    assert btctl("trackers", "3f9b") == (0, "no trackers\n", "")
    code, out, _ = btctl("trackers", "--json", "3f9a")
    assert json.loads(out) == TRACKERS
    assert ("torrent.trackers", {"info_hash": "3f9a"}) in daemon.calls()


# -- set, add-peer, stats, status -------------------------------------------------------------


def test_set(btctl, daemon) -> None:
    code, out, _ = btctl("set", "3f9a", "strategy=sequential")
    assert (code, out) == (0, f"{HASH_A} strategy=sequential\n")
    assert daemon.calls() == [("torrent.set", {"info_hash": "3f9a", "strategy": "sequential"})]
    code, out, _ = btctl("--json", "set", "3f9a", "strategy=rarest-first")
    assert json.loads(out) == {"info_hash": HASH_A, "strategy": "rarest-first"}
    code, _, err = btctl("set", "3f9a", "strategy=nope")
    assert code == 1 and "no piece strategy" in err


def test_set_any_key_values_parsed_as_json(btctl, daemon) -> None:
    code, out, _ = btctl("set", "3f9a", "ratio_limit=2.0", "seeding_time_limit=null",
                         "force_start=true", "strategy=sequential")  # fmt: skip
    assert code == 0
    assert daemon.calls() == [("torrent.set", {"info_hash": "3f9a", "ratio_limit": 2.0,
        "seeding_time_limit": None, "force_start": True, "strategy": "sequential"})]  # fmt: skip
    assert out == f"{HASH_A} ratio_limit=2.0 seeding_time_limit=null force_start=true " \
        "strategy=sequential\n"  # fmt: skip
    code, _, err = btctl("set", "3f9a", "speed=9")  # the daemon refuses unknown keys
    assert code == 1 and "unknown parameter" in err


def test_queue(btctl, daemon) -> None:
    code, out, _ = btctl("queue", "3f9a", "top")
    assert (code, out) == (0, f"{HASH_A} queue position 0 (queued)\n")
    assert daemon.calls() == [("torrent.queue", {"info_hash": "3f9a", "move": "top"})]
    code, out, _ = btctl("--json", "queue", "3f9a", "down")
    assert json.loads(out) == {"info_hash": HASH_A, "queue_position": 1, "state": "queued"}
    code, _, err = btctl("queue", "3f9a", "sideways")
    assert code == ctl.EXIT_USAGE and "invalid choice" in err


@pytest.mark.parametrize(
    "settings", [["strategy"], ["=x"], ["strategy="],
                 ["strategy=a", "strategy=b"]],
)  # fmt: skip
def test_set_bad_settings_exit_2(btctl, daemon, settings: list[str]) -> None:
    code, out, err = btctl("set", "3f9a", *settings)
    assert (code, out) == (ctl.EXIT_USAGE, "") and err.startswith("btctl: set: ")
    assert daemon.calls() == []


def test_reannounce(btctl, daemon) -> None:
    code, out, err = btctl("reannounce", "3f9a", "3f9b", "ffff")
    assert code == 4 and "ffff" in err
    assert out.splitlines() == [
        f"{HASH_A}: announcing now",
        f"{HASH_B}: announcing in 212 s, when the tracker's min interval ends",
    ]
    assert [c for c in daemon.calls() if c[0] == "torrent.reannounce"] == [
        ("torrent.reannounce", {"info_hash": h}) for h in ("3f9a", "3f9b", "ffff")
    ]
    code, out, _ = btctl("--json", "reannounce", "3f9a")
    assert json.loads(out) == [
        {"info_hash": HASH_A, "announce_in": 0.0, "message": "announcing now"}
    ]


def test_add_peer(btctl, daemon) -> None:
    code, out, _ = btctl("add-peer", "3f9a", "127.0.0.1:6881")
    # "added" is also the answer for a known peer, re-armed and dialled at once
    assert code == 0 and out.startswith(f"dialling peer 127.0.0.1:6881 for {HASH_A} (")
    assert "already known" not in out
    assert daemon.calls()[-1] == (
        "torrent.add_peer", {"info_hash": "3f9a", "address": "127.0.0.1", "port": 6881}
    )  # fmt: skip
    code, out, _ = btctl("add-peer", "3f9a", "[::1]:51413")
    assert code == 0 and out.startswith(f"dialling peer [::1]:51413 for {HASH_A} (")
    assert daemon.calls()[-1][1]["address"] == "::1"
    code, out, _ = btctl("add-peer", "3f9a", "127.0.0.9:1")
    assert code == 0 and out.startswith(f"peer 127.0.0.9:1 not dialled for {HASH_A} (connected")
    code, out, _ = btctl("--json", "add-peer", "3f9a", "127.0.0.1:6881")
    assert json.loads(out) == {"info_hash": HASH_A, "added": True}


@pytest.mark.parametrize(
    "peer", ["::1:6881", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "localhost:80",
             "[::1]6881", "[::1]:x", ":80"],
)  # fmt: skip
def test_add_peer_bad_address_exits_2(btctl, daemon, peer: str) -> None:
    code, out, err = btctl("add-peer", "3f9a", peer)
    assert (code, out) == (2, "") and err.startswith("btctl: add-peer: ")
    assert daemon.calls() == []


def test_stats(btctl, monkeypatch) -> None:
    code, out, _ = btctl("stats")
    assert code == 0
    assert field(out, "torrents") == "2 (1 downloading, 1 seeding)"
    assert field(out, "down rate") == "1.5 MiB/s" and field(out, "downloaded") == "10.0 GiB"
    assert field(out, "uptime") == "1d 2h 03m" and field(out, "listen port") == "6881"
    assert field(out, "disconnects") == "closed_by_peer 3, timeout 1, connect_failed 12"
    monkeypatch.setitem(
        METHODS, "session.stats", lambda p: {**STATS, "disconnects": NO_DISCONNECTS}
    )
    assert field(btctl("stats")[1], "disconnects") == "none"
    monkeypatch.setitem(METHODS, "session.stats", lambda p: STATS)
    code, out, _ = btctl("stats", "--json")
    assert json.loads(out) == STATS


def test_status_shows_config_file(btctl, monkeypatch) -> None:
    code, out, _ = btctl("status")
    assert code == 0 and field(out, "config") == "/etc/btd/btd.yaml"
    assert "config_path" not in out
    monkeypatch.setitem(METHODS, "session.info", lambda p: {**INFO, "config_path": None})
    assert field(btctl("status")[1], "config") == "(built-in defaults)"
    older = {k: v for k, v in INFO.items() if k != "config_path"} | {"config": "/etc/b.yaml"}
    monkeypatch.setitem(METHODS, "session.info", lambda p: older)
    assert field(btctl("status")[1], "config") == "/etc/b.yaml"
    both = {**INFO, "config": "/old.yaml"}  # config_path wins, one line only
    monkeypatch.setitem(METHODS, "session.info", lambda p: both)
    out = btctl("status")[1]
    assert field(out, "config") == "/etc/btd/btd.yaml" and out.count("config:") == 1


def test_add_dir_on_a_present_torrent_says_it_stays(btctl, tmp_path: Path) -> None:
    at = torrent_file(tmp_path, "at.torrent", PRESENT_AT)
    code, out, err = btctl("add", "--dir", str(tmp_path / "x"), at)
    assert code == 0 and out == f"already present {HASH_A} debian-12.iso\n"
    assert err == (
        f"btctl: {HASH_A}: already added; it stays in /srv/dl "
        f"(--dir {tmp_path / 'x'} was not applied)\n"
    )
    code, out, err = btctl("add", "--dir", "/srv/dl", at)  # the same folder: nothing to say
    assert code == 0 and err == ""
    code, out, err = btctl("add", at)  # no --dir: nothing to say
    assert code == 0 and err == ""
    old = torrent_file(tmp_path, "old.torrent", PRESENT)  # a reply without save_path
    code, out, err = btctl("add", "--dir", str(tmp_path), old)
    assert code == 0 and "already added; it stays where it is" in err and "not applied" in err
    code, out, err = btctl("--json", "add", "--dir", str(tmp_path / "x"), at)
    assert code == 0 and err == ""
    assert json.loads(out) == [
        {"info_hash": HASH_A, "name": "debian-12.iso", "added": False, "save_path": "/srv/dl"}
    ]


def test_state_detail_in_list_and_info(btctl, monkeypatch) -> None:
    detail = "no trackers and the DHT is disabled"
    magnet = summary(HASH_A, "magnet 3f9a", state="metadata", state_detail=detail, pieces=None)
    monkeypatch.setitem(TORRENTS, HASH_A, magnet)
    monkeypatch.setitem(TORRENTS, HASH_B, {**TORRENTS[HASH_B], "state_detail": None})
    code, out, _ = btctl("list")
    table, _, notes = out.partition("\n\n")
    lines = table.splitlines()
    assert code == 0 and len(lines) == 3
    row = next(line for line in lines if line.startswith(HASH_A[:8]))
    assert row.index("metadata!") == lines[0].index("STATE")  # in the STATE column
    assert "seeding!" not in out  # a null detail marks nothing
    assert notes == f"{HASH_A[:8]} metadata!: {detail}\n"
    code, out, _ = btctl("info", HASH_A[:6])
    assert code == 0 and field(out, "state detail") == detail
    code, out, _ = btctl("info", HASH_B[:6])
    assert code == 0 and "state detail" not in out
    code, out, _ = btctl("--json", "list")
    assert json.loads(out)[0]["state_detail"] == detail


def test_list_without_details_is_unchanged(btctl) -> None:
    code, out, _ = btctl("list")
    assert code == 0 and "\n\n" not in out and "!" not in out


def test_config_prints_section_key_value_lines(btctl, monkeypatch) -> None:
    code, out, _ = btctl("config")
    assert code == 0
    assert out.splitlines() == [
        "source: /etc/btd/btd.yaml",
        "daemon.state_dir: /var/lib/btd",
        "daemon.log_level: info",
        "session.download_dir: /srv/dl",
        "session.listen_port: 6881",
        "session.dht: false",
        'plugins.enabled: ["rarest_first", "udp_tracker"]',
        "plugins.notify_command.argv: []",
        "plugins.watch_dir.path: /srv/in?[31m",
        "plugins.watch_dir.interval: 2.5",
        "limits: {}",
    ]
    code, out, _ = btctl("--json", "config")
    assert code == 0 and json.loads(out) == CONFIG
    monkeypatch.setitem(METHODS, "session.config", lambda p: {**CONFIG, "source": None})
    assert btctl("config")[1].splitlines()[0] == "source: (built-in defaults)"


def test_version_prints_btd_version_and_exits_0(capsys) -> None:
    from btd.core.version import __version__

    code, out, err = run_btctl(capsys, "--version")
    assert code == 0 and out == f"btctl (btd) {__version__}\n" and err == ""


# -- formatting, docs, import weight ------------------------------------------------------------


def test_rate_and_progress_formatters() -> None:
    assert [format_rate(n) for n in (0, 1536, None)] == ["0 B/s", "1.5 KiB/s", "-"]
    assert [format_progress(p) for p in (0, 0.12345, 0.9999, 1, 0.5, None)] == [
        "0.0%", "12.3%", "99.9%", "100.0%", "50.0%", "-",
    ]  # fmt: skip


def test_every_torrent_command_registered_and_documented() -> None:
    assert set(TORRENT_COMMANDS) <= set(COMMANDS)
    text = (REPO / "docs" / "CLI.md").read_text()
    for name in TORRENT_COMMANDS:
        assert f"### `btctl {name}" in text and f"$ btctl {name}" in text, name
    assert re.search(r"^\| 6 +\| bad input file", text, re.M)


def test_torrent_commands_import_nothing_heavy(daemon: FakeDaemon) -> None:
    done = btctl_in_new_python("--socket", str(daemon.path), "--json", "list")
    assert json.loads(done.stderr.strip().splitlines()[-1]) == {"code": 0, "heavy": []}
    assert len(json.loads(done.stdout)) == 2


def test_json_list_imports_only_what_it_needs(daemon: FakeDaemon) -> None:
    """No rich, Twisted or PyYAML, and of btctl only the parser, helpers and `list`'s module."""
    done = btctl_in_new_python("--socket", str(daemon.path), "--json", "list", btd=True)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0 and report["heavy"] == []
    ctl = {m for m in report["btd"] if m.startswith("btd.ctl.")}
    assert ctl == {"btd.ctl.main", "btd.ctl.base", "btd.ctl.parser", "btd.ctl.format",
                   "btd.ctl.torrent"}  # fmt: skip
    assert "btd.core.version" not in report["btd"]  # importlib.metadata: only for --version


# -- a real daemon --------------------------------------------------------------------------------


@pytest.mark.integration
def test_btctl_against_real_btd(tmp_path: Path, btd_factory) -> None:
    from btd.core.bencode import encode

    data = b"btctl end-to-end test data\n" * 40
    info = {"name": "hello.txt", "length": len(data), "piece length": 16384,
            "pieces": hashlib.sha1(data).digest()}  # fmt: skip
    info_hash = hashlib.sha1(encode(info)).hexdigest()
    torrent = tmp_path / "hello.torrent"
    torrent.write_bytes(encode({"info": info}))
    btd = btd_factory()
    btd.downloads.mkdir(parents=True)
    (btd.downloads / "hello.txt").write_bytes(data)  # checked, then seeded
    btd.start()

    def ok(*args: str) -> str:
        done = btd.btctl(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr, btd.log_text())
        return done.stdout

    with btd.client() as events:
        events.call("events.subscribe")
        assert ok("add", str(torrent)) == f"added {info_hash} hello.txt\n"
        btd.wait_event(events, "started", info_hash)
    assert ok("add", str(torrent)) == f"already present {info_hash} hello.txt\n"
    table = rows(ok("list"))
    assert table[1][:4] == [info_hash[:8], "hello.txt", "seeding", "100.0%"]
    out = ok("info", info_hash[:6])
    assert field(out, "state") == "seeding" and field(out, "hash") == info_hash
    assert field(out, "save path") == str(btd.downloads)
    assert ok("pause", info_hash[:6]) == f"paused {info_hash}\n"
    assert [t["state"] for t in json.loads(ok("list", "--json"))] == ["paused"]
    assert ok("resume", info_hash) == f"resumed {info_hash}\n"
    assert json.loads(ok("info", "--json", info_hash))["state"] == "seeding"
    missing = btd.btctl("info", "ffff")
    assert missing.returncode == 4 and "ffff" in missing.stderr
    assert ok("rm", info_hash[:6]) == f"removed {info_hash}\n"
    assert ok("list") == ""
    assert (btd.downloads / "hello.txt").read_bytes() == data  # rm kept the data
    assert btd.stop() == 0


def test_info_shows_queue_position_and_seeding_goals() -> None:
    from btd.ctl.torrent import human_info, seeding_goals

    t = {"ratio_limit": 2.0, "seeding_time_limit": -1, "idle_seeding_limit": None}
    assert seeding_goals(t) == "ratio 2, time none, idle global"
    text = human_info({**t, "state": "queued", "queue_position": 3, "force_start": True})
    lines = text.splitlines()
    assert "queue position:  3" in lines and "force start:     yes" in lines
    assert "seeding goals:   ratio 2, time none, idle global" in lines

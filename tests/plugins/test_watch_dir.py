"""watch_dir: when a file counts as complete, what happens to it after, bad files, .magnet
files, settings.

The session is a fake with the Session's narrow interface (``add``, ``add_magnet``,
``run_blocking`` inline, ``reactor`` = a Clock), so scans happen exactly when the test
advances the clock.
The files are real (tmp_path).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent

from btd.core.bencode import encode
from btd.core.errors import ConfigError, StorageError
from btd.core.magnet import parse_magnet
from btd.core.metainfo import parse_metainfo
from btd.core.plugin import make_plugin_manager
from btd.plugins import watch_dir
from btd.plugins.watch_dir import RETRY_AFTER, FolderSpec, FolderWatcher, parse_settings


def torrent_bytes(name: str = "file.bin") -> bytes:
    info = {b"name": name.encode(), b"piece length": 16384, b"length": 10, b"pieces": b"\1" * 20}
    return encode({b"announce": b"http://127.0.0.1:1/announce", b"info": info})


class FakeSession:
    """Session.add's contract: MetainfoError/ValueError at once, StorageError in the Deferred."""

    def __init__(self) -> None:
        self.reactor = Clock()
        self.calls: list[dict[str, Any]] = []
        self.present: set[str] = set()
        self.fail: Exception | None = None
        self.stopping = False

    def run_blocking(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        return defer.maybeDeferred(fn, *args)

    def add(self, data: bytes, *, meta=None, save_path=None, paused=False, strategy=None):
        assert meta is not None and meta == parse_metainfo(data)  # parsed on the pool already
        if strategy == "no-such-strategy":
            raise ValueError("unknown piece strategy 'no-such-strategy'")
        self.calls.append(
            {"name": meta.name, "save_path": save_path, "paused": paused, "strategy": strategy}
        )
        if self.fail is not None:
            return defer.fail(self.fail)
        added = meta.hex not in self.present
        self.present.add(meta.hex)
        return defer.succeed({"info_hash": meta.hex, "name": meta.name, "added": added})

    def add_magnet(self, uri: str, *, save_path=None, paused=False, strategy=None):
        magnet = parse_magnet(uri)  # MetainfoError: nothing is added
        if strategy == "no-such-strategy":
            raise ValueError("unknown piece strategy 'no-such-strategy'")
        self.calls.append(
            {"magnet": uri, "save_path": save_path, "paused": paused, "strategy": strategy}
        )
        if self.fail is not None:
            return defer.fail(self.fail)
        added = magnet.hex not in self.present
        self.present.add(magnet.hex)
        name = magnet.name or magnet.hex
        return defer.succeed({"info_hash": magnet.hex, "name": name, "added": added})


class Harness:
    def __init__(self, folder: Path, **options: Any) -> None:
        self.folder = folder
        self.session = FakeSession()
        self.logged: list[dict[str, Any]] = []
        spec = FolderSpec(path=folder, **options)
        self.watcher = FolderWatcher(
            spec, self.session, inotify=False, log=Logger(observer=self.logged.append)
        )

    @property
    def clock(self) -> Clock:
        return self.session.reactor

    def start(self) -> Harness:
        self.watcher.start()
        return self

    def scan(self) -> None:
        self.clock.advance(self.watcher.spec.interval)

    def log_text(self) -> str:
        return "\n".join(formatEvent(e) for e in self.logged)

    def names(self, sub: str = "") -> list[str]:
        d = self.folder / sub
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "watch"
    path.mkdir()
    return path


# -- when a file is complete ------------------------------------------------------------------
def test_growing_file_is_taken_only_after_two_equal_scans(folder: Path) -> None:
    data = torrent_bytes()
    (folder / "a.torrent").write_bytes(data[:20])
    h = Harness(folder).start()  # scan 1 sees 20 bytes
    with open(folder / "a.torrent", "ab") as f:
        f.write(data[20:40])
    h.scan()  # scan 2: 40 bytes, changed
    assert h.session.calls == [] and h.names() == ["a.torrent"]
    with open(folder / "a.torrent", "ab") as f:
        f.write(data[40:])
    h.scan()  # scan 3: complete but changed since scan 2
    assert h.session.calls == []
    h.scan()  # scan 4: same as scan 3 -> taken
    assert [c["name"] for c in h.session.calls] == ["file.bin"]
    assert h.names() == ["added"] and h.names("added") == ["a.torrent"]


def test_file_present_at_start_is_taken_on_the_second_scan(folder: Path) -> None:
    (folder / "a.torrent").write_bytes(torrent_bytes())
    h = Harness(folder).start()
    assert h.session.calls == []
    h.scan()
    assert len(h.session.calls) == 1


def test_inotify_close_write_takes_at_once(folder: Path) -> None:
    h = Harness(folder).start()
    (folder / "a.torrent").write_bytes(torrent_bytes())
    h.watcher.notice("a.torrent")  # what IN_CLOSE_WRITE / IN_MOVED_TO call
    assert len(h.session.calls) == 1 and h.names("added") == ["a.torrent"]
    h.scan()
    h.scan()
    assert len(h.session.calls) == 1  # not taken twice


def test_empty_hidden_and_other_files_are_left_alone(folder: Path, tmp_path: Path) -> None:
    (folder / "empty.torrent").write_bytes(b"")
    (folder / "empty.magnet").write_bytes(b"")
    (folder / ".partial.torrent").write_bytes(torrent_bytes("hidden"))
    (folder / ".x.magnet").write_text("magnet:?xt=urn:btih:" + "0" * 40)
    (folder / "notes.txt").write_text("hello")
    outside = tmp_path / "outside.torrent"
    outside.write_bytes(torrent_bytes("outside"))
    (folder / "link.torrent").symlink_to(outside)
    h = Harness(folder).start()
    h.scan()
    h.scan()
    h.watcher.notice("link.torrent")
    h.watcher.notice(".partial.torrent")
    h.watcher.notice(".x.magnet")
    assert h.session.calls == []
    assert h.names() == sorted(
        [
            ".partial.torrent",
            ".x.magnet",
            "empty.magnet",
            "empty.torrent",
            "link.torrent",
            "notes.txt",
        ]
    )
    assert "link.torrent is a symlink" in h.log_text()


# -- after adding ---------------------------------------------------------------------------------
def test_delete_on_added(folder: Path) -> None:
    (folder / "a.torrent").write_bytes(torrent_bytes())
    h = Harness(folder, on_added="delete").start()
    h.scan()
    assert len(h.session.calls) == 1
    assert h.names() == []


def test_name_clash_in_added_gets_a_suffix(folder: Path) -> None:
    (folder / "added").mkdir()
    (folder / "added" / "a.torrent").write_bytes(b"older")
    (folder / "added" / "a.1.torrent").write_bytes(b"older still")
    (folder / "a.torrent").write_bytes(torrent_bytes())
    h = Harness(folder).start()
    h.scan()
    assert h.names("added") == ["a.1.torrent", "a.2.torrent", "a.torrent"]
    assert (folder / "added" / "a.torrent").read_bytes() == b"older"
    assert (folder / "added" / "a.2.torrent").read_bytes() == torrent_bytes()


def test_already_present_torrent_is_moved_too(folder: Path) -> None:
    h = Harness(folder)
    h.session.present.add(parse_metainfo(torrent_bytes()).hex)
    (folder / "again.torrent").write_bytes(torrent_bytes())
    h.start().scan()
    assert h.names() == ["added"] and h.names("added") == ["again.torrent"]
    assert "already present" in h.log_text()


def test_per_folder_options_reach_session_add(folder: Path, tmp_path: Path) -> None:
    (folder / "a.torrent").write_bytes(torrent_bytes())
    h = Harness(folder, save_path=tmp_path / "movies", paused=True, strategy="sequential")
    h.start().scan()
    assert h.session.calls == [
        {
            "name": "file.bin",
            "save_path": str(tmp_path / "movies"),
            "paused": True,
            "strategy": "sequential",
        }
    ]


def test_default_options_leave_the_session_defaults(folder: Path) -> None:
    (folder / "b.torrent").write_bytes(torrent_bytes("b"))
    h = Harness(folder).start()
    h.scan()
    assert h.session.calls == [{"name": "b", "save_path": None, "paused": False, "strategy": None}]


# -- failures ---------------------------------------------------------------------------------------
def test_bad_file_becomes_invalid_with_the_reason_and_is_not_retried(folder: Path) -> None:
    (folder / "junk.torrent").write_bytes(b"this is not bencode")
    h = Harness(folder).start()
    h.scan()
    assert h.session.calls == [] and h.session.present == set()
    assert h.names() == ["junk.torrent.invalid", "junk.torrent.invalid.txt"]
    reason = (folder / "junk.torrent.invalid.txt").read_text()
    assert "not a valid .torrent" in reason
    assert "junk.torrent is unusable (not a valid torrent: not a valid .torrent" in h.log_text()
    h.scan()
    h.scan()
    assert h.names() == ["junk.torrent.invalid", "junk.torrent.invalid.txt"]


def test_second_bad_file_of_the_same_name_gets_a_free_invalid_name(folder: Path) -> None:
    (folder / "junk.torrent.invalid").write_bytes(b"earlier")
    (folder / "junk.torrent").write_bytes(b"d4:infoi1ee")
    Harness(folder).start().scan()
    assert "junk.torrent.1.invalid" in os.listdir(folder)
    assert (folder / "junk.torrent.invalid").read_bytes() == b"earlier"


def test_too_large_file_is_invalid(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_dir, "MAX_TORRENT_SIZE", 100)
    (folder / "big.torrent").write_bytes(torrent_bytes() + b"x" * 200)
    h = Harness(folder).start()
    h.scan()
    assert h.session.calls == []
    assert "too large" in h.log_text() and (folder / "big.torrent.invalid").exists()


def test_storage_error_leaves_the_file_for_a_later_retry(folder: Path) -> None:
    (folder / "a.torrent").write_bytes(torrent_bytes())
    h = Harness(folder)
    h.session.fail = StorageError("state directory full")
    h.start().scan()
    assert len(h.session.calls) == 1 and h.names() == ["a.torrent"]
    assert "state directory full" in h.log_text()
    h.scan()
    assert len(h.session.calls) == 1  # backing off
    h.session.fail = None
    h.clock.advance(RETRY_AFTER)
    assert len(h.session.calls) == 2 and h.names("added") == ["a.torrent"]


def test_unknown_strategy_leaves_the_file_until_it_changes(folder: Path) -> None:
    (folder / "a.torrent").write_bytes(torrent_bytes())
    h = Harness(folder, strategy="no-such-strategy").start()
    h.scan()
    h.scan()
    h.scan()
    assert h.names() == ["a.torrent"]
    assert h.log_text().count("unknown piece strategy") == 1


def test_missing_folder_is_created_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "watch"
    h = Harness(folder).start()
    assert folder.is_dir()
    assert "did not exist; created it" in h.log_text()


def test_unreadable_folder_is_logged_once_and_picked_up_again(folder: Path) -> None:
    h = Harness(folder).start()
    folder.rmdir()
    h.scan()
    h.scan()
    assert h.log_text().count("cannot read watch folder") == 1
    folder.mkdir()
    (folder / "a.torrent").write_bytes(torrent_bytes())
    h.scan()
    h.scan()
    assert len(h.session.calls) == 1 and "readable again" in h.log_text()


def test_stop_ends_scanning(folder: Path) -> None:
    h = Harness(folder).start()
    stopped = h.watcher.stop()
    assert stopped.called
    (folder / "a.torrent").write_bytes(torrent_bytes())
    h.scan()
    h.scan()
    assert h.session.calls == [] and not h.clock.getDelayedCalls()


# -- the hooks and the settings -------------------------------------------------------------------
def test_hooks_start_and_stop_a_watcher_per_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    host = make_plugin_manager({"watch_dir": {}})
    config = SimpleNamespace(
        plugins={"watch_dir": {"folders": [{"path": str(a)}, {"path": str(b), "interval": 5}]}}
    )
    host.configure(config)
    session = FakeSession()
    host.call("btd_session_started", session=session)
    assert a.is_dir() and b.is_dir()
    (b / "x.torrent").write_bytes(torrent_bytes())
    session.reactor.advance(5)
    assert session.calls == []  # seen once; the 2 s folder has been scanned twice meanwhile
    session.reactor.advance(5)
    assert len(session.calls) == 1
    [stopping] = host.call("btd_session_stopping", session=session)
    assert stopping.called and not session.reactor.getDelayedCalls()


def test_settings_are_parsed(tmp_path: Path) -> None:
    [spec] = parse_settings(
        {
            "folders": [
                {
                    "path": str(tmp_path),
                    "save_path": str(tmp_path / "out"),
                    "paused": True,
                    "strategy": "sequential",
                    "on_added": "delete",
                    "interval": 1,
                }
            ]
        }
    )
    assert spec == FolderSpec(tmp_path, tmp_path / "out", True, "sequential", "delete", 1.0)
    assert parse_settings({"folders": []}) == ()


@pytest.mark.parametrize(
    ("settings", "key", "text"),
    [
        ({}, "plugins.watch_dir.folders", "required"),
        ({"folders": "/srv/watch"}, "plugins.watch_dir.folders", "a list"),
        ({"folders": [], "extra": 1}, "plugins.watch_dir.extra", "unknown key"),
        ({"folders": ["/srv/watch"]}, "plugins.watch_dir.folders[0]", "mapping"),
        ({"folders": [{}]}, "plugins.watch_dir.folders[0].path", "required"),
        ({"folders": [{"path": "watch"}]}, "plugins.watch_dir.folders[0].path", "absolute"),
        (
            {"folders": [{"path": "/w", "bogus": 1}]},
            "plugins.watch_dir.folders[0].bogus",
            "unknown key",
        ),
        (
            {"folders": [{"path": "/w"}, {"path": "/v", "on_added": "keep"}]},
            "plugins.watch_dir.folders[1].on_added",
            "move or delete",
        ),
        (
            {"folders": [{"path": "/w", "save_path": "rel"}]},
            "plugins.watch_dir.folders[0].save_path",
            "absolute",
        ),
        (
            {"folders": [{"path": "/w", "paused": "yes"}]},
            "plugins.watch_dir.folders[0].paused",
            "true or false",
        ),
        (
            {"folders": [{"path": "/w", "strategy": 3}]},
            "plugins.watch_dir.folders[0].strategy",
            "strategy name",
        ),
        (
            {"folders": [{"path": "/w", "interval": 0}]},
            "plugins.watch_dir.folders[0].interval",
            "seconds",
        ),
        (
            {"folders": [{"path": "/w", "interval": True}]},
            "plugins.watch_dir.folders[0].interval",
            "seconds",
        ),
        (
            {"folders": [{"path": "/w"}, {"path": "/w/"}]},
            "plugins.watch_dir.folders[1].path",
            "same folder as folders[0]",
        ),
    ],
)
def test_bad_settings_name_their_key(settings: dict, key: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(settings)
    assert caught.value.key == key
    assert text in caught.value.reason


def test_configure_hook_refuses_bad_settings() -> None:
    host = make_plugin_manager({"watch_dir": {}})
    config = SimpleNamespace(plugins={"watch_dir": {"folders": [{"path": "relative"}]}})
    with pytest.raises(ConfigError, match=r"plugins\.watch_dir\.folders\[0\]\.path"):
        host.configure(config)


# -- .magnet files ----------------------------------------------------------------------------------
HASH = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
MAGNET = f"magnet:?xt=urn:btih:{HASH}&dn=debian.iso&tr=udp%3A%2F%2F127.0.0.1%3A6969"


def test_a_magnet_file_is_added_as_a_magnet_and_moved(folder: Path, tmp_path: Path) -> None:
    (folder / "debian.magnet").write_text(f"\n  {MAGNET}  \r\n\n")
    h = Harness(folder, save_path=tmp_path / "iso", paused=True, strategy="sequential").start()
    h.scan()
    assert h.session.calls == [
        {
            "magnet": MAGNET,
            "save_path": str(tmp_path / "iso"),
            "paused": True,
            "strategy": "sequential",
        }
    ]
    assert h.names() == ["added"] and h.names("added") == ["debian.magnet"]
    assert f"debian.magnet added as {HASH}" in h.log_text()


def test_a_magnet_file_with_default_options_and_odd_case(folder: Path) -> None:
    (folder / "X.Magnet").write_bytes(b"\xef\xbb\xbf" + MAGNET.encode())  # a BOM, as Notepad writes
    h = Harness(folder, on_added="delete").start()
    h.watcher.notice("X.Magnet")  # what IN_CLOSE_WRITE / IN_MOVED_TO call
    assert h.session.calls == [
        {"magnet": MAGNET, "save_path": None, "paused": False, "strategy": None}
    ]
    assert h.names() == []


def test_an_already_present_magnet_is_moved_too(folder: Path) -> None:
    h = Harness(folder)
    h.session.present.add(HASH)
    (folder / "again.magnet").write_text(MAGNET)
    (folder / "added").mkdir()
    (folder / "added" / "again.magnet").write_text("older")
    h.start().scan()
    assert h.names("added") == ["again.1.magnet", "again.magnet"]
    assert "already present" in h.log_text()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"magnet:?xt=urn:btih:1234", "not a valid magnet link: xt:"),
        (b"magnet:?dn=no-hash", "not a valid magnet link: xt: the magnet link has no"),
        (b"http://example.org/debian.torrent", "not a valid magnet link: not a magnet link"),
        (f"{MAGNET}\n{MAGNET}\n".encode(), "one link per .magnet file, found 2 lines"),
        (b"  \n\t\n", "one link per .magnet file, found no text"),
        (b"magnet:?xt=urn:btih:\xff\xfe", "not UTF-8 text"),
    ],
)
def test_a_bad_magnet_file_becomes_invalid_with_the_reason(
    folder: Path, content: bytes, reason: str
) -> None:
    (folder / "bad.magnet").write_bytes(content)
    h = Harness(folder).start()
    h.scan()
    assert h.session.calls == []
    assert h.names() == ["bad.magnet.invalid", "bad.magnet.invalid.txt"]
    assert reason in (folder / "bad.magnet.invalid.txt").read_text()
    assert "bad.magnet is unusable (" in h.log_text() and reason in h.log_text()
    h.scan()
    h.scan()
    assert h.names() == ["bad.magnet.invalid", "bad.magnet.invalid.txt"]


def test_a_huge_magnet_file_is_invalid(folder: Path) -> None:
    (folder / "huge.magnet").write_text(MAGNET + "&tr=udp://x" * 10_000)
    h = Harness(folder).start()
    h.scan()
    assert h.session.calls == [] and "too large" in h.log_text()
    assert (folder / "huge.magnet.invalid").exists()


def test_a_magnet_btd_fails_to_store_is_retried(folder: Path) -> None:
    (folder / "a.magnet").write_text(MAGNET)
    h = Harness(folder)
    h.session.fail = StorageError("state directory full")
    h.start().scan()
    assert len(h.session.calls) == 1 and h.names() == ["a.magnet"]
    h.session.fail = None
    h.clock.advance(RETRY_AFTER)
    assert len(h.session.calls) == 2 and h.names("added") == ["a.magnet"]


def test_a_magnet_with_an_unknown_strategy_is_left_in_place(folder: Path) -> None:
    (folder / "a.magnet").write_text(MAGNET)
    h = Harness(folder, strategy="no-such-strategy").start()
    h.scan()
    h.scan()
    assert h.names() == ["a.magnet"] and h.log_text().count("unknown piece strategy") == 1


def test_torrents_and_magnets_side_by_side(folder: Path) -> None:
    (folder / "a.torrent").write_bytes(torrent_bytes())
    (folder / "b.magnet").write_text(MAGNET)
    h = Harness(folder).start()
    h.scan()
    assert sorted(c.get("name", c.get("magnet")) for c in h.session.calls) == sorted(
        ["file.bin", MAGNET]
    )
    assert h.names("added") == ["a.torrent", "b.magnet"]

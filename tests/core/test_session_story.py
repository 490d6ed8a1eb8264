"""What a new user sees: the story in the log, refused save paths, and why a magnet waits.

Log lines are read with a twisted.logger observer; every Deferred has fired when a call
returns (the session harness runs on a MemoryReactorClock with ``run_blocking`` inline).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from session_harness import HashingVerifier, content, make_session, result, single
from torrent_harness import Swarm, requests_in
from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher

from btd.core.errors import StorageError
from btd.core.metainfo import parse_metainfo
from btd.core.rpc import errors as codes
from btd.core.rpc.errors import RpcError
from btd.core.rpc.torrent_methods import torrent_methods
from btd.core.session import Session
from btd.core.torrent_data import SavePathError

DATA = content(40_000, 1)
TORRENT = single("file.bin", DATA)
HEX = parse_metainfo(TORRENT).hex
SHORT = HEX[:8]
OTHER = single("other.bin", content(20_000, 2))


@pytest.fixture
def lines() -> Iterator[list[tuple[str, str]]]:
    """(level, text) of every log event at info or above."""
    got: list[tuple[str, str]] = []

    def observe(event: dict[str, Any]) -> None:
        level = event.get("log_level")
        if level is not None and level.name in ("info", "warn", "error", "critical"):
            got.append((level.name, formatEvent(event)))

    globalLogPublisher.addObserver(observe)
    yield got
    globalLogPublisher.removeObserver(observe)


def about(lines: list[tuple[str, str]], short: str = SHORT) -> list[tuple[str, str]]:
    return [(level, text) for level, text in lines if short in text]


def call(session: Session, method: str, **params: Any) -> Any:
    value = torrent_methods(session)[method](**params)
    return result(value) if isinstance(value, defer.Deferred) else value


# -- the story in the log ------------------------------------------------------------------------
def test_add_pause_resume_remove_are_one_info_line_each(
    tmp_path: Path, lines: list[tuple[str, str]]
) -> None:
    session = make_session(tmp_path)
    result(session.add(TORRENT, paused=True))
    t = session.find(HEX)
    result(t.resume())
    result(t.pause())
    result(session.remove(t, delete_data=True))
    assert about(lines) == [
        ("info", f'added {SHORT} "file.bin" (paused)'),
        ("info", f'resumed {SHORT} "file.bin"'),
        ("info", f'paused {SHORT} "file.bin"'),
        ("info", f'removed {SHORT} "file.bin" (data deleted)'),
    ]


def test_an_error_is_one_error_line(tmp_path: Path, lines: list[tuple[str, str]]) -> None:
    class FailingVerifier(HashingVerifier):
        def recheck(self, *args: Any, **kwargs: Any) -> Any:
            return defer.fail(StorageError("disk gone"))

    session = make_session(tmp_path, verifier=FailingVerifier())
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "file.bin").write_bytes(DATA)  # something to check
    result(session.add(TORRENT))
    assert session.find(HEX).state == "error"
    assert about(lines) == [
        ("info", f'added {SHORT} "file.bin"'),
        ("error", f'error in {SHORT} "file.bin": checking failed: disk gone'),
    ]


def test_completion_is_one_info_line(tmp_path: Path, lines: list[tuple[str, str]]) -> None:
    s = Swarm(tmp_path).start()
    seed = s.seed_peer()
    reqs = requests_in(seed.new())
    while reqs:
        seed.answer(reqs)
        reqs = requests_in(seed.new())
    assert s.torrent.state == "seeding"
    short = s.torrent.hex[:8]
    assert about(lines, short) == [("info", f'completed {short} "harness"')]


def test_a_magnet_is_added_and_removed_in_one_line_each(
    tmp_path: Path, lines: list[tuple[str, str]]
) -> None:
    session = make_session(tmp_path)
    ih = "ab" * 20
    call(session, "torrent.add", magnet=f"magnet:?xt=urn:btih:{ih}&dn=thing")
    call(session, "torrent.remove", info_hash=ih)
    assert about(lines, "abababab") == [
        ("info", 'added abababab "thing" (magnet)'),
        ("info", 'removed abababab "thing" (magnet)'),
    ]


# -- adding what is already there -------------------------------------------------------------------
def test_adding_again_says_where_the_torrent_stays(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    call(session, "torrent.add", metainfo=_b64(TORRENT), save_path=str(tmp_path / "first"))
    again = call(session, "torrent.add", metainfo=_b64(TORRENT), save_path=str(tmp_path / "x"))
    assert again["added"] is False and again["save_path"] == str(tmp_path / "first")
    magnet = call(session, "torrent.add", magnet=f"magnet:?xt=urn:btih:{HEX}")
    assert magnet["added"] is False and magnet["save_path"] == str(tmp_path / "first")
    assert not (tmp_path / "x").exists()


# -- save paths that cannot be written ---------------------------------------------------------------
def blocked(tmp_path: Path) -> Path:
    """A directory that cannot be created: its parent is a regular file (root can't either)."""
    (tmp_path / "file").write_bytes(b"not a directory")
    return tmp_path / "file" / "sub"


def test_a_save_path_that_cannot_be_created_is_refused_at_add_time(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    result(session.add(OTHER))
    before = {h: (t.state, t.options) for h, t in session.torrents.items()}
    with pytest.raises(SavePathError, match=r"cannot write to .*/file/sub: Not a directory"):
        result(session.add(TORRENT, save_path=str(blocked(tmp_path))))
    assert {h: (t.state, t.options) for h, t in session.torrents.items()} == before
    assert not list((tmp_path / "state" / "torrents").glob(f"{HEX}*"))
    assert result(session.add(TORRENT))["added"] is True  # nothing half-added was left


def test_a_save_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    (tmp_path / "plain").write_bytes(b"x")
    with pytest.raises(SavePathError, match="plain: not a directory"):
        result(session.add(TORRENT, save_path=str(tmp_path / "plain")))
    assert session.torrents == {}


def test_an_unwritable_default_download_dir_is_refused(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    session.apply_config(
        dataclasses.replace(
            session.config,
            session=dataclasses.replace(session.config.session, download_dir=blocked(tmp_path)),
        )
    )
    with pytest.raises(SavePathError, match="Not a directory"):
        result(session.add(TORRENT))
    assert session.torrents == {}


def test_rpc_answers_storage_with_the_reason(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    path = str(blocked(tmp_path))
    for params in ({"metainfo": _b64(TORRENT)}, {"magnet": f"magnet:?xt=urn:btih:{'cd' * 20}"}):
        with pytest.raises(RpcError) as caught:
            call(session, "torrent.add", save_path=path, **params)
        assert caught.value.code == codes.STORAGE
        assert caught.value.message == f"cannot write to {path}: Not a directory"
        assert caught.value.data == {"field": "save_path"}
    assert session.swarms() == []
    assert (
        not (tmp_path / "state" / "magnets.json").exists()
        or "cd" * 20 not in (tmp_path / "state" / "magnets.json").read_text()
    )


# -- why a magnet waits ------------------------------------------------------------------------------
def test_a_magnet_with_no_tracker_and_no_dht_says_so(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    bare, tracked, with_peer = "11" * 20, "22" * 20, "33" * 20
    call(session, "torrent.add", magnet=f"magnet:?xt=urn:btih:{bare}")
    call(session, "torrent.add", magnet=f"magnet:?xt=urn:btih:{tracked}&tr=udp://t.example:1/a")
    call(session, "torrent.add", magnet=f"magnet:?xt=urn:btih:{with_peer}&x.pe=10.0.0.1:6881")
    result(session.add(TORRENT))
    detail = {t["info_hash"]: t["state_detail"] for t in call(session, "torrent.list")}
    assert detail == {
        bare: "no trackers and the DHT is disabled: add a tracker or a peer",
        tracked: None,
        with_peer: None,
        HEX: None,
    }
    assert call(session, "torrent.get", info_hash=bare)["state_detail"] == detail[bare]
    assert {"state_detail": detail[bare]} in call(session, "torrent.list", fields=["state_detail"])


def test_no_state_detail_while_a_dht_runs(tmp_path: Path) -> None:
    from btd.core.plugin import hookimpl

    class Dht:
        @hookimpl
        def btd_dht_port(self) -> int:
            return 6881

    session = make_session(tmp_path, Dht())
    call(session, "torrent.add", magnet=f"magnet:?xt=urn:btih:{'44' * 20}")
    assert [t["state_detail"] for t in call(session, "torrent.list")] == [None]


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def test_the_short_hash_is_the_info_hash_prefix() -> None:
    assert SHORT == hashlib.sha1(parse_metainfo(TORRENT).info_bytes).hexdigest()[:8]

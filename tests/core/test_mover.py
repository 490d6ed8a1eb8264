"""torrent.move and incomplete_dir through a whole (synchronous) Session: the move's states,
events and stored save path, its refusals, a failure that leaves the data whole at the
source and the torrent in error, and incomplete downloads living in the incomplete_dir."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
import session_harness
from session_harness import PL, HeldBlocking, content, multi, result

from btd.core.metainfo import parse_metainfo
from btd.core.move_files import DiskOps, copy_chunk
from btd.core.rpc.errors import STORAGE, RpcError
from btd.core.rpc.torrent_methods import torrent_methods
from btd.core.session import Session
from btd.plugins.resume_sqlite import SqliteResumeStore

A, B = content(3 * PL + 100, 1), content(2 * PL, 2)
TORRENT = multi("two", [(["a.bin"], A), (["sub", "b.bin"], B)])
HEX = parse_metainfo(TORRENT).hex
PIECES = 6
OTHER_DATA = content(PL, 3)
OTHER = session_harness.single("other.bin", OTHER_DATA)


def make_session(tmp_path: Path, **keys: Any) -> Session:
    plugins = {"rarest_first": {}, "sequential": {}, "resume_sqlite": {"interval": 5}}
    return session_harness.make_session(tmp_path, plugins=plugins, **keys)


def put_data(root: Path, *, only_a: bool = False) -> None:
    (root / "two" / "sub").mkdir(parents=True, exist_ok=True)
    (root / "two" / "a.bin").write_bytes(A)
    if not only_a:
        (root / "two" / "sub" / "b.bin").write_bytes(B)


def whole(root: Path) -> bool:
    return (root / "two" / "a.bin").read_bytes() == A and (
        root / "two" / "sub" / "b.bin"
    ).read_bytes() == B


def stored_options(tmp_path: Path) -> dict[str, Any]:
    store = SqliteResumeStore(tmp_path / "state" / "resume.sqlite")
    try:
        found, _ = store.load_all()
    finally:
        store.close()
    return {item.info_hash: item.options for item in found}[HEX]


def seeding(tmp_path: Path, **keys: Any) -> tuple[Session, Any, list[Any]]:
    put_data(tmp_path / "dl")
    session = make_session(tmp_path, **keys)
    events: list[Any] = []
    session.add_event_listener(events.append)
    session.start()
    result(session.add(TORRENT))
    t = session.find(HEX)
    assert t.state == "seeding"
    return session, t, events


def drain(session: Session) -> None:
    session.reactor.advance(0)


def test_a_seeding_torrent_moves_and_the_new_place_is_stored(tmp_path: Path) -> None:
    session, t, events = seeding(tmp_path)
    move = torrent_methods(session)["torrent.move"]
    target = tmp_path / "archive"
    reply = result(move(HEX[:8], str(target)))
    assert reply == {
        "info_hash": HEX,
        "from": str(tmp_path / "dl"),
        "to": str(target),
        "size": len(A) + len(B),
    }
    assert whole(target) and not (tmp_path / "dl" / "two").exists()
    assert t.state == "seeding" and t.options.save_path == target and t.move_task is None
    assert t.storage.save_path == target and t.state_detail is None
    kinds = [e.kind for e in events]
    assert kinds[-2:] == ["moving", "moved"]
    assert events[-1].data["to"] == str(target) and events[-1].save_path == str(target)
    options = stored_options(tmp_path)
    assert options["save_path"] == str(target) and options["storage_root"] == str(target)
    assert options["storage_dev"] == os.stat(target).st_dev
    result(session.stop())

    again = make_session(tmp_path)
    again.start()
    t = again.find(HEX)
    assert t.state == "seeding" and t.storage.save_path == target
    assert again.verifier.rechecks == []  # trusted where it is now: nothing rehashed


def test_a_download_is_refused_and_nothing_moves(tmp_path: Path) -> None:
    put_data(tmp_path / "dl", only_a=True)
    session = make_session(tmp_path)
    session.start()
    result(session.add(TORRENT))
    t = session.find(HEX)
    assert t.state == "downloading"
    move = torrent_methods(session)["torrent.move"]
    with pytest.raises(RpcError) as caught:
        result(move(HEX, str(tmp_path / "x")))
    assert caught.value.code == STORAGE and "pause it first" in caught.value.message
    assert caught.value.data["field"] == "info_hash"
    with pytest.raises(RpcError) as caught:
        result(move(HEX, "relative/dir"))
    assert caught.value.data["field"] == "path"
    assert not (tmp_path / "x").exists()

    result(t.pause())  # paused: it moves, and comes back where it was moved
    result(move(HEX, str(tmp_path / "x")))
    assert (tmp_path / "x" / "two" / "a.bin").read_bytes() == A
    assert t.state == "paused" and t.book.have.count == 3
    result(t.resume())
    assert t.state == "downloading" and t.storage.save_path == tmp_path / "x"


def test_a_target_with_other_files_of_those_names_is_refused(tmp_path: Path) -> None:
    session, t, events = seeding(tmp_path)
    target = tmp_path / "busy"
    (target / "two").mkdir(parents=True)
    (target / "two" / "a.bin").write_bytes(b"another torrent's a.bin")
    with pytest.raises(RpcError, match="other content"):
        result(torrent_methods(session)["torrent.move"](HEX, str(target)))
    assert (target / "two" / "a.bin").read_bytes() == b"another torrent's a.bin"
    assert whole(tmp_path / "dl") and t.state == "seeding" and t.error is None


def test_a_target_that_fills_up_leaves_the_data_whole_and_a_clear_error(tmp_path: Path) -> None:
    session, t, events = seeding(tmp_path)
    (tmp_path / "dl" / "other.bin").write_bytes(OTHER_DATA)
    result(session.add(OTHER))
    other = session.find(parse_metainfo(OTHER).hex)
    assert other.state == "seeding"
    done = [0]

    def fills_up(sfd: int, dfd: int, offset: int, length: int) -> int:
        if done[0] >= len(A):
            raise OSError(errno.ENOSPC, "No space left on device")
        done[0] += length
        return copy_chunk(sfd, dfd, offset, length)

    def exdev(a: str, b: str) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    session.mover.ops = DiskOps(exdev, fills_up)
    target = tmp_path / "small"
    result(torrent_methods(session)["torrent.move"](HEX, str(target)))
    assert t.state == "error"
    assert t.error.startswith(f"move to {target} failed: copying to {target}/two/sub/b.bin")
    assert "disk full" in t.error and f"the data stays whole in {tmp_path / 'dl'}" in t.error
    assert whole(tmp_path / "dl") and not target.exists()
    assert t.options.save_path == tmp_path / "dl" and t.move_task is None
    assert [e.data["error"] for e in events if e.kind == "error"] == [t.error]
    assert other.state == "seeding" and other.error is None  # others untouched
    session.mover.ops = DiskOps()
    result(t.resume())  # from its source, whole
    assert t.state == "seeding" and t.error is None


def run_one(held: HeldBlocking) -> str:
    fn, args, d = held.queue.pop(0)
    d.callback(fn(*args))
    return getattr(fn, "__name__", "")


def test_resuming_a_paused_download_during_its_move_waits_for_the_move(tmp_path: Path) -> None:
    put_data(tmp_path / "dl", only_a=True)
    session = make_session(tmp_path)
    session.start()
    result(session.add(TORRENT, paused=True))
    t = session.find(HEX)
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    d = torrent_methods(session)["torrent.move"](HEX, str(tmp_path / "x"))
    assert run_one(held) == "plan_move"
    assert result(d)["to"] == str(tmp_path / "x")
    assert t.state_detail == f"moving to {tmp_path / 'x'} (0%)"
    assert run_one(held) == "step"
    assert t.move_task.progress == 1.0
    result(t.resume())  # no writes while the files move: it starts once they are there
    assert t.state == "paused" and not t.options.paused
    assert run_one(held) == "commit"
    held.run()
    assert t.state == "downloading" and t.storage.save_path == tmp_path / "x"
    assert (tmp_path / "x" / "two" / "a.bin").read_bytes() == A


def test_removing_a_torrent_being_moved_undoes_the_move(tmp_path: Path) -> None:
    session, t, events = seeding(tmp_path)
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    torrent_methods(session)["torrent.move"](HEX, str(tmp_path / "x"))
    assert run_one(held) == "plan_move"
    removed = session.remove(t)
    assert not removed.called  # waits for the move to be undone
    held.run()
    assert result(removed)["removed"]
    assert whole(tmp_path / "dl") and not (tmp_path / "x").exists()
    assert "moved" not in [e.kind for e in events]


def test_incomplete_downloads_live_in_the_incomplete_dir(tmp_path: Path) -> None:
    incomplete = tmp_path / "incoming"
    put_data(incomplete, only_a=True)
    session = make_session(tmp_path, incomplete_dir=incomplete)
    session.start()
    result(session.add(TORRENT))
    t = session.find(HEX)
    assert t.state == "downloading" and t.book.have.count == 3  # found in the incomplete dir
    assert t.storage.save_path == incomplete and t.options.save_path == tmp_path / "dl"
    result(session.stop())

    again = make_session(tmp_path, incomplete_dir=None)  # turned off since: still found
    again.start()
    t = again.find(HEX)
    assert t.storage.save_path == incomplete and t.book.have.count == 3
    result(again.stop())


def test_a_completed_download_moves_to_its_save_path(tmp_path: Path) -> None:
    incomplete = tmp_path / "incoming"
    put_data(incomplete)  # all there: complete at the first check
    session = make_session(tmp_path, incomplete_dir=incomplete)
    events: list[Any] = []
    session.add_event_listener(events.append)
    session.start()
    result(session.add(TORRENT))
    t = session.find(HEX)
    assert t.state == "seeding" and t.storage.save_path == incomplete
    drain(session)  # the move starts on the next reactor turn
    assert t.state == "seeding" and t.storage.save_path == tmp_path / "dl"
    assert whole(tmp_path / "dl") and not (incomplete / "two").exists()
    assert [e.kind for e in events][-2:] == ["moving", "moved"]
    assert stored_options(tmp_path)["storage_root"] == str(tmp_path / "dl")


def test_data_already_in_the_save_path_is_not_downloaded_again(tmp_path: Path) -> None:
    put_data(tmp_path / "dl")
    session = make_session(tmp_path, incomplete_dir=tmp_path / "incoming")
    session.start()
    result(session.add(TORRENT))
    t = session.find(HEX)
    drain(session)
    assert t.state == "seeding" and t.storage.save_path == tmp_path / "dl"
    assert not (tmp_path / "incoming").exists()


def test_move_progress_is_listed(tmp_path: Path) -> None:
    session, t, events = seeding(tmp_path)
    methods = torrent_methods(session)
    assert methods["torrent.get"](HEX)["move_progress"] is None
    assert methods["torrent.list"](fields=["move_progress"]) == [{"move_progress": None}]

"""A periodic resume save of many torrents in one folder costs per torrent, not per folder
resolved again: the folder's real path is looked up once per round (10,000 torrents in one
download folder paid a realpath each)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from session_harness import make_session, result, single

from btd.core.batch_add import BatchItem
from btd.core.metainfo import parse_metainfo


def realpaths_in_a_save_round(tmp_path: Path, n: int, monkeypatch: pytest.MonkeyPatch) -> int:
    session = make_session(tmp_path)
    session.start()
    dl = tmp_path / "dl"
    dl.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        data = i.to_bytes(4, "big") * 256
        (dl / f"f{i}").write_bytes(data)
        raw = single(f"f{i}", data)
        items.append(BatchItem(parse_metainfo(raw), raw, {"paused": True}))
    d = session.add_many(items)
    for _ in range(50):
        session.reactor.advance(0)
    assert all(r["added"] for r in result(d))
    assert session.saver.marked == n  # checked (sizes): each has progress to record
    calls = []
    real = os.path.realpath
    monkeypatch.setattr(os.path, "realpath", lambda p, **kw: calls.append(p) or real(p, **kw))
    session.reactor.advance(session.saver.interval)
    monkeypatch.undo()
    assert session.saver.marked == 0
    assert all(not session.saver.dirty(t) for t in session.torrents.values())
    return len(calls)


def test_a_save_round_resolves_the_shared_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    few = realpaths_in_a_save_round(tmp_path / "few", 3, monkeypatch)
    many = realpaths_in_a_save_round(tmp_path / "many", 30, monkeypatch)
    assert many == few <= 2

"""A batch add with the SQLite store: the records are durable before the reply, the
.torrent copies follow in a pool job queued after it (plugins/resume_sqlite.py)."""

from __future__ import annotations

from pathlib import Path

from session_harness import HeldBlocking, make_session, result, single

from btd.core.batch_add import BatchItem
from btd.core.metainfo import parse_metainfo


def test_a_batch_add_writes_the_copies_after_the_reply(tmp_path: Path) -> None:
    session = make_session(tmp_path, plugins={"rarest_first": {}, "resume_sqlite": {}})
    session.start()
    for _ in range(10):
        session.reactor.advance(0)
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    raws = [single(f"f{n}", bytes([n]) * 100) for n in range(3)]
    d = session.add_many([BatchItem(parse_metainfo(r), r, {"paused": True}) for r in raws])
    copies = tmp_path / "state" / "torrents"
    for _ in range(20):  # one pool job at a time, until the reply
        if held.queue:
            fn, args, job = held.queue.pop(0)
            job.callback(fn(*args))
        session.reactor.advance(0)
        if d.called:
            break
    assert all(r["added"] for r in result(d))  # replied: the records are durable
    hashes = {parse_metainfo(r).hex for r in raws}
    assert {row.info_hash for row in session.store.load_all()[0]} == hashes
    assert not list(copies.glob("*.torrent"))  # the copies wait for their job
    held.run()
    assert {p.stem for p in copies.glob("*.torrent")} == hashes

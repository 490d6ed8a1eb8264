"""A batch add lets go of the request's items once they are parsed (core/rpc/add_items.py)."""

from __future__ import annotations

import base64
import gc
import weakref
from pathlib import Path

from session_harness import HeldBlocking, make_session, single

from btd.core.rpc.add_items import add_batch


class Item(dict):  # type: ignore[type-arg]
    """A request item a weak reference can watch (a plain dict cannot be)."""


def test_the_request_items_are_freed_before_the_torrents_are_stored(tmp_path: Path) -> None:
    session = make_session(tmp_path)
    held = HeldBlocking()
    session.run_blocking = held  # type: ignore[method-assign]
    raws = [
        Item(metainfo=base64.b64encode(single(f"f{n}", bytes([n]) * 100)).decode(), paused=True)
        for n in range(3)
    ]
    watch = [weakref.ref(r) for r in raws]
    d = add_batch(session, raws)
    del raws
    held.run_one()  # the parse job (3 items: one chunk)
    assert held.queue  # the store's job waits: the batch is under way
    gc.collect()
    assert [w() for w in watch] == [None, None, None]  # base64 text and all: gone
    held.run()
    session.reactor.advance(0)
    out: list[object] = []
    d.addBoth(out.append)
    while not out:
        held.run()
        session.reactor.advance(0)
    assert [r["added"] for r in out[0]] == [True, True, True]  # type: ignore[index]

"""HeapFreezer: torrents' objects frozen out of full collections, thawed after bulk removals."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from session_harness import make_session, result, single

from btd.core.batch_add import BatchItem
from btd.core.heap import FREEZE_EVERY, MIN_REMOVED, HeapFreezer
from btd.core.metainfo import parse_metainfo


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_off_it_never_freezes() -> None:
    heap = HeapFreezer()
    for _ in range(FREEZE_EVERY * 2):
        heap.built()
    heap.freeze()
    assert gc.get_freeze_count() == 0 and heap.freezes == 0


def test_every_batch_of_built_torrents_is_frozen() -> None:
    heap = HeapFreezer(enabled=True)
    for _ in range(FREEZE_EVERY - 1):
        heap.built()
    assert gc.get_freeze_count() == 0
    heap.built()
    assert gc.get_freeze_count() > 0 and heap.freezes == 1
    assert heap.frozen_torrents == FREEZE_EVERY


def test_a_frozen_cycle_is_collected_after_enough_removals() -> None:
    heap = HeapFreezer(enabled=True)

    class Node:
        pass

    node = Node()
    node.me = node  # type: ignore[attr-defined]  # a cycle: only the collector frees it
    alive = weakref.ref(node)
    for _ in range(FREEZE_EVERY):
        heap.built()
    del node
    gc.collect()
    assert alive() is not None  # frozen: out of the collector's reach (a removed torrent)
    for _ in range(MIN_REMOVED - 1):
        heap.removed_one()
    gc.collect()
    assert alive() is not None and heap.thaws == 0  # a few removals: still frozen
    heap.removed_one()
    assert alive() is None and heap.thaws == 1 and gc.get_freeze_count() == 0


def test_the_daemon_session_freezes_after_a_batch_add(tmp_path: Path) -> None:

    session = make_session(tmp_path)
    session.heap.enabled = True
    session.start()
    items = []
    for n in range(3):
        raw = single(f"f{n}", bytes([n]) * 100)
        items.append(BatchItem(parse_metainfo(raw), raw, {"paused": True}))
    d = session.add_many(items)
    for _ in range(20):
        session.reactor.advance(0)
    assert all(r["added"] for r in result(d))
    assert session.heap.freezes == 1 and gc.get_freeze_count() > 0
    session.remove(next(iter(session.torrents.values())))
    assert session.heap.removed == 1

"""Shared fixtures; the helpers they build on live in tests/btdtest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from btdtest import BtdProcess, LtPeer, OpenTracker


@pytest.fixture(scope="session")
def reactor_threads() -> Iterator[None]:
    """The global reactor's thread pool, started once for the whole run.

    Name resolution (even of 127.0.0.1) runs in it, and it only starts with reactor.run(),
    which in-process tests never call. A stopped pool cannot start again, so modules share
    this one and it stops when the run ends.
    """
    from twisted.internet import reactor

    pool = reactor.getThreadPool()  # type: ignore[attr-defined]
    if not pool.started:
        pool.start()
    yield
    pool.stop()


@pytest.fixture()
def btd_factory(tmp_path: Path) -> Iterator[Any]:
    """Start real btd processes: ``btd_factory(name, config=..., extra=[...]).start()``."""
    started: list[BtdProcess] = []

    def make(name: str = "btd", **kwargs: Any) -> BtdProcess:
        proc = BtdProcess(tmp_path / name, **kwargs)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.close()


@pytest.fixture()
def lt_factory() -> Iterator[Any]:
    """libtorrent peers in child processes: ``lt_factory("seed", torrent, save_dir)``."""
    peers: list[LtPeer] = []

    def make(*args: Any, **kwargs: Any) -> LtPeer:
        peer = LtPeer(*args, **kwargs)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


@pytest.fixture()
def opentracker_factory(tmp_path: Path) -> Iterator[Any]:
    """opentracker on 127.0.0.1 with a whitelist: ``opentracker_factory([info_hash])``."""
    trackers: list[OpenTracker] = []

    def make(info_hashes: list[str]) -> OpenTracker:
        tracker = OpenTracker(tmp_path / f"opentracker{len(trackers)}", info_hashes)
        trackers.append(tracker)
        return tracker

    yield make
    for tracker in trackers:
        tracker.close()

"""Helpers for the queue and seeding-goal tests: torrents added to a synchronous Session."""

from __future__ import annotations

import dataclasses
from typing import Any

from session_harness import content, result, single

from btd.core.session import Session
from btd.core.torrent_state import TorrentState

S = TorrentState
SIZE = 40_000


def add(session: Session, n: int, *, data: bool = False, seed: int = 0) -> list[Any]:
    """``n`` torrents, downloading (no data on disk) or seeding (``data``), in add order."""
    out = []
    for i in range(n):
        blob = content(SIZE, seed + i)
        name = f"t{seed + i}.bin"
        if data:
            (session.config.session.download_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (session.config.session.download_dir / name).write_bytes(blob)
        reply = result(session.add(single(name, blob)))
        out.append(session.find(reply["info_hash"]))
    settle(session)
    return out


def settle(session: Session) -> None:
    """Let the scheduler run what is due now (the queue decides on its next turn)."""
    for _ in range(3):
        session.clock.advance(0)


def states(torrents: list[Any]) -> list[str]:
    return [t.state for t in torrents]


def positions(torrents: list[Any]) -> list[int | None]:
    return [t.queue_position for t in torrents]


def reconfigure(session: Session, **keys: Any) -> None:
    cfg = session.config
    session.apply_config(dataclasses.replace(cfg, session=dataclasses.replace(cfg.session, **keys)))
    settle(session)

"""Torrent events: what ``btd_torrent_event`` plugins and subscribed RPC clients receive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EVENT_KINDS = (
    "added",
    "metadata",
    "started",
    "paused",
    "completed",
    "removed",
    "error",
    "verified",
    "peer_banned",
    "moving",  # torrent.move / incomplete_dir (core/mover.py)
    "moved",
    "disk_full",  # the disk-space guard (core/disk_space.py)
    "disk_space_ok",
    "queued",  # waits in the session's queue (core/queue.py)
    "seeding_goal_reached",  # data: goal, limit, value, action (core/seeding_goals.py)
    "resume_store",  # the daemon's, not a torrent's: info_hash, name, save_path are ""
)


@dataclass(frozen=True)
class TorrentEvent:
    """One thing that happened to one torrent (``info_hash`` is 40-hex)."""

    kind: str
    info_hash: str
    name: str
    save_path: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_params(self) -> dict[str, Any]:
        """The JSON form pushed to subscribed control connections."""
        return {
            "event": self.kind,
            "info_hash": self.info_hash,
            "name": self.name,
            "save_path": self.save_path,
            **self.data,
        }

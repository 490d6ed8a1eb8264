"""What a Torrent is given: its options (``torrent.add``) and the session services it uses.

``TorrentEnv`` is a bag of callables rather than a Session pointer, so a Torrent sees only
what it needs and the tests build one without a Session (tests/torrent_harness.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from btd.core.extensions import Extensions
from btd.core.peer_slots import SlotPolicy, SpareSlots
from btd.core.swarm_peers import DisconnectCounts


@dataclass(frozen=True)
class TorrentOptions:
    """What ``torrent.add`` may set per torrent."""

    save_path: Path
    paused: bool = False
    strategy: str = "rarest-first"
    download_limit: int = 0  # bytes/s, 0 = unlimited (core/bandwidth.py)
    upload_limit: int = 0
    files_skipped: tuple[int, ...] = ()  # file indices (core/file_selection.py)
    file_priorities: tuple[tuple[int, str], ...] = ()  # (index, name), only not "normal"
    allow_local_trackers: bool = False  # the outbound policy's exception (core/outbound.py)
    labels: tuple[str, ...] = ()  # core/labels.py
    queue_position: float | None = None  # the order key in the queue (core/queue.py)
    force_start: bool = False  # runs whatever the queue's limits
    ratio_limit: float | None = None  # seeding goals: None = the session's, -1 = none
    seeding_time_limit: float | None = None  # minutes
    idle_seeding_limit: float | None = None  # minutes
    encryption: str | None = None  # MSE policy (core/types.py); None = the session's


@dataclass
class TorrentEnv:
    """The session services a torrent uses (narrow on purpose)."""

    clock: Any
    verifier: Any
    peer_id: bytes
    listen_port: Callable[[], int]
    picker_for: Callable[[str, Any], Any]
    tracker_client_for: Callable[[str], Any]
    connect: Callable[..., None]  # (swarm, address, *, swarm_id=None): PeerConnector.connect
    can_connect: Callable[[], bool]
    emit: Callable[[Any, str, dict[str, Any]], None]
    max_peers: Callable[[], int]
    upload_slots: Callable[[], int]
    shutdown_timeout: float = 10.0
    client_name: str = "btd"
    rng: random.Random | None = None
    extensions: Extensions = field(default_factory=Extensions)
    dht_port: Callable[[], int | None] = lambda: None
    dht_node_seen: Callable[[str, int], None] = lambda host, port: None
    disconnects: DisconnectCounts | None = None  # the session's totals (``session.stats``)
    scheduler: Any = None  # the session's btd.core.scheduler.Scheduler (None: one of its own)
    announce_delay: Callable[[], float] = lambda: 0.0  # spreads first announces (Pacer)
    state_changed: Callable[[Any, str, str], None] = lambda torrent, old, new: None
    progress_changed: Callable[[Any], None] = lambda torrent: None  # worth a resume save
    row_changed: Callable[[Any], None] = lambda torrent: None  # its list row (core/status_log.py)
    tracker_health: Any = None  # the session's btd.core.tracker.health.TrackerHealth
    known_strategies: set[str] = field(default_factory=set)  # pickers that exist (checked once)
    slot_policy: Callable[[], SlotPolicy] = SlotPolicy  # idle peers (core/peer_slots.py)
    spare_slots: SpareSlots = field(default_factory=SpareSlots)  # the session's, shared
    storage_guard: Any = None  # the session's btd.core.storage_guard.StorageGuard
    bandwidth: Any = None  # the session's btd.core.bandwidth.Bandwidth (None: one of its own)
    incomplete_dir: Callable[[], Path | None] = lambda: None  # where new downloads live
    queue: Any = None  # the session's btd.core.queue.TorrentQueue (None: no queue)
    seeding_goals: Any = None  # the session's btd.core.seeding_goals.SeedingGoals
    check_gate: Any = None  # the session's btd.core.check_gate.CheckGate (None: no limit)

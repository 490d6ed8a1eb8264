"""A Torrent keeps its attributes in slots, not in a dict of its own per torrent."""

from __future__ import annotations

from pathlib import Path

from torrent_harness import Swarm


def test_a_running_torrent_has_every_attribute_in_a_slot(tmp_path: Path) -> None:
    swarm = Swarm(tmp_path, seeding=True).start()
    torrent = swarm.torrent
    assert torrent.state == "seeding"
    # an attribute missing from __slots__ lands in a per-torrent dict again (1.6 KB each)
    assert vars(torrent) == {}

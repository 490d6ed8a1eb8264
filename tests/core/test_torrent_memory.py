"""What an idle torrent holds: attributes in slots, no read cache until a peer asks for a
block, no closures where a bound method does (10,000 loaded torrents multiply each)."""

from __future__ import annotations

import types
from pathlib import Path

from torrent_harness import Swarm, blocks_of

from btd.core.wire import messages as m


def test_a_running_torrent_has_every_attribute_in_a_slot(tmp_path: Path) -> None:
    swarm = Swarm(tmp_path, seeding=True).start()
    torrent = swarm.torrent
    assert torrent.state == "seeding"
    # an attribute missing from __slots__ lands in a per-torrent dict again (1.6 KB each)
    assert vars(torrent) == {}


def test_the_read_cache_is_made_when_a_peer_first_asks_for_a_block(tmp_path: Path) -> None:
    swarm = Swarm(tmp_path, seeding=True).start()
    uploader = swarm.torrent.uploader
    assert uploader._cache is None  # seeding to nobody: no cache
    uploader.clear_cache()  # a rechoke round with nobody waiting makes none either
    assert uploader._cache is None
    leecher = swarm.peer()
    leecher.send(m.HAVE_NONE_MSG, m.INTERESTED_MSG)
    leecher.send(*blocks_of(3))
    assert len(leecher.new_of(m.Piece)) == len(blocks_of(3))
    assert uploader._cache is not None


def test_the_torrent_hands_out_bound_methods_not_closures(tmp_path: Path) -> None:
    torrent = Swarm(tmp_path).torrent
    assert isinstance(torrent.data.verifier, types.MethodType)
    assert isinstance(torrent.data.save_path, types.MethodType)
    assert torrent.data.save_path() == torrent.options.save_path

"""The ``sequential`` strategy against a real swarm: a rate-limited libtorrent seeder.

btd has no per-piece event, so the piece map (``torrent.get``'s ``piece_map``) is sampled
while the download runs. The property checked holds at every instant, so sampling can
miss moments but cannot make the test fail wrongly: no piece at or beyond
``first missing + window`` is ever complete, because the picker only starts pieces
within ``window`` of the first missing one and that position never moves back.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from btdtest import same_tree, seeded_torrent

pytestmark = [pytest.mark.interop]

PIECE = 64 * 1024
SIZE = 4 * 1024 * 1024  # 64 pieces
NUM_PIECES = SIZE // PIECE
WINDOW = 4  # the default (64) would cover this whole torrent and prove nothing
RATE = 1_000_000  # the seeder's upload limit, bytes/s: the download takes ~4 s


def pieces_in(piece_map: str, n: int) -> set[int]:
    bits = bytes.fromhex(piece_map)
    return {i for i in range(n) if bits[i >> 3] & (0x80 >> (i & 7))}


def first_missing(have: set[int], n: int) -> int:
    return next((i for i in range(n) if i not in have), n)


def test_pieces_complete_in_order_from_libtorrent(tmp_path: Path, btd_factory, lt_factory):
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, {"movie/movie.bin": SIZE}, "movie", "movie.torrent", seed=7, piece_size=PIECE
    )
    seeder = lt_factory("seed", torrent, seed_dir, upload_limit=RATE)
    config = f"""
session:
  piece_strategy: sequential
plugins:
  rarest_first: {{}}
  sequential:
    window: {WINDOW}
"""
    btd = btd_factory(config=config).start()
    btd.add(torrent)  # no strategy given: the YAML default applies
    samples: list[set[int]] = []
    with btd.client() as rpc:
        rpc.call(
            "torrent.add_peer",
            {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port},
        )
        deadline = time.monotonic() + 60
        while True:
            status = rpc.call("torrent.get", {"info_hash": info_hash})
            assert status["strategy"] == "sequential"
            have = pieces_in(status["piece_map"], NUM_PIECES)
            samples.append(have)
            if len(have) == NUM_PIECES:
                break
            assert status["state"] != "error", status
            assert time.monotonic() < deadline, f"download stalled at {len(have)} pieces"
            time.sleep(0.02)  # a sampling period, not a wait for something to happen

    for have in samples:
        edge = first_missing(have, NUM_PIECES)
        beyond = sorted(i for i in have if i >= edge + WINDOW)
        assert not beyond, f"first missing {edge}, yet complete: {beyond} (window {WINDOW})"
    partial = [have for have in samples if 0 < len(have) < NUM_PIECES]
    # Enough in-between samples for the check to mean something (~4 s at 50 samples/s).
    assert len(partial) >= 10, f"only {len(partial)} samples during the download"
    edges = [first_missing(have, NUM_PIECES) for have in partial]
    assert edges == sorted(edges) and edges[-1] - edges[0] >= NUM_PIECES // 2
    assert same_tree(seed_dir, btd.downloads)
    assert btd.stop() == 0

"""File selection against a real libtorrent seeder: a three-file torrent whose pieces span
file boundaries, one file wanted (``btctl add --only``): only that file appears on disk,
byte-identical, and the torrent completes; then a second file is wanted (``btctl files
--want``) and downloads too, its bytes that waited in the part file included. A restart
keeps the selection and the progress without a recheck."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from btdtest import seeded_torrent, wait_until

pytestmark = [pytest.mark.interop]

PIECE = 64 * 1024
SIZES = {"pack/a.bin": 300_000, "pack/b.bin": 200_000, "pack/c.bin": 250_000}  # unaligned


def visible(root: Path) -> list[str]:
    """Files under root, hidden ones (the part file) left out."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


def test_one_file_wanted_then_another(tmp_path: Path, btd_factory, lt_factory) -> None:
    seed_dir, torrent, info_hash = seeded_torrent(
        tmp_path, SIZES, "pack", "pack.torrent", seed=11, piece_size=PIECE
    )
    seeder = lt_factory("seed", torrent, seed_dir)
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        done = btd.btctl("add", str(torrent), "--only", "1")
        assert done.returncode == 0, done.stderr
        files = btd.call("torrent.files", {"info_hash": info_hash})
        assert [f["path"] for f in files] == ["pack/a.bin", "pack/b.bin", "pack/c.bin"]
        assert [f["wanted"] for f in files] == [False, True, False]
        btd.call(
            "torrent.add_peer",
            {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port},
        )
        btd.wait_event(events, "completed", info_hash)

        t = btd.call("torrent.get", {"info_hash": info_hash})
        assert t["state"] == "seeding" and t["progress"] == 1.0 and t["left"] == 0
        assert t["wanted"] < t["size"] and t["pieces_have"] < t["pieces"]
        assert visible(btd.downloads) == ["pack/b.bin"]
        b = (btd.downloads / "pack/b.bin").read_bytes()
        assert b == (seed_dir / "pack/b.bin").read_bytes()
        assert (btd.downloads / f".{info_hash}.parts").exists()  # a's and c's shared bytes

        # a second file becomes wanted: it downloads, the part file gives back its bytes
        out = btd.btctl("--json", "files", info_hash, "--want", "2", "--priority", "high", "2")
        assert out.returncode == 0, out.stderr
        rows = json.loads(out.stdout)
        assert [(r["wanted"], r["priority"]) for r in rows] == [
            (False, "normal"),
            (True, "normal"),
            (True, "high"),
        ]
        btd.wait_event(events, "completed", info_hash)
    assert visible(btd.downloads) == ["pack/b.bin", "pack/c.bin"]
    for name in ("pack/b.bin", "pack/c.bin"):
        assert (btd.downloads / name).read_bytes() == (seed_dir / name).read_bytes(), name
    have_before = btd.call("torrent.get", {"info_hash": info_hash})["pieces_have"]

    # a restart keeps the selection and the pieces, without hashing them again
    assert btd.stop() == 0
    btd.start()
    t = wait_until(
        lambda: (
            (g := btd.call("torrent.get", {"info_hash": info_hash}))["state"] == "seeding" and g
        ),
        what="seeding after the restart",
    )
    assert t["pieces_have"] == have_before and t["progress"] == 1.0
    assert [(f["wanted"], f["priority"]) for f in t["files"]] == [
        (False, "normal"),
        (True, "normal"),
        (True, "high"),
    ]
    assert visible(btd.downloads) == ["pack/b.bin", "pack/c.bin"]
    assert btd.stop() == 0

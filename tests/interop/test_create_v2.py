"""``btctl create --v2/--hybrid`` against libtorrent: for the same files and piece size
both compute the same info hashes (v1 and v2), and libtorrent, given btd's .torrent and
the data, checks every piece good (its merkle roots and piece layers agree)."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest
from btdtest import import_libtorrent, write_files

from btd.core.torrent_create_v2 import create_torrent_v2

pytestmark = [pytest.mark.interop]

LAYOUTS = {
    "single": {"one.bin": 70_000},
    "multi": {
        "tree/a.bin": 100_000,
        "tree/sub/b.bin": 5_000,
        "tree/c.bin": 40_000,
        "tree/empty.txt": 0,
        "tree/aligned.bin": 65_536,
        "tree/big.bin": 1_000_000,
    },
}


def lt_hashes(lt, path: Path, piece: int, hybrid: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = lt.file_storage()
        lt.add_files(fs, str(path))
        flags = 0 if hybrid else lt.create_torrent.v2_only
        ct = lt.create_torrent(fs, piece, flags=flags)
    lt.set_piece_hashes(ct, str(path.parent))
    return lt.torrent_info(lt.bencode(ct.generate())).info_hashes()


def made(tmp_path: Path, *, seed: int, hybrid: bool):
    """The "multi" files under tmp_path/seed and btd's v2 (or hybrid) .torrent of them,
    written to tmp_path: (seed folder, CreatedTorrent, .torrent path)."""
    folder = tmp_path / "seed"
    write_files(folder, LAYOUTS["multi"], seed=seed)
    created = create_torrent_v2(folder / "tree", hybrid=hybrid, piece_length=16384)
    torrent = tmp_path / ("hybrid.torrent" if hybrid else "v2.torrent")
    torrent.write_bytes(created.data)
    return folder, created, torrent


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("piece", [16384, 65536])
@pytest.mark.parametrize("hybrid", [False, True], ids=["v2", "hybrid"])
def test_same_info_hashes_as_libtorrent(tmp_path: Path, layout, piece, hybrid) -> None:
    lt = import_libtorrent()
    write_files(tmp_path, LAYOUTS[layout], seed=7)
    top = tmp_path / next(iter(LAYOUTS[layout])).split("/")[0]
    if layout == "multi":
        os.chmod(top / "c.bin", 0o755)  # attr "x" in both formats
    ours = create_torrent_v2(top, hybrid=hybrid, piece_length=piece)
    theirs = lt_hashes(lt, top, piece, hybrid)
    assert ours.info_hash_v2.hex() == str(theirs.v2)
    if hybrid:
        assert ours.info_hash.hex() == str(theirs.v1)
    else:
        assert ours.info_hash == ours.info_hash_v2[:20]


@pytest.mark.parametrize("hybrid", [False, True], ids=["v2", "hybrid"])
def test_libtorrent_checks_btds_torrent_against_the_data(tmp_path: Path, hybrid) -> None:
    lt = import_libtorrent()
    write_files(tmp_path, LAYOUTS["multi"], seed=8)
    created = create_torrent_v2(tmp_path / "tree", hybrid=hybrid, piece_length=16384)
    ses = lt.session(
        {"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
         "enable_upnp": False, "enable_natpmp": False}
    )  # fmt: skip
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bdecode(created.data))
    params.save_path = str(tmp_path)
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    handle = ses.add_torrent(params)
    deadline = time.monotonic() + 30
    while not handle.status().is_seeding:  # libtorrent's own check of every piece
        assert time.monotonic() < deadline, handle.status().state
        ses.wait_for_alert(100)
        ses.pop_alerts()
    assert handle.status().num_pieces == created.num_pieces


def test_btd_seeds_its_hybrid_torrent_to_libtorrent(
    tmp_path: Path, btd_factory, lt_factory
) -> None:
    """A hybrid made by btd is a v1 torrent with pad files: btd checks the data (pad files
    are never on disk) and seeds it; libtorrent, reading both halves, downloads it whole."""
    from btdtest import same_tree

    seed, created, torrent = made(tmp_path, seed=9, hybrid=True)
    btd = btd_factory()
    assert btd.start_seeding(seed, torrent) == created.hex
    record = btd.call("torrent.get", {"info_hash": created.hex})
    assert record["state"] == "seeding"
    assert record["info_hash_v2"] == created.info_hash_v2.hex()
    port = btd.call("session.info")["listen_port"]
    leecher = lt_factory("leech", torrent, tmp_path / "lt", peers=[f"127.0.0.1:{port}"])
    leecher.wait_done()
    assert same_tree(seed, tmp_path / "lt")
    assert not (btd.downloads / "tree" / ".pad").exists()
    assert btd.stop() == 0


def test_btd_downloads_a_hybrid_from_libtorrent(tmp_path: Path, btd_factory, lt_factory) -> None:
    """The other way: libtorrent seeds a hybrid (its own or btd's, the same info hashes);
    btd dials it in the v1 swarm (``add_peer``), never writes the pad files, and gets the files whole."""
    from btdtest import same_tree

    seed, created, torrent = made(tmp_path, seed=10, hybrid=True)
    seeder = lt_factory("seed", torrent, seed)
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        assert btd.add(torrent) == created.hex
        btd.call(
            "torrent.add_peer",
            {"info_hash": created.hex, "address": "127.0.0.1", "port": seeder.port},
        )
        btd.wait_event(events, "completed", created.hex)
    assert same_tree(seed, btd.downloads)
    assert btd.stop() == 0


def test_v2_only_both_ways_with_libtorrent(tmp_path: Path, btd_factory, lt_factory) -> None:
    """BEP 52 v2-only: btd downloads from a libtorrent seeder (every piece checked by its
    merkle hashes) and then seeds it to a libtorrent leecher; the swarm is named by the first
    20 bytes of the SHA-256 info hash, as libtorrent names it."""
    from btdtest import same_tree

    seed, created, torrent = made(tmp_path, seed=11, hybrid=False)
    seeder = lt_factory("seed", torrent, seed)
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        assert btd.add(torrent) == created.hex
        record = btd.call("torrent.get", {"info_hash": created.hex})
        assert record["info_hash_v2"] == created.info_hash_v2.hex()
        btd.call(
            "torrent.add_peer",
            {"info_hash": created.hex, "address": "127.0.0.1", "port": seeder.port},
        )
        btd.wait_event(events, "completed", created.hex)
    assert same_tree(seed, btd.downloads)
    seeder.close()
    port = btd.call("session.info")["listen_port"]
    leecher = lt_factory("leech", torrent, tmp_path / "lt", peers=[f"127.0.0.1:{port}"])
    leecher.wait_done()
    assert same_tree(seed, tmp_path / "lt")
    assert btd.stop() == 0


def test_btd_checks_v2_data_on_disk_by_merkle_hashes(tmp_path: Path, btd_factory) -> None:
    """Adding a v2 torrent over its files checks every piece by SHA-256 merkle hashes: the
    whole data seeds; one changed byte costs exactly its piece."""
    seed, created, torrent = made(tmp_path, seed=12, hybrid=False)
    btd = btd_factory()
    assert btd.start_seeding(seed, torrent) == created.hex
    record = btd.call("torrent.get", {"info_hash": created.hex})
    assert record["state"] == "seeding" and record["pieces_have"] == created.num_pieces
    btd.call("torrent.remove", {"info_hash": created.hex})
    big = btd.downloads / "tree" / "big.bin"
    data = bytearray(big.read_bytes())
    data[500_000] ^= 0xFF
    big.write_bytes(bytes(data))
    with btd.client() as events:
        events.call("events.subscribe")
        btd.add(torrent)
        btd.wait_event(events, "started", created.hex)
    record = btd.call("torrent.get", {"info_hash": created.hex})
    assert record["pieces_have"] == created.num_pieces - 1
    assert btd.stop() == 0

"""A web seed and a libtorrent seeder feeding one btd download together."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from btdtest import same_tree, write_files

pytestmark = [pytest.mark.interop]

# The helpers of the web seed integration tests (server fixture, torrent with url-list).
_spec = importlib.util.spec_from_file_location(
    "web_seed_helpers", Path(__file__).resolve().parents[1] / "integration" / "test_web_seed.py"
)
assert _spec is not None and _spec.loader is not None
helpers = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("web_seed_helpers", helpers)
_spec.loader.exec_module(helpers)
web_server = helpers.web_server

SIZES = {"both/a.bin": 6_000_000, "both/b.bin": 3_000_001}


def test_a_web_seed_and_a_libtorrent_seeder_both_contribute(
    tmp_path, btd_factory, lt_factory, web_server
) -> None:
    seed_dir = tmp_path / "seed"
    write_files(seed_dir, SIZES, seed=11)
    server = web_server(seed_dir, "slow")
    torrent = tmp_path / "both.torrent"
    info_hash = helpers.torrent_with_seeds(seed_dir / "both", torrent, [server.url])
    # libtorrent reads the url-list too: it must not use it (it would only seed slower).
    seeder = lt_factory("seed", torrent, seed_dir, upload_limit=1_500_000)
    btd = btd_factory().start()
    with btd.client() as events:
        events.call("events.subscribe")
        helpers.add(btd, torrent, allow_local_trackers=True)
        btd.call(
            "torrent.add_peer",
            {"info_hash": info_hash, "address": "127.0.0.1", "port": seeder.port},
        )
        btd.wait_event(events, "completed", info_hash)
    assert same_tree(seed_dir, btd.downloads)
    sources = btd.call("torrent.get", {"info_hash": info_hash})["sources"]
    from_web = sources.get(server.url, 0)
    from_lt = sum(n for key, n in sources.items() if key.endswith(f":{seeder.port}"))
    assert from_web > 0 and from_lt > 0, sources
    assert from_web + from_lt >= sum(SIZES.values())
    assert btd.stop() == 0

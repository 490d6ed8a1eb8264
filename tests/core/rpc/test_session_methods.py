"""The ``session.*`` methods that report on the daemon itself."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

from session_harness import HeldBlocking, content, make_session, result, single

from btd.core.config import parse_config
from btd.core.rpc.methods import build_methods
from btd.core.rpc.torrent_methods import torrent_methods


def test_session_config_is_the_configuration_in_force_as_json(tmp_path: Path) -> None:
    session = make_session(tmp_path, upload_slots=7, umask=0o002)
    methods = build_methods(session)
    answer = methods["session.config"]()
    assert json.loads(json.dumps(answer, allow_nan=False)) == answer
    assert list(answer) == ["source", "daemon", "control", "session", "labels", "plugins"]
    assert answer["source"] is None  # built-in defaults
    assert answer["daemon"]["state_dir"] == str(tmp_path / "state")
    assert answer["session"]["download_dir"] == str(tmp_path / "dl")
    assert answer["session"]["upload_slots"] == 7
    assert answer["session"]["umask"] == "0002"
    assert answer["control"]["allowed_group"] is None
    assert answer["plugins"] == {name: {} for name in session.config.plugins}
    assert methods["session.methods"]()["session.config"]  # listed, with a description

    loaded = parse_config(
        f"daemon: {{state_dir: {tmp_path}/s2}}\nplugins: {{sequential: {{x: 1}}}}\n", "f.yaml"
    )
    session.apply_config(dataclasses.replace(loaded, source=tmp_path / "f.yaml"))
    answer = methods["session.config"]()
    assert answer["source"] == str(tmp_path / "f.yaml")
    assert answer["daemon"]["state_dir"] == str(tmp_path / "s2")
    assert answer["plugins"] == {"sequential": {"x": 1}}


def test_methods_naming_a_torrent_wait_for_the_stored_torrents_at_start(tmp_path: Path) -> None:
    first = make_session(tmp_path)
    added = result(first.add(single("file.bin", content(20_000, 1))))
    second = make_session(tmp_path)
    held = HeldBlocking()
    second.run_blocking = held  # type: ignore[method-assign]
    second.start()
    methods = build_methods(second)
    assert methods["torrent.list"]() == []  # answers at once: nothing is up yet
    d = methods["torrent.get"](added["info_hash"])
    assert not d.called  # waits for the store instead of answering "not found"
    held.run()
    assert result(d)["info_hash"] == added["info_hash"]
    assert methods["torrent.get"](added["info_hash"])["name"] == "file.bin"  # now at once
    assert inspect.signature(methods["torrent.get"]) == inspect.signature(
        torrent_methods(second)["torrent.get"]
    )  # the parameter check still sees the real signature

"""The ``session.*`` methods that report on the daemon itself."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from session_harness import make_session

from btd.core.config import parse_config
from btd.core.rpc.methods import build_methods


def test_session_config_is_the_configuration_in_force_as_json(tmp_path: Path) -> None:
    session = make_session(tmp_path, upload_slots=7, umask=0o002)
    methods = build_methods(session)
    answer = methods["session.config"]()
    assert json.loads(json.dumps(answer, allow_nan=False)) == answer
    assert list(answer) == ["source", "daemon", "control", "session", "plugins"]
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

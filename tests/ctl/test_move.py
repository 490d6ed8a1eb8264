"""``btctl move HASH DIR``: DIR made absolute, torrent.move called, its reply or refusal."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_daemon import FakeDaemon, Refused, run_btctl

from btd.core.rpc.errors import STORAGE

HASH = "3f9a" + "1" * 36


def move(params: dict[str, Any]) -> dict[str, Any]:
    path = params["path"]
    if path.endswith("busy"):
        raise Refused(STORAGE, f"not moved: {path}/x exists with other content", {"field": "path"})
    return {"info_hash": HASH, "from": "/dl", "to": path, "size": 3 * 2**30}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(tmp_path / "btd.sock", {"torrent.move": move})
    yield fake
    fake.stop()


@pytest.fixture
def btctl(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    return functools.partial(run_btctl, capsys, "--socket", str(daemon.path))


def test_move_sends_an_absolute_dir(btctl: Any, daemon: FakeDaemon) -> None:
    code, out, _ = btctl("move", "3f9a", "archive")
    target = os.path.abspath("archive")
    assert daemon.calls() == [("torrent.move", {"info_hash": "3f9a", "path": target})]
    assert code == 0 and out.startswith(f"moving {HASH} from /dl to {target} (3.0")
    code, out, _ = btctl("--json", "move", "3f9a", "/srv/done")
    assert json.loads(out)["to"] == "/srv/done"


def test_a_refused_move_exits_1(btctl: Any, daemon: FakeDaemon) -> None:
    code, out, err = btctl("move", "3f9a", "/srv/busy")
    assert code == 1 and out == "" and "exists with other content" in err

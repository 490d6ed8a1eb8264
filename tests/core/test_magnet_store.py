"""MagnetStore: magnets waiting for metadata in ``<state_dir>/magnets.json``, rewritten atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from btd.core.errors import StorageError
from btd.core.magnet_store import MagnetStore

A, B = "a" * 40, "b" * 40
URI_A, URI_B = f"magnet:?xt=urn:btih:{A}", f"magnet:?xt=urn:btih:{B}&dn=bee"


def test_save_load_delete(tmp_path: Path) -> None:
    store = MagnetStore(tmp_path / "state")  # created on the first save
    assert store.load_all() == ([], [])
    store.save(B, URI_B, {"save_path": "/srv/b", "paused": True, "strategy": None})
    store.save(A, URI_A, {})
    assert store.load_all() == (
        [(A, URI_A, {}), (B, URI_B, {"save_path": "/srv/b", "paused": True, "strategy": None})],
        [],
    )
    store.save(A, URI_A + "&dn=again", {"paused": False})  # the same hash: replaced
    store.delete(B)
    store.delete("c" * 40)  # unknown: nothing to do
    assert store.load_all() == ([(A, URI_A + "&dn=again", {"paused": False})], [])
    assert json.loads(store.path.read_text()) == {
        A: {"uri": URI_A + "&dn=again", "options": {"paused": False}}
    }


def test_every_write_is_a_new_file_fsynced_then_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MagnetStore(tmp_path)
    store.save(A, URI_A, {})
    before = store.path.stat().st_ino
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        steps.append("fsync")
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        steps.append(f"replace {Path(src).name} -> {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.save(B, URI_B, {})
    assert steps == ["fsync", "replace magnets.json.tmp -> magnets.json"]
    assert store.path.stat().st_ino != before  # never rewritten in place
    assert sorted(h for h, _, _ in store.load_all()[0]) == [A, B]


def test_a_failed_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MagnetStore(tmp_path)
    store.save(A, URI_A, {})
    before = store.path.read_bytes()

    def crash(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageError, match="No space left on device"):
        store.save(B, URI_B, {})
    assert store.path.read_bytes() == before
    monkeypatch.undo()
    assert store.load_all() == ([(A, URI_A, {})], [])


@pytest.mark.parametrize("text", ["{oops", "[1, 2]", "", "\xff"])
def test_a_corrupt_file_is_moved_aside_reported_and_never_overwritten(
    tmp_path: Path, text: str
) -> None:
    store = MagnetStore(tmp_path)
    store.path.write_text(text, errors="surrogateescape")
    before = store.path.read_bytes()
    found, problems = store.load_all()
    assert found == [] and len(problems) == 1 and str(store.path) in problems[0]
    [aside] = tmp_path.glob("magnets.json.damaged-*")
    assert aside.read_bytes() == before and str(aside) in problems[0]
    store.save(A, URI_A, {})  # a new file: adding magnets works again
    assert store.load_all() == ([(A, URI_A, {})], [])


def test_damage_in_the_middle_loses_only_the_entries_it_touches(tmp_path: Path) -> None:
    store = MagnetStore(tmp_path)
    hashes = [f"{n:040x}" for n in range(10)]
    for h in hashes:
        store.save(h, f"magnet:?xt=urn:btih:{h}", {"paused": False})
    data = bytearray(store.path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 6] = b'\x00\xff{["\x01'
    store.path.write_bytes(bytes(data))
    found, problems = store.load_all()
    assert len(problems) == 1 and "9 magnet(s) recovered" in problems[0]
    assert len(found) == 9 and {h for h, _, _ in found} < set(hashes)
    assert MagnetStore(tmp_path).load_all() == (found, [])  # written back whole


def test_malformed_entries_are_reported_and_the_others_loaded(tmp_path: Path) -> None:
    store = MagnetStore(tmp_path)
    store.path.write_text(
        json.dumps(
            {
                A: {"uri": URI_A, "options": "not a dict"},
                B: {"options": {}},
                "c" * 40: "just a string",
            }
        )
    )
    found, problems = store.load_all()
    assert found == [(A, URI_A, {})]
    assert len(problems) == 2 and all("malformed" in p for p in problems)


def test_an_unwritable_state_dir_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file, not a folder")
    store = MagnetStore(tmp_path / "state")
    with pytest.raises(StorageError, match="magnets.json"):
        store.save(A, URI_A, {})

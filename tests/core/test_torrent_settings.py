"""The per-torrent settings table: checks, defaults, storage round trip, live apply."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from btd.core.torrent_env import TorrentOptions
from btd.core.torrent_settings import (
    ADD_KEYS,
    SET_KEYS,
    SettingError,
    apply_settings,
    check_add,
    options_from,
    options_json,
)


@dataclass
class Cfg:
    download_dir: Path = Path("/srv/dl")
    piece_strategy: str = "rarest-first"


class FakeTorrent:
    def __init__(self) -> None:
        self.options = TorrentOptions(save_path=Path("/srv/dl"))
        self.strategies: list[str] = []

    def set_strategy(self, strategy: str) -> None:
        if strategy == "no-such":
            raise ValueError("no piece strategy called 'no-such'")
        self.strategies.append(strategy)


def test_add_keys_and_set_keys() -> None:
    assert {"save_path", "paused", "strategy"} <= set(ADD_KEYS)
    assert "strategy" in SET_KEYS and "save_path" not in SET_KEYS and "paused" not in SET_KEYS


def test_check_add_keeps_only_given_values_canonical() -> None:
    assert check_add({}) == {}
    assert check_add({"save_path": "/a/./b", "paused": True, "strategy": None}) == {
        "save_path": "/a/b",
        "paused": True,
    }


@pytest.mark.parametrize(
    "raw, name",
    [
        ({"paused": "yes"}, "paused"),
        ({"paused": None}, "paused"),
        ({"save_path": "relative"}, "save_path"),
        ({"save_path": "/a\0b"}, "save_path"),
        ({"save_path": "/srv/dl/../../etc"}, "save_path"),  # issue 13 class 8: refused
        ({"save_path": "/srv/dl/.."}, "save_path"),
        ({"save_path": 5}, "save_path"),
        ({"strategy": 1}, "strategy"),
        ({"encryption": "always"}, "encryption"),
        ({"encryption": True}, "encryption"),
        ({"nonsense": 1}, "nonsense"),
    ],
)
def test_check_add_names_the_bad_setting(raw: dict[str, Any], name: str) -> None:
    with pytest.raises(SettingError) as info:
        check_add(raw)
    assert info.value.name == name


def test_options_from_defaults_and_round_trip() -> None:
    options = options_from({}, Cfg())
    assert options == TorrentOptions(
        save_path=Path("/srv/dl"), paused=False, strategy="rarest-first"
    )
    given = options_from({"save_path": "/x", "paused": True, "strategy": "sequential"}, Cfg())
    assert options_from(options_json(given), Cfg()) == given


def test_a_damaged_stored_value_takes_the_default() -> None:
    options = options_from({"save_path": 12, "strategy": None}, Cfg())
    assert options.save_path == Path("/srv/dl") and options.strategy == "rarest-first"


def test_apply_settings_checks_all_first_then_applies() -> None:
    t = FakeTorrent()
    with pytest.raises(SettingError) as info:
        apply_settings(t, {"strategy": 3})
    assert info.value.name == "strategy" and t.strategies == []
    with pytest.raises(SettingError) as info:
        apply_settings(t, {"save_path": "/elsewhere"})  # not settable: torrent.move
    assert info.value.name == "save_path"
    with pytest.raises(SettingError) as info:
        apply_settings(t, {"strategy": "no-such"})  # refused by the torrent
    assert info.value.name == "strategy" and t.options.strategy == "rarest-first"
    assert apply_settings(t, {"strategy": "sequential"}) == ["strategy"]
    assert t.strategies == ["sequential"] and t.options.strategy == "sequential"
    assert apply_settings(t, {"strategy": None}) == []  # null: unchanged

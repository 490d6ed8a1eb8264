"""Labels: the checks, the YAML ``labels:`` section, per-label defaults at add time, the
``torrent.list`` filter and ``torrent.set``; through the real RPC methods of a Session."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from session_harness import content, make_session, single
from twisted.internet import defer
from twisted.python.failure import Failure

from btd.core.config import ConfigError, parse_config
from btd.core.config_render import plain_config, reload_diff, to_yaml
from btd.core.labels import MAX_LABEL_LENGTH, MAX_LABELS, check_label, check_labels, label_defaults
from btd.core.metainfo import parse_metainfo
from btd.core.rpc import errors as codes
from btd.core.rpc.errors import RpcError
from btd.core.rpc.torrent_methods import torrent_methods
from btd.core.service import apply_live
from btd.core.torrent_settings import SettingError, check_add, check_label_defaults

ENV = {"HOME": "/home/u"}


# -- checks ------------------------------------------------------------------------------------
def test_a_label_is_trimmed_and_checked() -> None:
    assert check_label("  tv ") == "tv"
    assert check_label("x" * MAX_LABEL_LENGTH) == "x" * MAX_LABEL_LENGTH
    for bad in ("", "   ", "x" * (MAX_LABEL_LENGTH + 1), "a\nb", "a\x00b", "a\x7fb", 5, None):
        with pytest.raises(ValueError):
            check_label(bad)


def test_labels_keep_order_drop_duplicates_and_are_bounded() -> None:
    assert check_labels(["tv", " hd", "tv", "hd "]) == ["tv", "hd"]
    assert check_labels([]) == []
    assert len(check_labels([f"l{i}" for i in range(MAX_LABELS)])) == MAX_LABELS
    with pytest.raises(ValueError, match="at most"):
        check_labels([f"l{i}" for i in range(MAX_LABELS + 1)])
    for bad in ("tv", {"tv": 1}, ["tv", 3]):
        with pytest.raises(ValueError):
            check_labels(bad)


def test_labels_is_an_add_time_and_settable_setting() -> None:
    assert check_add({"labels": [" tv"]}) == {"labels": ["tv"]}
    with pytest.raises(SettingError) as info:
        check_add({"labels": "tv"})
    assert info.value.name == "labels"


def test_label_defaults_first_label_wins_and_given_beats_them() -> None:
    table = {"tv": {"save_path": "/srv/tv", "paused": True}, "hd": {"save_path": "/srv/hd"}}
    assert label_defaults({"labels": ["hd", "tv"]}, table) == {
        "labels": ["hd", "tv"],
        "save_path": "/srv/hd",  # hd comes first
        "paused": True,  # only tv has it
    }
    given = {"labels": ["tv"], "save_path": "/mine"}
    assert label_defaults(given, table)["save_path"] == "/mine"
    assert label_defaults({"labels": ["none"]}, table) == {"labels": ["none"]}
    assert label_defaults({"save_path": "/x"}, table) == {"save_path": "/x"}


def test_a_label_default_may_be_any_add_time_setting_but_labels() -> None:
    assert check_label_defaults({"strategy": "sequential", "paused": False}) == {
        "strategy": "sequential",
        "paused": False,
    }
    for raw, name in (({"labels": ["x"]}, "labels"), ({"paused": "no"}, "paused")):
        with pytest.raises(SettingError) as info:
            check_label_defaults(raw)
        assert info.value.name == name


# -- the YAML section --------------------------------------------------------------------------
def test_labels_section_is_read_and_checked() -> None:
    config = parse_config(
        "labels:\n  tv:\n    save_path: ~/tv\n    strategy: sequential\n  empty:\n", env=ENV
    )
    home = str(Path("~/tv").expanduser())  # as torrent.add expands it: the daemon's home
    assert config.labels == {"tv": {"save_path": home, "strategy": "sequential"}, "empty": {}}
    assert parse_config("", env=ENV).labels == {}
    assert plain_config(config)["labels"]["tv"]["save_path"] == home
    assert parse_config(to_yaml(config), env=ENV) == config
    assert parse_config(to_yaml(config), env=ENV).labels == config.labels


@pytest.mark.parametrize(
    "text, key, line",
    [
        ("labels:\n  tv:\n    save_path: relative\n", "labels.tv.save_path", 3),
        ("labels:\n  tv:\n    paused: maybe\n", "labels.tv.paused", 3),
        ("labels:\n  tv:\n    nonsense: 1\n", "labels.tv.nonsense", 3),
        ("labels:\n  tv:\n    labels: [a]\n", "labels.tv.labels", 3),
        ("labels:\n  tv: 3\n", "labels.tv", 2),
        ("labels: [tv]\n", "labels", 1),
        ('labels:\n  "a\\tb": {}\n', "labels.a\tb", 2),
        ("labels:\n  tv: {}\n  tv: {}\n", "labels.tv", 3),
    ],
)
def test_bad_label_defaults_are_refused_with_the_key_named(text: str, key: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "btd.yaml", ENV)
    assert info.value.key == key
    assert info.value.line == line


def test_a_changed_labels_section_is_live() -> None:
    old = parse_config("", env=ENV)
    new = parse_config("labels:\n  tv: {paused: true}\n", env=ENV)
    live, restart = reload_diff(old, new)
    assert live == ["labels"] and restart == []
    assert apply_live(old, new, live).labels == new.labels
    assert apply_live(old, new, []).labels == {}


# -- through the RPC methods -------------------------------------------------------------------
TORRENT = single(b"file.bin", content(40_000, 1))
HEX = parse_metainfo(TORRENT).hex
OTHER = single(b"other.bin", content(20_000, 2))
OTHER_HEX = parse_metainfo(OTHER).hex


class Rpc:
    def __init__(self, tmp_path: Path, labels: dict[str, dict[str, Any]]) -> None:
        self.session = make_session(tmp_path)
        self.session.config = dataclasses.replace(
            self.session.config,
            labels=MappingProxyType({k: MappingProxyType(v) for k, v in labels.items()}),
        )
        self.methods = torrent_methods(self.session)
        self.tmp = tmp_path

    def call(self, name: str, **params: Any) -> Any:
        value = self.methods[name](**params)
        if isinstance(value, defer.Deferred):
            out: list[Any] = []
            value.addBoth(out.append)
            assert out, f"{name} did not answer"
            if isinstance(out[0], Failure):
                out[0].raiseException()
            return out[0]
        return value

    def add(self, torrent: bytes = TORRENT, **params: Any) -> dict[str, Any]:
        return self.call("torrent.add", metainfo=base64.b64encode(torrent).decode(), **params)

    def stored(self, hex_: str) -> dict[str, Any]:
        return json.loads((self.tmp / "state" / "torrents" / f"{hex_}.json").read_text())


def test_add_with_labels_takes_the_label_defaults(tmp_path: Path) -> None:
    tv = tmp_path / "tv"
    rpc = Rpc(tmp_path, {"tv": {"save_path": str(tv), "strategy": "sequential"}})
    rpc.add(labels=["tv", "hd"])
    got = rpc.call("torrent.get", info_hash=HEX)
    assert got["labels"] == ["tv", "hd"]
    assert got["save_path"] == str(tv)
    assert got["strategy"] == "sequential"
    assert tv.is_dir()  # the save path was made there
    stored = rpc.stored(HEX)
    assert stored["labels"] == ["tv", "hd"] and stored["save_path"] == str(tv)


def test_an_explicit_option_beats_the_label_default(tmp_path: Path) -> None:
    rpc = Rpc(tmp_path, {"tv": {"save_path": str(tmp_path / "tv"), "paused": True}})
    mine = tmp_path / "mine"
    rpc.add(labels=["tv"], save_path=str(mine), paused=False)
    got = rpc.call("torrent.get", info_hash=HEX)
    assert got["save_path"] == str(mine)
    assert got["state"] != "paused"
    rpc.add(OTHER)  # no label: the session's defaults
    assert rpc.call("torrent.get", info_hash=OTHER_HEX)["save_path"] == str(tmp_path / "dl")


def test_list_filters_by_label_and_set_replaces_labels(tmp_path: Path) -> None:
    rpc = Rpc(tmp_path, {})
    rpc.add(labels=["tv"])
    rpc.add(OTHER, labels=["movies", "tv"])
    assert [t["info_hash"] for t in rpc.call("torrent.list", label="tv")] == [HEX, OTHER_HEX]
    assert [t["info_hash"] for t in rpc.call("torrent.list", label=" movies ")] == [OTHER_HEX]
    assert rpc.call("torrent.list", label="TV") == []
    assert rpc.call("torrent.list", fields=["labels"], label="movies") == [
        {"labels": ["movies", "tv"]}
    ]

    reply = rpc.call("torrent.set", info_hash=HEX, labels=["docs", " tv"])
    assert reply["labels"] == ["docs", "tv"]
    assert rpc.stored(HEX)["labels"] == ["docs", "tv"]
    assert [t["info_hash"] for t in rpc.call("torrent.list", label="docs")] == [HEX]
    rpc.call("torrent.set", info_hash=HEX, labels=[])
    assert rpc.call("torrent.get", info_hash=HEX)["labels"] == []
    assert rpc.stored(HEX)["labels"] == []


@pytest.mark.parametrize("bad", [["x" * 65], "tv", [1], [""], ["a\x1bb"]])
def test_bad_labels_are_refused_by_name(tmp_path: Path, bad: Any) -> None:
    rpc = Rpc(tmp_path, {})
    one = bad[0] if isinstance(bad, list) and isinstance(bad[0], str) else 5  # bad for list
    for call in (
        lambda: rpc.add(labels=bad),
        lambda: rpc.call("torrent.list", label=one),
    ):
        with pytest.raises(RpcError) as info:
            call()
        assert info.value.code == codes.INVALID_PARAMS
        assert info.value.data["field"] in ("labels", "label")
    assert rpc.call("torrent.list") == []


def test_labels_survive_a_restart(tmp_path: Path) -> None:
    rpc = Rpc(tmp_path, {"tv": {"save_path": str(tmp_path / "tv")}})
    rpc.add(labels=["tv"])
    again = make_session(tmp_path)  # no labels: section any more; the stored values stay
    again.start()
    again.reactor.advance(0)
    t = again.find(HEX)
    assert t.options.labels == ("tv",)
    assert t.options.save_path == tmp_path / "tv"


def test_a_restart_does_not_apply_label_defaults_again(tmp_path: Path) -> None:
    """The stored record is the outcome of the add: a label default added to the YAML later
    does not change the goals (null: the session's) of a torrent added before."""
    rpc = Rpc(tmp_path, {})
    rpc.add(labels=["tv"])
    assert rpc.stored(HEX)["ratio_limit"] is None
    again = make_session(tmp_path)
    again.config = dataclasses.replace(
        again.config,
        labels=MappingProxyType({"tv": MappingProxyType({"ratio_limit": 2.0})}),
    )
    again.start()
    again.reactor.advance(0)
    assert again.find(HEX).options.ratio_limit is None


def test_magnets_and_batch_items_take_label_defaults_too(tmp_path: Path) -> None:
    tv = tmp_path / "tv"
    rpc = Rpc(tmp_path, {"tv": {"save_path": str(tv)}})
    magnet = "magnet:?xt=urn:btih:" + "5a" * 20 + "&dn=show"
    rpc.call("torrent.add", magnet=magnet, labels=["tv"])
    (waiting,) = rpc.call("torrent.list", label="tv")
    assert waiting["state"] == "metadata" and waiting["save_path"] == str(tv)
    assert waiting["labels"] == ["tv"]
    item = {"metainfo": base64.b64encode(TORRENT).decode(), "labels": ["tv"]}
    (result,) = rpc.call("torrent.add", torrents=[item])
    assert result["added"] is True
    assert rpc.call("torrent.get", info_hash=HEX)["save_path"] == str(tv)

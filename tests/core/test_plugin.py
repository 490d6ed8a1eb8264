"""The plugin manager: enabling, loading errors, isolation, and the documented contract."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from btd.core import hookspecs
from btd.core.errors import ConfigError
from btd.core.plugin import DEFAULT_PLUGINS, hookimpl, make_plugin_manager

ROOT = Path(__file__).resolve().parents[2]


class Good:
    def __init__(self) -> None:
        self.events: list[object] = []

    @hookimpl
    def btd_torrent_event(self, event: object) -> None:
        self.events.append(event)

    @hookimpl
    def btd_tracker_client(self, url: str) -> object | None:
        return "good-client" if url.startswith("udp:") else None


class Raising:
    @hookimpl
    def btd_torrent_event(self, event: object) -> None:
        raise RuntimeError("boom")

    @hookimpl
    def btd_tracker_client(self, url: str) -> object | None:
        raise RuntimeError("broken")


def loaders(**plugins: object):
    return {name: (lambda p=p: p) for name, p in plugins.items()}


def test_default_set_when_no_plugins_key() -> None:
    host = make_plugin_manager(None)
    assert host.enabled == DEFAULT_PLUGINS


def test_exactly_the_listed_plugins_are_enabled() -> None:
    host = make_plugin_manager({"sequential": {}})
    assert host.enabled == ("sequential",)
    assert host.pm.get_plugin("rarest_first") is None


def test_unknown_plugin_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"plugins\.nope: unknown plugin"):
        make_plugin_manager({"nope": {}})


def test_plugin_that_fails_to_import_is_a_config_error() -> None:
    def broken() -> object:
        raise ImportError("No module named 'missing_dependency'")

    with pytest.raises(ConfigError, match=r"plugins\.bad: plugin failed to load: ImportError"):
        make_plugin_manager({"bad": {}}, available={"bad": broken})


def test_plugin_with_unknown_hook_is_a_config_error() -> None:
    class Typo:
        @hookimpl
        def btd_torent_event(self, event: object) -> None: ...

    with pytest.raises(ConfigError, match=r"plugins\.typo: plugin is not valid"):
        make_plugin_manager({"typo": {}}, available=loaders(typo=Typo()))


def test_raising_hook_is_isolated() -> None:
    good = Good()
    host = make_plugin_manager(
        {"raising": {}, "good": {}}, available=loaders(raising=Raising(), good=good)
    )
    assert host.call("btd_torrent_event", event="e1") == []
    assert good.events == ["e1"]
    # firstresult: the raising plugin (registered first, so asked last) never blocks the answer
    assert host.first("btd_tracker_client", url="udp://x") == "good-client"
    assert host.first("btd_tracker_client", url="http://x") is None


def test_configure_errors_are_fatal_and_named() -> None:
    class Picky:
        @hookimpl
        def btd_configure(self, config: object) -> None:
            raise ValueError("retries must be >= 0")

    host = make_plugin_manager({"picky": {}}, available=loaders(picky=Picky()))
    with pytest.raises(ConfigError, match=r"plugins\.picky: plugin failed to configure"):
        host.configure(SimpleNamespace())


def test_plugin_info_lists_hooks() -> None:
    host = make_plugin_manager({"good": {}}, available=loaders(good=Good()))
    (row,) = host.plugin_info()
    assert row["name"] == "good" and row["enabled"]
    assert row["hooks"] == ["btd_torrent_event", "btd_tracker_client"]


def hook_names() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("btd_")
    ]


def test_every_hook_is_documented_in_the_module() -> None:
    for name in hook_names():
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"{name} has no docstring"


def test_every_hook_is_in_docs_plugins_md() -> None:
    text = (ROOT / "docs" / "PLUGINS.md").read_text()
    documented = set(re.findall(r"^### `(btd_\w+)", text, flags=re.M))
    missing = set(hook_names()) - documented
    assert not missing, f"hooks missing from docs/PLUGINS.md: {sorted(missing)}"
    stale = documented - set(hook_names())
    assert not stale, f"docs/PLUGINS.md documents hooks that do not exist: {sorted(stale)}"

"""The plugin manager: enabling, loading errors, isolation, and the documented contract."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pluggy
import pytest
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from btd.core import hookspecs
from btd.core import plugin as plugin_module
from btd.core.config import parse_config
from btd.core.errors import ConfigError
from btd.core.plugin import (
    BUILTIN_PLUGINS,
    DEFAULT_PLUGINS,
    PROJECT,
    hookimpl,
    hookspec,
    make_plugin_manager,
    refused_options,
)
from btd.core.plugin_config import SettingLines, unknown_key

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


def test_docs_give_each_hooks_arguments() -> None:
    text = (ROOT / "docs" / "PLUGINS.md").read_text()
    headings = dict(re.findall(r"^### `(btd_\w+)\((.*?)\)`", text, flags=re.M))
    for name in hook_names():
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert headings.get(name) == params, f"docs/PLUGINS.md: {name}({headings.get(name)})"


# -- the caller's rules --------------------------------------------------------------------------
class Wrapping:
    @hookimpl(wrapper=True)
    def btd_torrent_event(self, event: object) -> Iterator[None]:
        return (yield)


class OldWrapping:
    @hookimpl(hookwrapper=True)
    def btd_tracker_client(self, url: str) -> Iterator[None]:
        yield


@pytest.mark.parametrize(
    ("plugin", "hook"),
    [(Wrapping(), "btd_torrent_event (wrapper=True)"), (OldWrapping(), "btd_tracker_client")],
)
def test_wrapper_implementations_are_refused_by_name(plugin: object, hook: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_plugin_manager({"wrapping": {}}, available=loaders(wrapping=plugin))
    assert info.value.key == "plugins.wrapping"
    assert hook in info.value.reason and "cannot be honoured" in info.value.reason


def test_a_refused_extra_is_not_left_registered() -> None:
    host = make_plugin_manager({})
    with pytest.raises(ConfigError, match=r"plugins\.core: .*wrapper=True"):
        host.register("core", Wrapping())
    assert host.pm.get_plugin("core") is None
    assert host.call("btd_torrent_event", event="e") == []


def test_historic_hooks_are_refused() -> None:
    class Specs:
        @hookspec(historic=True)
        def btd_history(self, x: int) -> None: ...

    class Remembers:
        @hookimpl
        def btd_history(self, x: int) -> None: ...

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(Specs)
    plugin = Remembers()
    pm.register(plugin)
    assert refused_options(pm, plugin) == ["btd_history (historic)"]
    # and btd itself declares none, since its caller could not replay them
    assert all(not getattr(hookspecs, n).btd_spec["historic"] for n in hook_names())


def test_tryfirst_and_trylast_are_honoured() -> None:
    class Early:
        @hookimpl(tryfirst=True)
        def btd_tracker_client(self, url: str) -> str:
            return "early"

    class Late:
        @hookimpl(trylast=True)
        def btd_tracker_client(self, url: str) -> str:
            return "late"

    host = make_plugin_manager(
        {"early": {}, "late": {}}, available=loaders(early=Early(), late=Late())
    )
    assert host.first("btd_tracker_client", url="x") == "early"
    assert host.call("btd_tracker_client", url="x") == ["early", "late"]


def test_the_spec_module_is_the_contract_and_imports_no_host() -> None:
    tree = ast.parse((ROOT / "core" / "hookspecs.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {m for m in imported if m.startswith("btd.core.plugin")}
    assert plugin_module.hookimpl is hookspecs.hookimpl  # authors import it from plugin.py


# -- plugins as instances ------------------------------------------------------------------------
def test_builtins_are_classes_instantiated_per_manager() -> None:
    everything = {name: {} for name in BUILTIN_PLUGINS}
    one, two = make_plugin_manager(everything), make_plugin_manager(everything)
    for name in BUILTIN_PLUGINS:
        a, b = one.pm.get_plugin(name), two.pm.get_plugin(name)
        assert not isinstance(a, ModuleType), name
        assert type(a) is type(b) and a is not b, name


def test_two_daemons_hold_independent_plugin_state() -> None:
    one = make_plugin_manager({"sequential": {}, "watch_dir": {}, "notify_command": {}})
    two = make_plugin_manager({"sequential": {}, "watch_dir": {}, "notify_command": {}})
    first = parse_config(
        "plugins:\n  sequential: {window: 8}\n"
        "  watch_dir: {folders: [{path: /srv/in}]}\n"
        "  notify_command: {commands: [{argv: [/bin/true]}]}\n",
        "one.yaml",
    )
    second = parse_config(
        "plugins:\n  sequential: {}\n  watch_dir: {folders: []}\n  notify_command: {}\n",
        "two.yaml",
    )
    one.configure(first)
    two.configure(second)
    picker = one.first("btd_piece_picker", name="sequential", view=None)
    assert picker.window == 8
    assert two.first("btd_piece_picker", name="sequential", view=None).window == 64
    assert [f.path for f in one.pm.get_plugin("watch_dir").folders] == [Path("/srv/in")]
    assert two.pm.get_plugin("watch_dir").folders == ()
    assert one.pm.get_plugin("notify_command").runner.settings.commands
    assert not two.pm.get_plugin("notify_command").runner.settings.commands


def test_entry_points_may_name_a_module_a_class_or_a_factory() -> None:
    made: list[object] = []

    def factory() -> Good:
        made.append(Good())
        return made[-1]  # type: ignore[return-value]

    module = ModuleType("plain")
    host = make_plugin_manager(
        {"cls": {}, "fn": {}, "mod": {}},
        available={"cls": lambda: Good, "fn": lambda: factory, "mod": lambda: module},
    )
    assert isinstance(host.pm.get_plugin("cls"), Good)
    assert host.pm.get_plugin("fn") is made[0]
    assert host.pm.get_plugin("mod") is module


# -- BTD_TRACE_HOOKS -----------------------------------------------------------------------------
@pytest.fixture()
def logged() -> Iterator[list[dict[str, object]]]:
    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def traces(events: list[dict[str, object]]) -> list[str]:
    return [
        formatEvent(e)
        for e in events
        if e.get("log_namespace") == "btd.plugins.trace" and e.get("log_level") == LogLevel.info
    ]


def test_trace_hooks_logs_every_call(
    monkeypatch: pytest.MonkeyPatch, logged: list[dict[str, object]]
) -> None:
    monkeypatch.setenv("BTD_TRACE_HOOKS", "1")
    host = make_plugin_manager(
        {"raising": {}, "good": {}}, available=loaders(raising=Raising(), good=Good())
    )
    assert host.trace
    host.first("btd_tracker_client", url="udp://t.example/" + "x" * 500)
    lines = traces(logged)
    assert len(lines) == 1
    assert re.fullmatch(
        r"hook btd_tracker_client good\(url='udp://t\.example/x+\.\.\.\) -> 'good-client'"
        r" in \d+\.\d{3} ms",
        lines[0],
    )
    assert len(lines[0]) < 300  # arguments are cut short
    host.call("btd_torrent_event", event="e1")
    lines = traces(logged)[1:]
    assert lines[0].startswith("hook btd_torrent_event good(event='e1') -> None in ")
    assert lines[1].startswith("hook btd_torrent_event raising(event='e1') raised RuntimeError")
    # pluggy's own caller (``host.hook``, used for the resume store) is traced too
    host.hook.btd_tracker_client(url="udp://x")
    assert re.match(
        r"hook btd_tracker_client \[good,raising\]\(url='udp://x'\) -> ", traces(logged)[-1]
    )


def test_no_trace_without_the_variable(
    monkeypatch: pytest.MonkeyPatch, logged: list[dict[str, object]]
) -> None:
    monkeypatch.delenv("BTD_TRACE_HOOKS", raising=False)
    host = make_plugin_manager({"good": {}}, available=loaders(good=Good()))
    host.first("btd_tracker_client", url="udp://x")
    host.hook.btd_tracker_client(url="udp://x")
    assert not host.trace and traces(logged) == []
    monkeypatch.setenv("BTD_TRACE_HOOKS", "0")
    assert not make_plugin_manager({}).trace


# -- plugin configuration errors -----------------------------------------------------------------
def test_a_typo_in_plugin_settings_gives_file_line_and_a_suggestion() -> None:
    text = "session:\n  upload_slots: 4\nplugins:\n  watch_dir:\n    folderz: []\n"
    config = parse_config(text, "/etc/btd/btd.yaml")
    host = make_plugin_manager(config.plugins)
    with pytest.raises(ConfigError) as info:
        host.configure(config)
    assert str(info.value) == (
        "/etc/btd/btd.yaml:5: plugins.watch_dir.folderz: unknown key "
        "(did you mean folders? known: folders)"
    )


def test_errors_deep_in_plugin_settings_name_the_line_of_the_key() -> None:
    text = (
        "plugins:\n"
        "  notify_command:\n"
        "    commands:\n"
        "      - argv: [ok]\n"
        "      - argv: [x]\n"
        "        timeout: -1\n"
        "      - argv: [y]\n"
    )
    config = parse_config(text, "btd.yaml")
    with pytest.raises(ConfigError) as info:
        make_plugin_manager(config.plugins).configure(config)
    assert info.value.filename == "btd.yaml" and info.value.line == 6
    assert info.value.key == "plugins.notify_command.commands[1].timeout"
    # a key that is missing is placed where its mapping starts
    config = parse_config(
        "plugins:\n  watch_dir:\n    folders:\n      - {paused: true}\n", "b.yaml"
    )
    with pytest.raises(ConfigError, match=r"^b\.yaml:4: plugins\.watch_dir\.folders\[0\]"):
        make_plugin_manager(config.plugins).configure(config)


def test_plugin_errors_without_a_file_are_unchanged() -> None:
    host = make_plugin_manager({"watch_dir": {}})
    with pytest.raises(ConfigError) as info:
        host.configure(SimpleNamespace(plugins={"watch_dir": {"folderz": []}}))
    assert info.value.filename is None
    assert str(info.value).startswith("plugins.watch_dir.folderz: unknown key (did you mean")


def test_setting_lines_fall_back_to_the_enclosing_key() -> None:
    where = SettingLines("f", {"plugins.p": 2, "plugins.p.a": 3, "plugins.p.a[0]": 4})
    assert where.line("plugins.p.a[0]") == 4
    assert where.line("plugins.p.a[0].b.c") == 4
    assert where.line("plugins.p.a[1]") == 3
    assert where.line("plugins.p.zzz") == 2
    assert where.line("plugins.q") is None and where.line("") is None
    assert unknown_key("folderz", ("folders", "paused")).startswith(
        "unknown key (did you mean folders? known: folders, paused)"
    )
    assert unknown_key("qqq", ("folders",)) == "unknown key (known: folders)"


def test_a_typo_in_a_plugin_name_gives_file_line_and_a_suggestion() -> None:
    from btd.core.daemon import load_plugins

    config = parse_config("plugins:\n  rarest_first: {}\n  watchdir: {}\n", "/etc/btd.yaml")
    with pytest.raises(ConfigError) as info:
        load_plugins(config)
    assert str(info.value).startswith(
        "/etc/btd.yaml:3: plugins.watchdir: unknown plugin (did you mean watch_dir? available: "
    )

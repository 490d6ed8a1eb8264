"""The seams between btd's parts, read from the source with ``ast`` (nothing is imported).

- ``btd.ctl`` (btctl) imports only the standard library, rich (inside functions, for
  `watch`), ``btd.ctl.*`` and a short named list of light ``btd.core`` modules; nothing it
  reaches, directly or through those, imports Twisted, PyYAML, jsonrpcserver or pluggy.
- ``btd.core`` and ``btd.plugins`` never import ``btd.ctl``.
- The pure (sans-I/O) modules, and every btd module they reach, import nothing from Twisted.

Type-only imports (under ``if TYPE_CHECKING:``) count: they are edges of the design too.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"btd.core": ROOT / "core", "btd.ctl": ROOT / "ctl", "btd.plugins": ROOT / "plugins"}

# What btctl may use of the engine's package: the client side of the control socket and
# small pure helpers. Keep it short; a new entry needs a reason.
CTL_MAY_IMPORT = frozenset(
    {
        "btd.core",  # the package itself (``from btd.core import paths``)
        "btd.core.rpc",
        "btd.core.rpc.client",  # talking to the daemon
        "btd.core.rpc.json_text",  # reading its replies (a list of 10,000 torrents is 7 MB)
        "btd.core.rpc.errors",  # its error codes
        "btd.core.errors",  # BtdError
        "btd.core.paths",  # the default socket, computed as the daemon does
        "btd.core.version",  # --version, man page, `create`'s "created by"
        "btd.core.torrent_create",  # `btctl create`
        "btd.core.torrent_create_v2",  # `btctl create --v2/--hybrid`
        "btd.core.merkle",  # its merkle trees
        "btd.core.bencode",  # `btctl add --only`: how many files a .torrent has
    }
)
HEAVY = frozenset({"twisted", "yaml", "jsonrpcserver", "pluggy", "treq"})
RICH_ALLOWED_IN = frozenset({"btd.ctl.watch", "btd.ctl.watch_view"})  # only inside functions

# Sans-I/O modules: bytes and values in, bytes and values out; no reactor, no Twisted.
PURE = (
    "btd.core.bencode",
    "btd.core.metainfo",
    "btd.core.bitfield",
    "btd.core.wire.codec",
    "btd.core.wire.extension",
    "btd.core.wire.fast",
    "btd.core.wire.messages",
    "btd.core.wire.metadata",
    "btd.core.tracker.codec",
    "btd.core.rpc.framing",
    "btd.core.magnet",
    "btd.core.pieces",
    "btd.core.picking",
    "btd.core.choker",
    "btd.core.compact",
    "btd.core.torrent_state",
    "btd.core.availability",
    "btd.core.plugin_config",
    "btd.core.torrent_create",
    "btd.core.torrent_create_v2",
    "btd.core.merkle",
    "btd.core.wire.mse",
    "btd.core.bandwidth",
    "btd.core.alt_speed",
    "btd.plugins.udp_tracker.codec",
    "btd.plugins.pex_codec",
    "btd.plugins.dht.krpc",
    "btd.plugins.http.settings",
    "btd.plugins.http.passwords",
    "btd.plugins.http.guard",
    "btd.plugins.http.ids",
    "btd.plugins.http.fields",
    "btd.plugins.web_seed.ranges",
)


@dataclass(frozen=True)
class Import:
    """One imported module name, and whether it is imported when the module loads."""

    name: str
    at_load: bool  # False: inside a function or under TYPE_CHECKING (not when it loads)


def imports_in(source: str, module: str, is_package: bool = False) -> list[Import]:
    """Every module ``source`` (the text of ``module``) imports, resolved to absolute names.

    ``from a.b import c`` yields ``a.b`` and ``a.b.c`` (c may be a module); relative imports
    are resolved against ``module``'s package.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = at_load and not (
                isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            )
            if isinstance(child, ast.Import):
                found.extend(Import(alias.name, at_load) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (child.level - 1)]
                    base = ".".join([*parts, base] if base else parts)
                found.append(Import(base, at_load))
                found.extend(Import(f"{base}.{a.name}", at_load) for a in child.names)
            visit(child, inside)

    visit(ast.parse(source), True)
    return found


def module_file(name: str) -> Path | None:
    """The source file of a btd module, or None when ``name`` is not one."""
    for prefix, folder in FOLDERS.items():
        if name == prefix or name.startswith(prefix + "."):
            rest = name[len(prefix) + 1 :].split(".") if name != prefix else []
            path = folder.joinpath(*rest)
            for candidate in (path.with_suffix(".py"), path / "__init__.py"):
                if rest and candidate.suffix == ".py" and candidate.is_file():
                    return candidate
                if candidate.name == "__init__.py" and candidate.is_file():
                    return candidate
    return None


def module_imports(name: str) -> list[Import]:
    path = module_file(name)
    assert path is not None, name
    return imports_in(path.read_text(), name, path.name == "__init__.py")


def modules_under(prefix: str) -> list[str]:
    folder = FOLDERS[prefix]
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join([prefix, *parts]))
    return names


def reached(start: Iterable[str]) -> set[str]:
    """``start`` and every btd module it imports, transitively."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        todo += [i.name for i in module_imports(name) if module_file(i.name) is not None]
    return seen


def top(name: str) -> str:
    return name.split(".")[0]


def is_stdlib(name: str) -> bool:
    return top(name) in sys.stdlib_module_names or top(name) == "__future__"


# -- the checks, as functions of (module name, imports), so they can be tested on their own --


def ctl_violations(module: str, imports: Iterable[Import]) -> list[str]:
    bad = []
    for imp in imports:
        if imp.name.startswith("btd.ctl") or is_stdlib(imp.name):
            continue
        if top(imp.name) == "rich":
            if module not in RICH_ALLOWED_IN or imp.at_load:
                bad.append(f"{module}: rich ({imp.name}) outside watch's functions")
            continue
        if imp.name.startswith("btd.") and imp.name in CTL_MAY_IMPORT:
            continue
        if imp.name.startswith("btd.") and module_file(imp.name) is None:
            continue  # ``from btd.core.x import name``: the module itself is checked
        bad.append(f"{module} imports {imp.name}")
    return bad


def ctl_importers(module: str, imports: Iterable[Import]) -> list[str]:
    return [
        f"{module} imports {i.name}" for i in imports if i.name.split(".")[:2] == ["btd", "ctl"]
    ]


def twisted_importers(module: str, imports: Iterable[Import]) -> list[str]:
    return [f"{module} imports {i.name}" for i in imports if top(i.name) == "twisted"]


def heavy_importers(module: str, imports: Iterable[Import]) -> list[str]:
    return [f"{module} imports {i.name}" for i in imports if top(i.name) in HEAVY]


# -- the checkers can fail -------------------------------------------------------------------


def test_imports_in_resolves_names_and_where_they_load() -> None:
    source = (
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "from btd.core import paths\n"
        "from . import format\n"
        "from .base import Output\n"
        "if TYPE_CHECKING:\n"
        "    from btd.core.session import Session\n"
        "def f():\n"
        "    import rich.console\n"
        "class C:\n"
        "    def m(self):\n"
        "        from twisted.internet import reactor\n"
    )
    found = {(i.name, i.at_load) for i in imports_in(source, "btd.ctl.torrent")}
    assert {
        ("os", True),
        ("btd.core.paths", True),
        ("btd.ctl.format", True),
        ("btd.ctl.base", True),
        ("btd.ctl.base.Output", True),
        ("btd.core.session", False),  # type-only imports are found (they are edges too)
        ("rich.console", False),
        ("twisted.internet", False),
    } <= found


def test_checkers_catch_a_synthetic_offender() -> None:
    source = (
        "import json\n"
        "import rich\n"
        "import yaml\n"
        "from btd.core.session import Session\n"
        "from btd.core.rpc.client import RpcClient\n"
        "from btd.ctl.base import Output\n"
        "def f():\n"
        "    from twisted.internet import reactor\n"
    )
    imports = imports_in(source, "btd.ctl.torrent")
    assert ctl_violations("btd.ctl.torrent", imports) == [
        "btd.ctl.torrent: rich (rich) outside watch's functions",
        "btd.ctl.torrent imports yaml",
        "btd.ctl.torrent imports btd.core.session",
        "btd.ctl.torrent imports twisted.internet",
        "btd.ctl.torrent imports twisted.internet.reactor",
    ]
    inside = imports_in("def render():\n    import rich.text\n", "btd.ctl.watch_view")
    assert ctl_violations("btd.ctl.watch_view", inside) == []
    assert ctl_importers("btd.core.x", imports) == [
        "btd.core.x imports btd.ctl.base",
        "btd.core.x imports btd.ctl.base.Output",
    ]
    twisted = ["m imports twisted.internet", "m imports twisted.internet.reactor"]
    assert twisted_importers("m", imports) == twisted
    assert heavy_importers("m", imports) == ["m imports yaml", *twisted]
    assert reached(["btd.core.torrent_create"]) >= {"btd.core.bencode", "btd.core.errors"}


# -- the rules, on the real tree -----------------------------------------------------------------


def test_ctl_imports_only_stdlib_rich_and_light_core_modules() -> None:
    names = modules_under("btd.ctl")
    assert "btd.ctl.main" in names and "btd.ctl.parser" in names
    bad = [v for name in names for v in ctl_violations(name, module_imports(name))]
    assert bad == []


def test_nothing_btctl_reaches_is_heavy() -> None:
    closure = reached(modules_under("btd.ctl"))
    assert "btd.core.rpc.client" in closure
    bad = [v for name in sorted(closure) for v in heavy_importers(name, module_imports(name))]
    assert bad == []


@pytest.mark.parametrize("prefix", ["btd.core", "btd.plugins"])
def test_engine_and_plugins_never_import_ctl(prefix: str) -> None:
    names = modules_under(prefix)
    assert len(names) > 5
    bad = [v for name in names for v in ctl_importers(name, module_imports(name))]
    assert bad == []


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_nothing_from_twisted(module: str) -> None:
    assert module_file(module) is not None, f"{module} moved: update PURE"
    bad = [
        v
        for name in sorted(reached([module]))
        for v in twisted_importers(name, module_imports(name))
    ]
    assert bad == []

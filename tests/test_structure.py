"""The shape of the source tree: no import circles, every module documented, long modules say why.

These read the sources with ``ast``; nothing is imported, so a circle that only a type checker
would follow (an import under ``if TYPE_CHECKING:``) still counts.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"core": "btd.core", "ctl": "btd.ctl", "plugins": "btd.plugins"}
LONG_MODULE = 450  # lines; past this a module says at its top why it is one module


def source_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports_of(name: str, source: str, known: set[str], is_package: bool = False) -> set[str]:
    """The modules of ``known`` that ``source`` (module ``name``) imports, anywhere in its body."""
    edges: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            edges.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join([*here, *([node.module] if node.module else [])])
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            edges.update(m for m in submodules if m in known)
            if any(m not in known for m in submodules) and base in known:
                edges.add(base)  # a name defined in the module itself
    edges.discard(name)
    return edges


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = source_modules(root)
    known = set(modules)
    return {
        name: imports_of(name, path.read_text(), known, path.name == "__init__.py")
        for name, path in modules.items()
    }


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
    return found


def test_the_circle_finder_finds_a_circle_through_a_type_only_import():
    known = {"btd.core.a", "btd.core.b", "btd.core.c"}
    a = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from btd.core.b import B\n"
    b = "def f():\n    from btd.core import c\n"
    c = "import btd.core.a\n"
    graph = {
        "btd.core.a": imports_of("btd.core.a", a, known),
        "btd.core.b": imports_of("btd.core.b", b, known),
        "btd.core.c": imports_of("btd.core.c", c, known),
    }
    assert circles(graph) == [["btd.core.a", "btd.core.b", "btd.core.c"]]
    graph["btd.core.c"] = set()
    assert circles(graph) == []


def test_no_import_circles_in_core_ctl_and_plugins():
    assert circles(import_graph()) == []


def test_the_btd_namespace_does_not_resolve_to_the_checkout():
    assert source_modules()["btd.core.bencode"] == ROOT / "core" / "bencode.py"


def documented_paths(text: str) -> tuple[set[str], dict[str, str]]:
    """Backticked paths in the module table, and each table row by the folders it names."""
    paths: set[str] = set()
    rows: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for path in re.findall(r"`([\w/.]+)`", first_cell):
            paths.add(path)
            if path.endswith("/"):
                rows[path] = line
    return paths, rows


def undocumented_modules(text: str, root: Path = ROOT) -> list[str]:
    """Modules neither named in the table nor named (by stem) in their folder's row."""
    paths, rows = documented_paths(text)
    missing = []
    for path in source_modules(root).values():
        rel = path.relative_to(root).as_posix()
        if path.name == "__init__.py" or rel in paths:
            continue
        folder_row = rows.get(path.parent.relative_to(root).as_posix() + "/", "")
        if f"`{path.stem}`" not in folder_row:
            missing.append(rel)
    return missing


def test_architecture_md_names_every_module():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert undocumented_modules(text) == []


def test_the_module_table_check_notices_a_missing_module():
    text = "| `core/wire/` | the wire: `codec`, `messages` |\n| `core/bencode.py` | bencode |\n"
    missing = undocumented_modules(text)
    assert "core/wire/fast.py" in missing
    assert "core/wire/codec.py" not in missing
    assert "core/bencode.py" not in missing


def test_long_modules_say_why_at_their_top():
    """A module past ~450 lines carries a ``Size:`` line in its docstring saying why."""
    unexplained = []
    for path in source_modules().values():
        source = path.read_text()
        if len(source.splitlines()) <= LONG_MODULE:
            continue
        doc = ast.get_docstring(ast.parse(source)) or ""
        if "Size:" not in doc:
            unexplained.append(path.relative_to(ROOT).as_posix())
    assert unexplained == []

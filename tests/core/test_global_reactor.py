"""Only ``btd.core.daemon`` imports the global reactor; everything else is handed one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {Path("core/daemon.py")}


def imports_global_reactor(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "twisted.internet":
            if any(alias.name == "reactor" for alias in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.Import):
            if any(alias.name == "twisted.internet.reactor" for alias in node.names):
                lines.append(node.lineno)
    return lines


def test_the_finder_finds_both_spellings() -> None:
    tree = ast.parse("from twisted.internet import reactor\nimport twisted.internet.reactor\n")
    assert imports_global_reactor(tree) == [1, 2]


def test_only_the_daemon_imports_the_global_reactor() -> None:
    found = []
    for folder in ("core", "plugins", "ctl"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel in ALLOWED:
                continue
            for line in imports_global_reactor(ast.parse(path.read_text(), str(path))):
                found.append(f"{rel}:{line}")
    assert found == []

"""Every limit in core/limits.py (the one table in the code) is in docs/SECURITY.md."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def limit_names() -> list[str]:
    tree = ast.parse((ROOT / "core" / "limits.py").read_text())
    return [
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id.isupper()
    ]


def test_every_limit_is_documented() -> None:
    names = limit_names()
    assert "PEER_INACTIVITY_TIMEOUT" in names
    security = (ROOT / "docs" / "SECURITY.md").read_text()
    assert [n for n in names if f"`{n}`" not in security] == []

"""`btctl plugins`: the daemon's plugins, enabled or not, with their version and hooks."""

from __future__ import annotations

import argparse
from typing import Any

from btd.core.rpc.client import RpcClient
from btd.ctl.base import EXIT_OK, Output, command, format_table, to_json


def _clean(value: Any) -> str:
    """Plugin names come from third-party packages: no control characters on the terminal."""
    text = "-" if value is None or value == "" else str(value)
    return "".join("?" if ord(ch) < 32 or 127 <= ord(ch) < 160 else ch for ch in text)


def human_plugins(rows: Any) -> str:
    """NAME ENABLED VERSION HOOKS, one plugin per line, in the daemon's order."""
    if not isinstance(rows, list):
        return to_json(rows)
    if not rows:
        return "no plugins"
    table = []
    for row in rows:
        if not isinstance(row, dict):
            table.append([_clean(row), "-", "-", "-"])
            continue
        hooks = row.get("hooks") or []
        table.append(
            [
                _clean(row.get("name", "?")),
                "yes" if row.get("enabled") else "no",
                _clean(row.get("version")),
                _clean(", ".join(str(h) for h in hooks)) if hooks else "-",
            ]
        )
    return format_table(("NAME", "ENABLED", "VERSION", "HOOKS"), table)


@command(
    "plugins",
    "list plugins, enabled or not, with their version and hooks",
    description="Call session.plugins: every plugin the daemon knows (built-in or installed "
    "through the btd.plugins entry points), whether it is enabled, its version and the hooks "
    "it implements (shown for enabled plugins only).",
)
def cmd_plugins(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.call("session.plugins"), human_plugins)
    return EXIT_OK

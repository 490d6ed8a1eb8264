"""`btctl plugins`: the daemon's plugins, enabled or not, with their version and hooks."""

from __future__ import annotations

import argparse
from typing import Any

from btd.core.rpc.client import RpcClient
from btd.ctl.base import EXIT_OK, Output, to_json
from btd.ctl.format import clean, format_table


def _cell(value: Any) -> str:
    """Plugin names come from third-party packages: cleaned text, ``-`` when empty."""
    return clean(None if value == "" else value, "-")


def human_plugins(rows: Any) -> str:
    """NAME ENABLED VERSION HOOKS, one plugin per line, in the daemon's order."""
    if not isinstance(rows, list):
        return to_json(rows)
    if not rows:
        return "no plugins"
    table = []
    for row in rows:
        if not isinstance(row, dict):
            table.append([_cell(row), "-", "-", "-"])
            continue
        hooks = row.get("hooks") or []
        table.append(
            [
                _cell(row.get("name", "?")),
                "yes" if row.get("enabled") else "no",
                _cell(row.get("version")),
                _cell(", ".join(str(h) for h in hooks)) if hooks else "-",
            ]
        )
    return format_table(("NAME", "ENABLED", "VERSION", "HOOKS"), table)


def cmd_plugins(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.call("session.plugins"), human_plugins)
    return EXIT_OK

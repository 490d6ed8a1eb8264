"""btctl commands that change a torrent's settings: ``set`` (``torrent.set``, any setting)
and ``queue`` (``torrent.queue``). The daemon checks the keys and values; btctl only
parses ``KEY=VALUE``. Standard library only, like the rest of btctl.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from btd.core.rpc.client import RpcClient
from btd.ctl.base import EXIT_OK, Output, UsageError
from btd.ctl.format import clean, parse_value


def _value(text: str) -> Any:
    """A value as JSON when it parses (``2.0``, ``-1``, ``null``, ``true``, ``["a"]``), else
    as a typed setting (``5M``, ``yes``: btd.ctl.format.parse_value), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return parse_value(text)


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """``["ratio_limit=2", "strategy=x"]`` -> ``{"ratio_limit": 2, "strategy": "x"}``;
    a malformed item is a UsageError (the daemon refuses unknown keys and bad values)."""
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"set: expected KEY=VALUE, got {item!r}")
        if not value:
            raise UsageError(f"set: {key} needs a value (null for the session's)")
        if key in settings:
            raise UsageError(f"set: {key} given twice")
        settings[key] = _value(value)
    return settings


def cmd_set(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    settings = parse_settings(args.settings)
    reply = client.call("torrent.set", {"info_hash": args.info_hash, **settings})

    def human(r: dict[str, Any]) -> str:
        changed = " ".join(f"{k}={clean(_show(r.get(k)))}" for k in settings)
        return f"{r.get('info_hash')} {changed}"

    out.emit(reply, human)
    return EXIT_OK


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def cmd_queue(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    reply = client.call("torrent.queue", {"info_hash": args.info_hash, "move": args.move})

    def human(r: dict[str, Any]) -> str:
        return f"{r.get('info_hash')} queue position {r.get('queue_position')} ({r.get('state')})"

    out.emit(reply, human)
    return EXIT_OK

"""btctl commands that change settings: ``settings`` (the daemon's run-time settings:
``session.get``, ``session.set``, ``session.reset``) and ``label`` (a torrent's labels:
``torrent.set labels=[...]``). Standard library only, like the rest of btctl."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from btd.core.rpc.client import RpcClient
from btd.ctl.base import EXIT_OK, Output, UsageError
from btd.ctl.format import clean, parse_value


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def split_args(items: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """``KEY=VALUE`` items (values read as YAML scalars or rates) and bare ``KEY`` items."""
    settings: dict[str, Any] = {}
    keys: list[str] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key:
            raise UsageError(f"settings: expected KEY or KEY=VALUE, got {item!r}")
        if not sep:
            keys.append(key)
            continue
        if key in settings:
            raise UsageError(f"settings: {key} given twice")
        settings[key] = parse_value(value)
    if settings and keys:
        raise UsageError(
            "settings: give KEY=VALUE to change settings or KEY to show them, not both"
        )
    return settings, keys


def human_settings(values: dict[str, Any]) -> str:
    width = max((len(k) for k in values), default=0)
    return "\n".join(f"{clean(k):<{width}}  {clean(_shown(v))}" for k, v in values.items())


def human_applied(reply: dict[str, Any]) -> str:
    saved = reply.get("saved") or {}
    lines = []
    for key, value in (reply.get("applied") or {}).items():
        where = "saved" if saved.get(key) else "not saved: lasts until the daemon restarts"
        lines.append(f"{clean(key)} = {clean(_shown(value))} ({where})")
    if reply.get("error"):
        lines.append(f"warning: {clean(reply['error'])}")
    return "\n".join(lines)


def cmd_settings(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    settings, keys = split_args(args.settings)
    if args.reset:
        if settings or keys:
            raise UsageError("settings: --reset takes the keys itself (--reset KEY ...)")
        reply = client.call("session.reset", {"keys": args.reset})
        out.emit(reply, lambda r: human_settings(r.get("reset") or {}))
        return EXIT_OK
    if settings:
        out.emit(client.call("session.set", {"settings": settings}), human_applied)
        return EXIT_OK
    values = client.call("session.get")
    if keys:
        unknown = [k for k in keys if k not in values]
        if unknown:
            raise UsageError(
                f"settings: unknown key(s) {', '.join(unknown)}; known: {', '.join(values)}"
            )
        values = {k: values[k] for k in keys}
    out.emit(values, human_settings)
    return EXIT_OK


def cmd_label(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    if args.clear == bool(args.labels):
        raise UsageError("label: give the labels (they replace the torrent's) or --clear")
    labels = [] if args.clear else list(args.labels)
    reply = client.call("torrent.set", {"info_hash": args.info_hash, "labels": labels})

    def human(r: dict[str, Any]) -> str:
        now = r.get("labels") or []
        return f"{r.get('info_hash')} labels: {', '.join(clean(str(x)) for x in now) or '(none)'}"

    out.emit(reply, human)
    return EXIT_OK

"""btctl commands about the daemon itself: status, config, methods, shutdown, and raw `call`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from btd.core.rpc.client import RpcClient
from btd.ctl.base import EXIT_OK, Output, UsageError, to_json
from btd.ctl.format import clean, first_line, format_duration, format_fields, format_table, when

# session.info keys shown first, in this order, with their human form. The daemon says
# ``config_path``; ``config`` is still accepted from older daemons.
_STATUS_KEYS = (
    "version", "pid", "uptime", "started_at", "config_path", "config", "socket", "state_dir", "plugins",
)  # fmt: skip


def _plugin_names(plugins: Any) -> str:
    """Accept a list of names, a list of {name, version} or a {name: ...} mapping."""
    if not plugins:
        return "none"
    if isinstance(plugins, dict):
        return ", ".join(str(name) for name in plugins)
    names = []
    for plugin in plugins:
        if isinstance(plugin, dict):
            name = str(plugin.get("name", "?"))
            names.append(f"{name} {plugin['version']}" if plugin.get("version") else name)
        else:
            names.append(str(plugin))
    return ", ".join(names)


def human_status(info: Any) -> str:
    if not isinstance(info, dict):
        return to_json(info)
    pairs: list[tuple[str, Any]] = []
    for key in _STATUS_KEYS:
        if key not in info:
            continue
        value = info[key]
        if key == "uptime":
            value = format_duration(value)
        elif key == "started_at":
            value = when(value) or value
        elif key == "plugins":
            value = _plugin_names(value)
        elif key in ("config_path", "config"):
            if any(label == "config" for label, _ in pairs):
                continue  # a daemon that sends both: config_path (first) wins
            key, value = "config", "(built-in defaults)" if value is None else value
        pairs.append((key, value))
    for key, value in info.items():  # whatever else the daemon reports, scalars only
        if key not in _STATUS_KEYS and not isinstance(value, dict | list):
            pairs.append((key, value))
    return format_fields(pairs)


def cmd_status(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.call("session.info"), human_status)
    return EXIT_OK


def _config_value(value: Any) -> str:
    """A setting as one line of text: JSON's spelling for everything but plain strings."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _config_lines(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict) and value:
        lines: list[tuple[str, str]] = []
        for key, inner in value.items():
            lines += _config_lines(f"{prefix}.{key}" if prefix else str(key), inner)
        return lines
    return [(prefix, _config_value(value))]


def human_config(config: Any) -> str:
    """``source: FILE`` (or ``(built-in defaults)``), then ``section.key: value`` lines."""
    if not isinstance(config, dict):
        return to_json(config)
    source = config.get("source")
    lines = [("source", "(built-in defaults)" if source is None else str(source))]
    for section, body in config.items():
        if section != "source":
            lines += _config_lines(str(section), body)
    return "\n".join(f"{clean(key)}: {clean(value)}" for key, value in lines)


def cmd_config(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.call("session.config"), human_config)
    return EXIT_OK


def _method_docs(result: Any) -> list[tuple[str, str]]:
    """Accept [{name, doc}], {name: doc} or [name]; return sorted (name, first doc line)."""
    if isinstance(result, dict):
        items = [(str(name), first_line(doc)) for name, doc in result.items()]
    else:
        items = []
        for entry in result or []:
            if isinstance(entry, dict):
                doc = entry.get("doc", entry.get("description", ""))
                items.append((str(entry.get("name", "?")), first_line(doc)))
            else:
                items.append((str(entry), ""))
    return sorted(items)


def human_methods(result: Any) -> str:
    rows = _method_docs(result)
    if not rows:
        return "no methods"
    return format_table(("METHOD", "DESCRIPTION"), rows)


def cmd_methods(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.call("session.methods"), human_methods)
    return EXIT_OK


def cmd_shutdown(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.call("session.shutdown"), lambda _result: "btd is shutting down")
    return EXIT_OK


def parse_params(text: str | None) -> dict[str, Any] | list[Any] | None:
    """JSON-PARAMS for `call`: an object or an array; '-' reads it from stdin."""
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"call: JSON-PARAMS is not valid JSON: {exc}") from exc
    if not isinstance(params, dict | list):
        raise UsageError(
            f"call: JSON-PARAMS must be a JSON object or array, not {type(params).__name__}"
            ' (e.g. \'{"info_hash": "ab12"}\' or \'["ab12"]\')'
        )
    return params


def cmd_call(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    params = parse_params(args.params)
    out.emit(client.call(args.method, params))
    return EXIT_OK

"""btctl commands about the daemon itself: status, methods, shutdown, and raw `call`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from btd.core.rpc.client import RpcClient
from btd.ctl.base import (
    EXIT_OK,
    Output,
    UsageError,
    command,
    first_line,
    format_duration,
    format_fields,
    format_table,
    to_json,
)

# session.info keys shown first, in this order, with their human form. The daemon says
# ``config_path``; ``config`` is still accepted from older daemons.
_STATUS_KEYS = (
    "version", "pid", "uptime", "config_path", "config", "socket", "state_dir", "plugins",
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
        elif key == "plugins":
            value = _plugin_names(value)
        elif key in ("config_path", "config") and value is None:
            value = "none (built-in defaults)"
        pairs.append((key, value))
    for key, value in info.items():  # whatever else the daemon reports, scalars only
        if key not in _STATUS_KEYS and not isinstance(value, dict | list):
            pairs.append((key, value))
    return format_fields(pairs)


@command("status", "show the daemon's version, pid, uptime, config file and plugins")
def cmd_status(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.call("session.info"), human_status)
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


@command("methods", "list the daemon's JSON-RPC methods with a one-line description")
def cmd_methods(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.call("session.methods"), human_methods)
    return EXIT_OK


@command("shutdown", "ask the daemon to stop (it finishes writing resume data first)")
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


def _setup_call(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method", metavar="METHOD", help="method name, e.g. session.info")
    parser.add_argument(
        "params",
        metavar="JSON-PARAMS",
        nargs="?",
        help="parameters as a JSON object or array ('-' reads them from stdin)",
    )


@command(
    "call",
    "call any JSON-RPC method and print its result as JSON",
    setup=_setup_call,
    description="Call METHOD with JSON-PARAMS (an object or an array) and print the result "
    "as JSON, in both human and --json mode.",
)
def cmd_call(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    params = parse_params(args.params)
    out.emit(client.call(args.method, params))
    return EXIT_OK

"""btctl's speed-limit commands: ``limit`` (global or one torrent's) and ``alt`` (turtle mode).

The global limits and the alternative switch are session settings, changed through
``session.set`` (``{"settings": {...}}``) and read from ``session.config``; a torrent's
through ``torrent.set`` and ``torrent.get``.
"""

from __future__ import annotations

import argparse
from typing import Any

from btd.core.rpc.client import RpcClient
from btd.ctl.base import EXIT_OK, Output
from btd.ctl.format import format_fields, format_limit

_SESSION_KEYS = (
    "download_limit", "upload_limit", "alt_download_limit", "alt_upload_limit", "alt_enabled",
    "alt_schedule",
)  # fmt: skip


def _schedule(value: Any) -> str:
    if not isinstance(value, dict):
        return "none"
    days = ",".join(str(d) for d in value.get("days") or [])
    return f"{days} {value.get('start')}-{value.get('end')}"


def human_session_limits(limits: dict[str, Any]) -> str:
    alt = bool(limits.get("alt_enabled"))
    return format_fields(
        [
            ("download", format_limit(limits.get("download_limit"))),
            ("upload", format_limit(limits.get("upload_limit"))),
            ("alt download", format_limit(limits.get("alt_download_limit"))),
            ("alt upload", format_limit(limits.get("alt_upload_limit"))),
            ("alt", "on (alt limits in force)" if alt else "off"),
            ("alt schedule", _schedule(limits.get("alt_schedule"))),
        ]
    )


def _session_limits(client: RpcClient) -> dict[str, Any]:
    section = client.call("session.config").get("session", {})
    return {key: section.get(key) for key in _SESSION_KEYS}


def cmd_limit(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    changes = {}
    if args.down is not None:
        changes["download_limit"] = args.down
    if args.up is not None:
        changes["upload_limit"] = args.up
    if args.info_hash is not None:
        if changes:
            reply = client.call("torrent.set", {"info_hash": args.info_hash, **changes})
        else:
            reply = client.call("torrent.get", {"info_hash": args.info_hash})
        record = {k: reply.get(k) for k in ("info_hash", "download_limit", "upload_limit")}

        def human(r: dict[str, Any]) -> str:
            down, up = format_limit(r["download_limit"]), format_limit(r["upload_limit"])
            return f"{r['info_hash']} download {down}, upload {up}"

        out.emit(record, human)
        return EXIT_OK
    if changes:
        client.call("session.set", {"settings": changes})
    out.emit(_session_limits(client), human_session_limits)
    return EXIT_OK


def cmd_alt(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    if args.switch is not None:
        client.call("session.set", {"settings": {"alt_enabled": args.switch == "on"}})
    out.emit(_session_limits(client), human_session_limits)
    return EXIT_OK

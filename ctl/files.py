"""`btctl files`: list a torrent's files, or want, skip and prioritise them.

File indices are 0-based, as ``torrent.files`` reports them and Transmission's remote
shows them; a LIST is ``1,3,5-7``. Changes go to ``torrent.set_files`` (one call per
kind of change: ``--skip``, ``--want``, each ``--priority``), then the files are listed.
"""

from __future__ import annotations

import argparse
from typing import Any

from btd.core.rpc.client import RpcClient
from btd.ctl.base import EXIT_OK, Output, UsageError
from btd.ctl.format import parse_indices as _parse
from btd.ctl.torrent import human_files

PRIORITY_NAMES = ("low", "normal", "high")


def parse_indices(option: str, text: str) -> list[int]:
    try:
        return _parse(option, text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def changes(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The ``torrent.set_files`` calls the options ask for, in order."""
    calls: list[dict[str, Any]] = []
    if args.skip:
        calls.append({"indices": parse_indices("--skip", args.skip), "wanted": False})
    if args.want:
        calls.append({"indices": parse_indices("--want", args.want), "wanted": True})
    for level, text in args.priority or ():
        if level not in PRIORITY_NAMES:
            raise UsageError(f"--priority: LEVEL must be one of {', '.join(PRIORITY_NAMES)}")
        calls.append({"indices": parse_indices("--priority", text), "priority": level})
    return calls


def cmd_files(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    calls = changes(args)
    result: Any = None
    for params in calls:
        result = client.call("torrent.set_files", {"info_hash": args.info_hash, **params})
    if result is None:
        result = client.call("torrent.files", {"info_hash": args.info_hash})
    out.emit(result, human_files)
    return EXIT_OK

"""`btctl add`'s sending: FILEs read here, then all of them in ONE ``torrent.add`` call.

The readable .torrent files (base64) and the magnet links go together as the ``torrents``
list (docs/RPC.md), split only past the daemon's limits; a lone FILE uses the single form,
and a daemon from before batch adds gets one call per FILE. Each FILE's outcome (the reply,
or the BadInput/RemoteError it met) comes back in order, for ``cmd_add`` to print as before.
Standard library only, like the rest of btctl.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Sequence
from typing import Any

from btd.core.rpc.client import RemoteError, RpcClient
from btd.ctl.base import BadInput

MAX_TORRENT_FILE = 10_000_000  # the daemon refuses larger .torrent files


def read_torrent_file(name: str) -> bytes:
    """The bytes of a .torrent (``-``: stdin); BadInput when it cannot be used."""
    label = "stdin" if name == "-" else name
    try:
        if name == "-":
            stream = getattr(sys.stdin, "buffer", None)
            if stream is None:
                raise BadInput("-: there is no stdin to read a .torrent from")
            if stream.isatty():
                raise BadInput("-: stdin is a terminal; pipe a .torrent in (btctl add - < x)")
            data = stream.read(MAX_TORRENT_FILE + 1)
        else:
            with open(name, "rb") as file:
                data = file.read(MAX_TORRENT_FILE + 1)
    except OSError as exc:
        raise BadInput(f"cannot read {label}: {exc.strerror or exc}") from None
    if not data:
        raise BadInput(f"{label}: empty, not a .torrent")
    if len(data) > MAX_TORRENT_FILE:
        raise BadInput(f"{label}: larger than 10 MB, not a .torrent")
    return data


BATCH_ITEMS = 10_000  # the daemon's limit on items in one torrent.add
BATCH_BYTES = 12_000_000  # request size per call, under the daemon's 16 MiB frame
BATCH_SECONDS_PER_ITEM = 0.005  # the reply waits until all are stored: allow for it


def count_files(data: bytes, name: str) -> int:
    """How many files a .torrent lists (1 for a single-file torrent); BadInput if not one."""
    from btd.core.bencode import decode  # only for --only
    from btd.core.errors import BtdError

    try:
        info = decode(data).get(b"info")
    except (BtdError, AttributeError):
        info = None
    if not isinstance(info, dict):
        raise BadInput(f"{name}: not a .torrent file")
    files = info.get(b"files")
    return len(files) if isinstance(files, list) else 1


def files_skipped(selection: dict[str, Any] | None, data: bytes, name: str) -> list[int] | None:
    """``--skip LIST`` as is, or every file not in ``--only LIST`` (0-based indices)."""
    from btd.ctl.format import parse_indices

    try:
        return _selected(selection, data, name, parse_indices)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _selected(selection: Any, data: bytes, name: str, parse_indices: Any) -> list[int] | None:
    if not selection or not (selection.get("only") or selection.get("skip")):
        return None
    if selection.get("skip"):
        return parse_indices("--skip", selection["skip"])
    only = set(parse_indices("--only", selection["only"]))
    count = count_files(data, name)
    if max(only) >= count:
        raise BadInput(f"{name}: --only {max(only)}: it has {count} files (0..{count - 1})")
    return [i for i in range(count) if i not in only]


def add_all(
    client: RpcClient,
    names: Sequence[str],
    options: dict[str, Any],
    selection: dict[str, Any] | None = None,
) -> list[Any]:
    """Add every FILE (or magnet): its reply, or the BadInput/RemoteError it met, in order.

    ``selection`` (``--only``/``--skip``) becomes each .torrent's ``files_skipped``; a
    magnet cannot take it (its files are not known yet).

    All go in ONE ``torrent.add`` call (``torrents``), split only past the daemon's limits;
    a lone FILE uses the single form. A daemon from before batch adds gets one call each.
    """
    outcomes: list[Any] = [None] * len(names)
    items: list[tuple[int, dict[str, Any]]] = []
    for index, name in enumerate(names):
        if name.lower().startswith("magnet:"):  # a magnet link, not a file name
            if selection and (selection.get("only") or selection.get("skip")):
                outcomes[index] = BadInput(
                    f"{name[:60]}: --only/--skip need the files: add it, then `btctl files`"
                )
                continue
            items.append((index, {"magnet": name, **options}))
            continue
        try:
            raw = read_torrent_file(name)
            skipped = files_skipped(selection, raw, name)
        except BadInput as exc:
            outcomes[index] = exc
            continue
        item = {"metainfo": base64.b64encode(raw).decode("ascii"), **options}
        if skipped is not None:
            item["files_skipped"] = skipped
        items.append((index, item))
    if len(items) == 1:
        _add_singly(client, items, outcomes)
        items = []
    for chunk in _chunks(items):
        try:
            results = _add_batch(client, [item for _, item in chunk])
        except RemoteError as exc:
            if exc.code == -32602 and not (isinstance(exc.data, dict) and "field" in exc.data):
                _add_singly(client, chunk, outcomes)  # an older daemon: no ``torrents``
                continue
            results = [exc] * len(chunk)
        for (index, _), result in zip(chunk, results, strict=False):
            outcomes[index] = result
    return outcomes


def _add_singly(
    client: RpcClient, items: list[tuple[int, dict[str, Any]]], outcomes: list[Any]
) -> None:
    for index, item in items:
        try:
            outcomes[index] = client.call("torrent.add", item)
        except RemoteError as exc:
            outcomes[index] = exc


def _chunks(items: list[tuple[int, dict[str, Any]]]) -> list[list[tuple[int, dict[str, Any]]]]:
    chunks: list[list[tuple[int, dict[str, Any]]]] = []
    size = 0
    for entry in items:
        cost = len(entry[1].get("metainfo", entry[1].get("magnet", ""))) + 200
        if not chunks or len(chunks[-1]) >= BATCH_ITEMS or size + cost > BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += cost
    return chunks


def _add_batch(client: RpcClient, items: list[dict[str, Any]]) -> list[Any]:
    """One ``torrent.add(torrents=items)``: per item its reply or its RemoteError."""
    timeout = client.timeout
    if timeout is not None:
        client.timeout = timeout + BATCH_SECONDS_PER_ITEM * len(items)
    try:
        results = client.call("torrent.add", {"torrents": items})
    finally:
        client.timeout = timeout
    if not isinstance(results, list) or len(results) != len(items):
        raise RemoteError(-32603, "the daemon answered the batch with something else")
    out: list[Any] = []
    for result in results:
        error = result.get("error") if isinstance(result, dict) else None
        if isinstance(error, dict):
            data = error.get("data")
            if isinstance(data, dict):  # btctl knows which FILE it was: not ``index``
                data = {k: v for k, v in data.items() if k != "index"} or None
            out.append(RemoteError(int(error.get("code", -32603)), str(error.get("message")), data))
        else:
            out.append(result)
    return out

"""btctl commands about torrents: add, list, info, pause/resume/verify/rm, peers, files,
trackers, set, stats and add-peer (the ``torrent.*`` and ``session.stats`` methods).

Torrents are named by any unique info-hash prefix; the daemon resolves it. Commands that
take several FILEs or HASHes go on after a failure and exit with the worst code seen.
Standard library only, like the rest of btctl.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from btd.core.rpc.client import RemoteError, RpcClient
from btd.ctl.base import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    Output,
    UsageError,
    command,
    format_bytes,
    format_duration,
    format_fields,
    format_progress,
    format_rate,
    format_table,
    report_remote_error,
)

MAX_TORRENT_FILE = 10_000_000  # the daemon refuses larger .torrent files
NAME_WIDTH = 32  # keeps `btctl list` near 120 columns
SETTABLE = ("strategy",)  # keys `btctl set` accepts (torrent.set's parameters)
HASH_HELP = "info hash or any unique prefix of it"


class BadInput(Exception):
    """A local input file cannot be used (exit 6); nothing was sent for it."""


# -- small helpers ----------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """Control characters from torrent names, paths or peers must not reach the terminal."""
    if not isinstance(value, str):
        return value
    return "".join("?" if ord(ch) < 32 or 127 <= ord(ch) < 160 else ch for ch in value)


def _trunc(text: Any, width: int = NAME_WIDTH) -> str:
    text = str(_clean(text if text is not None else "-"))
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    return format_table(headers, ([_clean(cell) for cell in row] for row in rows))


def _fields(pairs: Iterable[tuple[str, Any]]) -> str:
    return format_fields((key, _clean(value)) for key, value in pairs)


def _eta(record: dict[str, Any]) -> str:
    eta = record.get("eta")
    if eta is None or record.get("left") == 0 or (record.get("progress") or 0) >= 1:
        return "-"
    return format_duration(eta)


def _ratio(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def _when(timestamp: Any) -> str | None:
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _error_object(exc: RemoteError | BadInput, exit_code: int) -> dict[str, Any]:
    if isinstance(exc, RemoteError):
        return {"code": exc.code, "message": exc.message, "data": exc.data, "exit": exit_code}
    return {"code": None, "message": str(exc), "data": None, "exit": exit_code}


def _for_each(
    out: Output,
    targets: Sequence[str],
    key: str,
    call: Callable[[str], Any],
    human: Callable[[Any], str],
) -> int:
    """Run ``call`` per target, print each reply (or error) and return the worst exit code.

    With --json one list is printed at the end: the replies, and for a failed target
    ``{key: target, "error": {code, message, data, exit}}``, in the order given.
    """
    worst = EXIT_OK
    results: list[Any] = []
    for target in targets:
        try:
            reply = call(target)
        except BadInput as exc:
            out.error(str(exc))
            failure: dict[str, Any] = _error_object(exc, EXIT_BAD_INPUT)
        except RemoteError as exc:
            code = report_remote_error(out, exc, context=f"{target}: ")
            failure = _error_object(exc, code)
        else:
            results.append(reply)
            if not out.json_mode:
                out.emit(reply, human)
            continue
        results.append({key: target, "error": failure})
        worst = max(worst, failure["exit"])
    if out.json_mode:
        out.emit(results)
    return worst


def _one_hash(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("info_hash", metavar="HASH", help=HASH_HELP)


def _many_hashes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("info_hashes", metavar="HASH", nargs="+", help=HASH_HELP)


# -- add ----------------------------------------------------------------------------------


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


def _setup_add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        metavar="FILE",
        nargs="+",
        help=".torrent file ('-' reads one from stdin) or a magnet link ('magnet:?xt=...')",
    )
    parser.add_argument("--paused", action="store_true", help="add without starting it")
    parser.add_argument("--dir", metavar="DIR", help="save the data here (default: daemon's)")
    parser.add_argument("--strategy", metavar="NAME", help="piece strategy (e.g. rarest-first)")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="then wait until the torrents complete (exit 0), fail (7) or --timeout "
        "DURATION passes (5); see `btctl wait --help`",
    )


def human_added(reply: dict[str, Any]) -> str:
    verb = "added" if reply.get("added", True) else "already present"
    return f"{verb} {reply.get('info_hash')} {_clean(reply.get('name'))}"


@command(
    "add",
    "add .torrent files or magnet links (already present is not an error)",
    setup=_setup_add,
    description="Read each FILE (a .torrent; '-' reads stdin) and add it to the daemon; a "
    "magnet link is sent as it is and waits in the list (state `metadata`) for its info "
    "dictionary from peers. "
    "btctl reads the file itself, so the daemon needs no access to it. With --wait, btctl "
    "then waits like `btctl wait` (--timeout DURATION bounds the whole wait: 90, 15m, 2h).",
)
def cmd_add(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    options: dict[str, Any] = {"paused": bool(args.paused)}
    if args.dir is not None:
        options["save_path"] = os.path.abspath(os.path.expanduser(args.dir))
    if args.strategy is not None:
        options["strategy"] = args.strategy

    def add_one(name: str) -> Any:
        if name.lower().startswith("magnet:"):  # a magnet link, not a file name
            return client.call("torrent.add", {"magnet": name, **options})
        data = base64.b64encode(read_torrent_file(name)).decode("ascii")
        return client.call("torrent.add", {"metainfo": data, **options})

    if getattr(args, "wait", False):
        from btd.ctl.wait import add_and_wait  # imported late: ctl_wait imports this

        return add_and_wait(client, args, out, add_one)
    return _for_each(out, args.files, "file", add_one, human_added)


# -- list, info ---------------------------------------------------------------------------


def _setup_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        metavar="STATE",
        help="only torrents in this state: metadata, checking, downloading, seeding, paused, "
        "error, stopped",
    )


LIST_HEADERS = ("HASH", "NAME", "STATE", "DONE", "SIZE", "DOWN", "UP", "PEERS", "ETA", "RATIO")


def list_rows(torrents: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            str(t.get("info_hash", ""))[:8],
            _trunc(t.get("name")),
            t.get("state"),
            format_progress(t.get("progress")),
            format_bytes(t.get("size")),
            format_rate(t.get("download_rate")),
            format_rate(t.get("upload_rate")),
            t.get("peers"),
            _eta(t),
            _ratio(t.get("ratio")),
        ]
        for t in torrents
    ]


@command("list", "list the torrents with their state, progress and rates", setup=_setup_list)
def cmd_list(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    result = client.call("torrent.list", {"state": args.state} if args.state else None)

    def human(torrents: list[dict[str, Any]]) -> str:
        if not torrents:
            return "no torrents" if out.stdout.isatty() else ""
        return _table(LIST_HEADERS, list_rows(torrents))

    out.emit(result, human)
    return EXIT_OK


def human_files(files: list[dict[str, Any]]) -> str:
    if not files:
        return "no files"
    rows = [
        [f.get("path"), format_bytes(f.get("length")), format_progress(f.get("progress"))]
        for f in files
    ]
    return _table(("PATH", "SIZE", "DONE"), rows)


def human_trackers(trackers: list[dict[str, Any]]) -> str:
    if not trackers:
        return "no trackers"
    rows = [
        [
            t.get("tier"),
            t.get("url"),
            t.get("status"),
            format_duration(t.get("next_announce")),
            _trunc(t.get("last_error") or "-", 60),
        ]
        for t in trackers
    ]
    return _table(("TIER", "URL", "STATUS", "NEXT", "LAST ERROR"), rows)


def human_info(t: dict[str, Any]) -> str:
    state = t.get("state")
    if state == "checking" and t.get("check_progress") is not None:
        state = f"checking ({format_progress(t.get('check_progress'))})"
    pieces = (
        f"{t.get('pieces_have')}/{t.get('pieces')} of {format_bytes(t.get('piece_length'))}"
        if t.get("pieces") is not None
        else "- (waiting for metadata)"
    )
    pairs: list[tuple[str, Any]] = [
        ("name", t.get("name")),
        ("hash", t.get("info_hash")),
        ("state", state),
        ("progress", format_progress(t.get("progress"))),
        ("size", f"{format_bytes(t.get('size'))} ({format_bytes(t.get('left'))} left)"),
        ("downloaded", format_bytes(t.get("downloaded"))),
        ("uploaded", format_bytes(t.get("uploaded"))),
        ("ratio", _ratio(t.get("ratio"))),
        ("down rate", format_rate(t.get("download_rate"))),
        ("up rate", format_rate(t.get("upload_rate"))),
        ("peers", f"{t.get('peers')} ({t.get('seeds')} seeds)"),
        ("eta", _eta(t)),
        ("pieces", pieces),
        ("save path", t.get("save_path")),
        ("strategy", t.get("strategy")),
        ("private", "yes" if t.get("private") else "no"),
        ("added", _when(t.get("added_at"))),
        ("completed", _when(t.get("completed_at"))),
    ]
    pairs += [(key, t[field]) for key, field in (("comment", "comment"),
              ("created by", "created_by")) if t.get(field)]  # fmt: skip
    if "wasted" in t:
        pairs.append(("wasted", format_bytes(t.get("wasted"))))
    if t.get("banned"):
        pairs.append(("banned", ", ".join(str(peer) for peer in t["banned"])))
    pairs.append(("error", t.get("error")))
    files = t.get("files") or []
    trackers = t.get("trackers") or []
    sections = [_fields(pairs)]
    if t.get("piece_map"):
        from btd.ctl.watch_view import piece_cells  # pure text, no rich

        sections.append(f"pieces: {piece_cells(t.get('piece_map'), t.get('pieces'))}")
    sections.append(f"files ({len(files)}):\n{human_files(files)}")
    if "peer_list" in t:
        peers = t["peer_list"]
        sections.append(f"peers ({len(peers)}):\n{human_peers(peers) if peers else 'no peers'}")
    sections.append(f"trackers ({len(trackers)}):\n{human_trackers(trackers)}")
    return "\n\n".join(sections)


@command(
    "info",
    "show one torrent: fields, piece map, files, peers and trackers",
    setup=_one_hash,
    description="Everything `btctl watch` shows in its detail pane, once. --json prints "
    "torrent.get's result with the connected peers (torrent.peers) under `peer_list`.",
)
def cmd_info(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    t = client.call("torrent.get", {"info_hash": args.info_hash})
    if t.get("state") != "metadata":
        t["peer_list"] = client.call("torrent.peers", {"info_hash": t["info_hash"]})
    out.emit(t, human_info)
    return EXIT_OK


# -- pause, resume, verify, rm ----------------------------------------------------------------


def _simple(method: str, verb: str, help: str) -> None:
    """Register a command that calls ``method`` once per HASH."""

    def run(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
        call = lambda h: client.call(method, {"info_hash": h})  # noqa: E731
        human = lambda r: f"{verb} {r.get('info_hash')}"  # noqa: E731
        return _for_each(out, args.info_hashes, "info_hash", call, human)

    command(method.split(".")[1], help, setup=_many_hashes)(run)


_simple("torrent.pause", "paused", "pause torrents (peers closed, trackers told)")
_simple("torrent.resume", "resumed", "resume paused (or failed) torrents")
_simple("torrent.verify", "verifying", "recheck every piece of torrents against the disk")


def _setup_rm(parser: argparse.ArgumentParser) -> None:
    _many_hashes(parser)
    parser.add_argument(
        "--delete-data", action="store_true", help="also delete the downloaded files"
    )


def human_removed(reply: dict[str, Any]) -> str:
    extra = " (data deleted)" if reply.get("deleted_data") else ""
    return f"removed {reply.get('info_hash')}{extra}"


@command("rm", "remove torrents (and with --delete-data their files)", setup=_setup_rm)
def cmd_rm(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    def remove(h: str) -> Any:
        return client.call("torrent.remove", {"info_hash": h, "delete_data": args.delete_data})

    return _for_each(out, args.info_hashes, "info_hash", remove, human_removed)


# -- peers, files, trackers -------------------------------------------------------------------

# (letter, peer.info key): shown in this order, "." when the flag is off.
PEER_FLAGS = (
    ("I", "am_interested"),  # we are interested in the peer
    ("C", "peer_choking"),  # the peer chokes us
    ("i", "peer_interested"),  # the peer is interested in us
    ("c", "am_choking"),  # we choke the peer
    ("S", "snubbed"),  # the peer sent nothing for a while
)


def peer_flags(peer: dict[str, Any]) -> str:
    return "".join(letter if peer.get(key) else "." for letter, key in PEER_FLAGS)


def peer_address(peer: dict[str, Any]) -> str:
    host = str(peer.get("address", "?"))
    return f"[{host}]:{peer.get('port')}" if ":" in host else f"{host}:{peer.get('port')}"


def peer_row(p: dict[str, Any]) -> list[str]:
    """One peer as table cells: ADDRESS CLIENT DONE DOWN UP FLAGS (also used by watch)."""
    return [
        peer_address(p),
        _trunc(p.get("client") or "?", 20),
        format_progress(p.get("progress")),
        format_rate(p.get("download_rate")),
        format_rate(p.get("upload_rate")),
        peer_flags(p),
    ]


def human_peers(peers: list[dict[str, Any]]) -> str:
    if not peers:
        return "no peers"
    rows = [peer_row(p) for p in peers]
    return _table(("ADDRESS", "CLIENT", "DONE", "DOWN", "UP", "FLAGS"), rows)


def _lister(name: str, help: str, human: Callable[[Any], str]) -> None:
    def run(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
        out.emit(client.call(f"torrent.{name}", {"info_hash": args.info_hash}), human)
        return EXIT_OK

    command(name, help, setup=_one_hash)(run)


_lister("peers", "list a torrent's connected peers (flags: see docs/CLI.md)", human_peers)
_lister("files", "list a torrent's files with their progress", human_files)
_lister("trackers", "list a torrent's trackers with their status", human_trackers)


# -- set, add-peer, stats ---------------------------------------------------------------------


def parse_settings(items: Sequence[str]) -> dict[str, str]:
    """``["strategy=x"]`` -> ``{"strategy": "x"}``; anything else is a UsageError."""
    settings: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"set: expected KEY=VALUE, got {item!r}")
        if key not in SETTABLE:
            raise UsageError(f"set: unknown key {key!r}; known: {', '.join(SETTABLE)}")
        if not value:
            raise UsageError(f"set: {key} needs a value")
        if key in settings:
            raise UsageError(f"set: {key} given twice")
        settings[key] = value
    return settings


def _setup_set(parser: argparse.ArgumentParser) -> None:
    _one_hash(parser)
    parser.add_argument(
        "settings", metavar="KEY=VALUE", nargs="+", help=f"keys: {', '.join(SETTABLE)}"
    )


@command("set", "change a torrent's options (strategy=NAME)", setup=_setup_set)
def cmd_set(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    settings = parse_settings(args.settings)
    reply = client.call("torrent.set", {"info_hash": args.info_hash, **settings})

    def human(r: dict[str, Any]) -> str:
        changed = " ".join(f"{k}={_clean(r.get(k))}" for k in settings)
        return f"{r.get('info_hash')} {changed}"

    out.emit(reply, human)
    return EXIT_OK


def parse_peer(text: str) -> tuple[str, int]:
    """``1.2.3.4:6881`` or ``[::1]:6881`` -> (address, port); UsageError otherwise."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            raise UsageError(f"add-peer: write an IPv6 address in brackets: [{host}]:{port}")
    if not sep or not host:
        raise UsageError(f"add-peer: expected HOST:PORT, got {text!r}")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise UsageError(f"add-peer: {host!r} is not an IPv4 or IPv6 address") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"add-peer: port must be 1..65535, got {port!r}")
    return address, int(port)


def _setup_add_peer(parser: argparse.ArgumentParser) -> None:
    _one_hash(parser)
    parser.add_argument("peer", metavar="HOST:PORT", help="e.g. 192.0.2.7:6881 or [::1]:6881")


@command("add-peer", "give a torrent a peer to connect to", setup=_setup_add_peer)
def cmd_add_peer(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    address, port = parse_peer(args.peer)
    reply = client.call(
        "torrent.add_peer", {"info_hash": args.info_hash, "address": address, "port": port}
    )
    where = peer_address({"address": address, "port": port})

    def human(r: dict[str, Any]) -> str:
        if r.get("added"):
            return f"added peer {where} to {r.get('info_hash')}"
        return f"peer {where} not added to {r.get('info_hash')} (already known or not allowed)"

    out.emit(reply, human)
    return EXIT_OK


def human_stats(s: dict[str, Any]) -> str:
    states = s.get("states") or {}
    by_state = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    pairs = [
        ("torrents", f"{s.get('torrents')} ({by_state})" if by_state else s.get("torrents")),
        ("peers", s.get("peers")),
        ("down rate", format_rate(s.get("download_rate"))),
        ("up rate", format_rate(s.get("upload_rate"))),
        ("downloaded", format_bytes(s.get("downloaded"))),
        ("uploaded", format_bytes(s.get("uploaded"))),
        ("uptime", format_duration(s.get("uptime"))),
        ("listen port", s.get("listen_port")),
    ]
    return _fields(pairs)


@command("stats", "totals over all torrents: counts by state, rates, bytes, peers")
def cmd_stats(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.call("session.stats"), human_stats)
    return EXIT_OK

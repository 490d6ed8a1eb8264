"""btctl commands about torrents: add, list, info, pause/resume/verify/reannounce/rm, peers,
files, trackers, stats and add-peer (``set`` and ``queue``: btd.ctl.settings) (the ``torrent.*`` and ``session.stats`` methods).
Their arguments are declared in ``btd.ctl.parser``; text is formatted by ``btd.ctl.format``.

Torrents are named by any unique info-hash prefix; the daemon resolves it. Commands that
take several FILEs or HASHes go on after a failure and exit with the worst code seen.
Standard library only, like the rest of btctl.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable, Sequence
from typing import Any

from btd.core.rpc.client import RemoteError, RpcClient
from btd.ctl.base import EXIT_BAD_INPUT, EXIT_OK, BadInput, Output, UsageError, report_remote_error
from btd.ctl.format import (
    LIST_FIELDS,
    LIST_HEADERS,
    clean,
    dir_not_applied,
    eta,
    fields,
    format_bytes,
    format_disconnects,
    format_duration,
    format_progress,
    format_rate,
    human_added,
    list_rows,
    peer_address,
    peer_row,
    piece_cells,
    ratio,
    state_notes,
    table,
    trunc,
    when,
)


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


# -- add ----------------------------------------------------------------------------------


def cmd_add(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    options: dict[str, Any] = {"paused": bool(args.paused)}
    if args.dir is not None:
        options["save_path"] = os.path.abspath(os.path.expanduser(args.dir))
    if args.strategy is not None:
        options["strategy"] = args.strategy
    if getattr(args, "labels", None):
        options["labels"] = list(args.labels)
    selection = {"only": args.only, "skip": args.skip}
    outcomes: list[Any] = []  # filled by the first add_one (after --wait has subscribed)

    def add_one(name: str) -> Any:
        if not outcomes:
            from btd.ctl.add import add_all  # only for add: `list` stays light

            outcomes.extend(reversed(add_all(client, args.files, options, selection)))
        reply = outcomes.pop()  # one per FILE, in the order given
        if isinstance(reply, Exception):
            raise reply
        note = dir_not_applied(reply, options.get("save_path")) if isinstance(reply, dict) else None
        if note and not out.json_mode:  # --json: the reply says it (added: false, save_path)
            out.error(note)
        return reply

    if getattr(args, "wait", False):
        from btd.ctl.wait import add_and_wait  # only for --wait

        return add_and_wait(client, args, out, add_one)
    return _for_each(out, args.files, "file", add_one, human_added)


# -- list, info ---------------------------------------------------------------------------


def human_list(torrents: list[dict[str, Any]], tty: bool = False) -> str:
    """The table, then one note per torrent whose state has a detail (marked ``!``)."""
    if not torrents:
        return "no torrents" if tty else ""
    text = table(LIST_HEADERS, list_rows(torrents))
    notes = state_notes(torrents)
    return f"{text}\n\n{notes}" if notes else text


def cmd_list(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    filters = {"state": args.state, "label": getattr(args, "label", None)}
    given: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
    if not out.json_mode:  # --json keeps every field: scripts read what they like
        given["fields"] = list(LIST_FIELDS)
        given["format"] = "table"  # a third of the bytes to read (10,000 torrents: 2.4 MB)
    result = client.call("torrent.list", given or None)
    if isinstance(result, dict):
        names = result["fields"]
        result = [dict(zip(names, row, strict=True)) for row in result["rows"]]
    out.emit(result, lambda torrents: human_list(torrents, not torrents and out.stdout.isatty()))
    return EXIT_OK


def human_files(files: list[dict[str, Any]]) -> str:
    if not files:
        return "no files"
    rows = [
        [
            f.get("index"),
            format_bytes(f.get("length")),
            format_progress(f.get("progress")),
            "yes" if f.get("wanted", True) else "no",
            f.get("priority", "normal"),
            f.get("path"),
        ]
        for f in files
    ]
    return table(("#", "SIZE", "DONE", "WANTED", "PRIORITY", "PATH"), rows)


def human_trackers(trackers: list[dict[str, Any]]) -> str:
    if not trackers:
        return "no trackers"
    rows = [
        [
            t.get("tier"),
            t.get("url"),
            t.get("status"),
            format_duration(t.get("next_announce")),
            trunc(t.get("last_error") or "-", 60),
        ]
        for t in trackers
    ]
    return table(("TIER", "URL", "STATUS", "NEXT", "LAST ERROR"), rows)


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
        *([("state detail", t["state_detail"])] if t.get("state_detail") else []),
        ("progress", format_progress(t.get("progress"))),
        ("size", f"{format_bytes(t.get('size'))} ({format_bytes(t.get('left'))} left)"),
        ("downloaded", format_bytes(t.get("downloaded"))),
        ("uploaded", format_bytes(t.get("uploaded"))),
        ("ratio", ratio(t.get("ratio"))),
        ("down rate", format_rate(t.get("download_rate"))),
        ("up rate", format_rate(t.get("upload_rate"))),
        ("peers", f"{t.get('peers')} ({t.get('seeds')} seeds)"),
        ("eta", eta(t)),
        ("pieces", pieces),
        ("save path", t.get("save_path")),
        ("strategy", t.get("strategy")),
        *([("queue position", t["queue_position"])] if t.get("queue_position") is not None else []),
        *([("force start", "yes")] if t.get("force_start") else []),
        ("seeding goals", seeding_goals(t)),
        ("private", "yes" if t.get("private") else "no"),
        ("added", when(t.get("added_at"))),
        ("completed", when(t.get("completed_at"))),
    ]
    pairs += [(key, t[field]) for key, field in (("comment", "comment"),
              ("created by", "created_by")) if t.get(field)]  # fmt: skip
    if "wasted" in t:
        pairs.append(("wasted", format_bytes(t.get("wasted"))))
    if t.get("banned"):
        pairs.append(("banned", ", ".join(str(peer) for peer in t["banned"])))
    if (ended := format_disconnects(t.get("disconnects"))) is not None:
        pairs.append(("disconnects", ended))
    pairs.append(("error", t.get("error")))
    files = t.get("files") or []
    trackers = t.get("trackers") or []
    sections = [fields(pairs)]
    if t.get("piece_map"):
        sections.append(f"pieces: {piece_cells(t.get('piece_map'), t.get('pieces'))}")
    sections.append(f"files ({len(files)}):\n{human_files(files)}")
    if "peer_list" in t:
        peers = t["peer_list"]
        sections.append(f"peers ({len(peers)}):\n{human_peers(peers) if peers else 'no peers'}")
    sections.append(f"trackers ({len(trackers)}):\n{human_trackers(trackers)}")
    return "\n\n".join(sections)


def seeding_goals(t: dict[str, Any]) -> str:
    """A torrent's own seeding goals: ``ratio 2, time 1440 min``; ``global`` when it
    uses the session's, ``none`` when unlimited."""
    parts = []
    for key, label, unit in (("ratio_limit", "ratio", ""), ("seeding_time_limit", "time",
                             " min"), ("idle_seeding_limit", "idle", " min")):  # fmt: skip
        value = t.get(key)
        text = "global" if value is None else "none" if value == -1 else f"{value:g}{unit}"
        parts.append(f"{label} {text}")
    return ", ".join(parts)


def cmd_info(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    t = client.call("torrent.get", {"info_hash": args.info_hash})
    if t.get("state") != "metadata":
        t["peer_list"] = client.call("torrent.peers", {"info_hash": t["info_hash"]})
    out.emit(t, human_info)
    return EXIT_OK


# -- pause, resume, verify, rm ----------------------------------------------------------------


def _per_hash(method: str, verb: str) -> Callable[[RpcClient, argparse.Namespace, Output], int]:
    """A command that calls ``method`` once per HASH."""

    def run(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
        call = lambda h: client.call(method, {"info_hash": h})  # noqa: E731
        human = lambda r: f"{verb} {r.get('info_hash')}"  # noqa: E731
        return _for_each(out, args.info_hashes, "info_hash", call, human)

    return run


cmd_pause = _per_hash("torrent.pause", "paused")
cmd_resume = _per_hash("torrent.resume", "resumed")
cmd_verify = _per_hash("torrent.verify", "verifying")


def cmd_reannounce(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    """``torrent.reannounce`` per HASH; the daemon's message says when it announces."""
    call = lambda h: client.call("torrent.reannounce", {"info_hash": h})  # noqa: E731
    human = lambda r: f"{r.get('info_hash')}: {clean(r.get('message'))}"  # noqa: E731
    return _for_each(out, args.info_hashes, "info_hash", call, human)


def human_removed(reply: dict[str, Any]) -> str:
    extra = " (data deleted)" if reply.get("deleted_data") else ""
    return f"removed {reply.get('info_hash')}{extra}"


def cmd_rm(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    def remove(h: str) -> Any:
        return client.call("torrent.remove", {"info_hash": h, "delete_data": args.delete_data})

    return _for_each(out, args.info_hashes, "info_hash", remove, human_removed)


# -- peers, files, trackers -------------------------------------------------------------------


def human_peers(peers: list[dict[str, Any]]) -> str:
    if not peers:
        return "no peers"
    rows = [peer_row(p) for p in peers]
    return table(("ADDRESS", "CLIENT", "DONE", "DOWN", "UP", "FLAGS"), rows)


def _lister(name: str, human: Callable[[Any], str]) -> Callable[..., int]:
    """A command that prints ``torrent.NAME`` of one HASH."""

    def run(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
        out.emit(client.call(f"torrent.{name}", {"info_hash": args.info_hash}), human)
        return EXIT_OK

    return run


cmd_peers = _lister("peers", human_peers)
cmd_trackers = _lister("trackers", human_trackers)


# -- add-peer, stats ---------------------------------------------------------------------


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


def cmd_add_peer(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    address, port = parse_peer(args.peer)
    reply = client.call(
        "torrent.add_peer", {"info_hash": args.info_hash, "address": address, "port": port}
    )
    where = peer_address({"address": address, "port": port})

    def human(r: dict[str, Any]) -> str:
        # "added" is also true for a known peer: the daemon re-arms it and dials it at once
        if r.get("added"):
            return (
                f"dialling peer {where} for {r.get('info_hash')} "
                "(now, or once the torrent transfers and the connection limits allow)"
            )
        return (
            f"peer {where} not dialled for {r.get('info_hash')} "
            "(connected or being dialled already, banned, or its peer list is full)"
        )

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
    if (ended := format_disconnects(s.get("disconnects"))) is not None:
        pairs.append(("disconnects", ended))
    return fields(pairs)


def cmd_stats(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    out.emit(client.call("session.stats"), human_stats)
    return EXIT_OK

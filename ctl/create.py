"""`btctl create`: make a .torrent (v1, v2 or hybrid) of a file or a folder; with --add,
seed it at once.

The work is done by the pure ``btd.core.torrent_create`` (and ``torrent_create_v2``); this module handles the command
line, the progress bar, writing the file safely (never overwriting without --force) and
handing the result to the daemon. No daemon is needed unless --add is given.
"""

from __future__ import annotations

import argparse
import base64
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from btd.core.rpc.client import RemoteError, RpcClient
from btd.ctl.base import EXIT_BAD_INPUT, EXIT_OK, Output, UsageError, report_remote_error
from btd.ctl.format import format_bytes, format_rate
from btd.ctl.wait import ProgressBar

if TYPE_CHECKING:
    from btd.core.torrent_create import CreatedTorrent

DRAW_SECONDS = 0.1  # the hashing progress bar is redrawn at most this often


def _options(args: argparse.Namespace) -> tuple[int | None, list[str]]:
    """Check --piece-size and -t before any hashing starts (usage errors, exit 2)."""
    from btd.core.torrent_create import (
        TorrentCreateError,
        check_piece_size,
        check_tracker,
        parse_size,
    )

    try:
        piece = check_piece_size(parse_size(args.piece_size)) if args.piece_size else None
        trackers = [check_tracker(url) for url in args.tracker]
    except TorrentCreateError as exc:
        raise UsageError(f"create: {exc}") from None
    return piece, trackers


def _output_path(args: argparse.Namespace) -> Path:
    if args.output:
        return Path(os.path.abspath(os.path.expanduser(args.output)))
    name = Path(os.path.abspath(os.path.expanduser(args.path))).name or "torrent"
    return Path.cwd() / f"{name}.torrent"


def write_torrent(path: Path, data: bytes, *, force: bool) -> None:
    """Write ``data`` to ``path``: atomically with --force, else only if it does not exist."""
    if not force:
        try:
            file = open(path, "xb")  # noqa: SIM115
        except FileExistsError:
            raise UsageError(f"create: {path} exists; use --force to overwrite it") from None
        try:
            with file:
                file.write(data)
        except BaseException:
            path.unlink(missing_ok=True)  # ours: we just created it
            raise
        return
    import tempfile  # only for --force: it pulls in random and shutil

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _HashProgress:
    """Feeds the terminal progress bar from create_torrent's callback (rate-limited)."""

    def __init__(self, bar: ProgressBar, label: str) -> None:
        self.bar = bar
        self.label = label
        self.start = time.monotonic()
        self.next = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now < self.next and done < total:
            return
        self.next = now + DRAW_SECONDS
        elapsed = max(now - self.start, 1e-6)
        suffix = f"{format_bytes(done)} of {format_bytes(total)}  {format_rate(done / elapsed)}"
        self.bar.draw(done / total if total else 1.0, self.label, suffix)


def summary(created: CreatedTorrent, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The --json document of `create` (``added`` is filled in by --add)."""
    return {
        "file": str(path),
        "info_hash": created.hex,
        "name": created.name,
        "size": created.total_length,
        "files": len(created.files),
        "piece_length": created.piece_length,
        "pieces": created.num_pieces,
        "private": bool(args.private),
        "version": "v2" if args.v2 else "hybrid" if args.hybrid else "v1",
        "info_hash_v2": created.info_hash_v2.hex() if created.info_hash_v2 else None,
        "trackers": list(dict.fromkeys(args.tracker)),
        "skipped": list(created.skipped),
        "added": None,
    }


def human_created(result: dict[str, Any]) -> str:
    files = f" in {result['files']} files" if result["files"] > 1 else ""
    size = format_bytes(result["size"])
    pieces = f"{result['pieces']} pieces of {format_bytes(result['piece_length'])}"
    lines = [
        f"created {result['file']}",
        f"  {result['name']}: {size}{files}, {pieces}",
        f"  info hash {result['info_hash']}",
    ]
    if result.get("info_hash_v2"):
        lines.append(f"  info hash v2 {result['info_hash_v2']} ({result['version']})")
    return "\n".join(lines)


def cmd_create(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    # imported here: hashing (thread pool) and importlib.metadata only when creating
    from btd.core.torrent_create import TorrentCreateError, create_torrent
    from btd.core.version import __version__

    piece, trackers = _options(args)
    path = _output_path(args)
    if path.exists() and not args.force:
        raise UsageError(f"create: {path} exists; use --force to overwrite it")
    source = os.path.expanduser(args.path)
    bar = ProgressBar(out.stderr) if ProgressBar.wanted(out.stderr) else None
    label = os.path.basename(os.path.abspath(source))[:40]
    options = dict(
        piece_length=piece, trackers=trackers, private=args.private, comment=args.comment,
        created_by=f"btd {__version__}", progress=_HashProgress(bar, label) if bar else None,
        exclude=[path],
    )  # fmt: skip
    try:
        if args.v2 or args.hybrid:
            from btd.core.torrent_create_v2 import create_torrent_v2

            created = create_torrent_v2(source, hybrid=args.hybrid, **options)
        else:
            created = create_torrent(source, **options)
    except TorrentCreateError as exc:
        out.error(f"create: {exc}")
        return EXIT_BAD_INPUT
    finally:
        if bar is not None:
            bar.clear()
    try:
        write_torrent(path, created.data, force=args.force)
    except OSError as exc:
        out.error(f"create: cannot write {path}: {exc.strerror or exc}")
        return EXIT_BAD_INPUT
    result = summary(created, path, args)
    if created.skipped:
        out.error(f"create: skipped (symlinks, special files): {', '.join(created.skipped)}")
    if not out.json_mode:
        out.emit(result, human_created)
        out.stdout.flush()
    if args.add:
        save_path = os.path.dirname(os.path.abspath(source))
        metainfo = base64.b64encode(created.data).decode("ascii")
        try:
            reply = client.call("torrent.add", {"metainfo": metainfo, "save_path": save_path})
        except RemoteError as exc:
            code = report_remote_error(out, exc, context="create --add: ")
            result["added"] = {"error": {"code": exc.code, "message": exc.message,
                                         "data": exc.data, "exit": code}}  # fmt: skip
            if out.json_mode:
                out.emit(result)
            return code
        result["added"] = reply
        if not out.json_mode:
            verb = "added" if reply.get("added", True) else "already present"
            out.stdout.write(f"{verb} {reply.get('info_hash')} to btd, seeding from {save_path}\n")
    if out.json_mode:
        out.emit(result)
    return EXIT_OK

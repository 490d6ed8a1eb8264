"""`btctl create`: make a v1 .torrent of a file or a folder; with --add, seed it at once.

The work is done by the pure ``btd.core.torrent_create``; this module handles the command
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
from btd.ctl.base import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    Output,
    UsageError,
    command,
    format_bytes,
    format_rate,
    report_remote_error,
)
from btd.ctl.wait import ProgressBar

if TYPE_CHECKING:
    from btd.core.torrent_create import CreatedTorrent

DRAW_SECONDS = 0.1  # the hashing progress bar is redrawn at most this often


def _setup_create(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="the file or folder to share")
    parser.add_argument(
        "-t", "--tracker", metavar="URL", action="append", default=[],
        help="announce URL (http, https or udp); repeat for more: one tier each, the first "
        "is also 'announce'",
    )  # fmt: skip
    parser.add_argument(
        "--piece-size", metavar="SIZE",
        help="piece size, a power of two from 16K to 16M (e.g. 256K, 1M); default: chosen "
        "from the total size as libtorrent does",
    )  # fmt: skip
    parser.add_argument(
        "--private", action="store_true", help="mark it private (BEP 27: trackers only)"
    )
    parser.add_argument("--comment", metavar="TEXT", help="a comment stored in the .torrent")
    parser.add_argument(
        "-o", "--output", metavar="FILE",
        help="where to write the .torrent (default: NAME.torrent in the current folder)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.add_argument(
        "--add", action="store_true",
        help="then add it to the daemon, saving to PATH's parent folder, so it seeds PATH",
    )  # fmt: skip


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
    return "\n".join(lines)


CREATE_EXAMPLES = """\
  btctl create ~/share/photos                        # writes photos.torrent here
  btctl create debian-12.iso -t http://tracker.example/announce -o /tmp/debian.torrent
  btctl create ./dataset -t udp://a.example:6969 -t http://b.example/announce --private
  btctl create ./dataset --piece-size 1M --comment "v2 of the data" --force
  btctl create ~/share/photos --add                  # and seed it from ~/share at once
"""


@command(
    "create",
    "make a .torrent (v1) of a file or folder; --add seeds it at once",
    setup=_setup_create,
    description="Hash PATH (a file, or a folder: every file under it, sorted by path, hidden "
    "files included, symlinks and special files skipped) into a v1 .torrent written to -o "
    "FILE (default NAME.torrent in the current folder; an existing file is kept unless "
    "--force). The piece size is chosen like libtorrent does unless --piece-size is given. "
    "Hashing uses every core. 'created by' is btd's version, 'creation date' now. With --add "
    "the daemon adds it with save path = PATH's parent folder: it checks the data and seeds. "
    "No daemon is needed without --add.",
    examples=CREATE_EXAMPLES,
)
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
    try:
        created = create_torrent(
            source, piece_length=piece, trackers=trackers, private=args.private,
            comment=args.comment, created_by=f"btd {__version__}",
            progress=_HashProgress(bar, label) if bar else None, exclude=[path],
        )  # fmt: skip
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

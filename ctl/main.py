"""`btctl`: the command-line control client for btd.

Parses the command line, finds the control socket, runs one registered subcommand
(see ``btd.ctl.base.command``) and maps every failure to a documented exit code.
It must start fast, so it imports only the standard library and btd's light modules
(never Twisted, PyYAML, jsonrpcserver, pluggy or rich); a test enforces this.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import btd.ctl.completion  # noqa: F401  (registers completion)
import btd.ctl.create  # noqa: F401  (registers create)
import btd.ctl.help  # noqa: F401  (registers manpage)
import btd.ctl.plugins  # noqa: F401  (registers plugins)
import btd.ctl.session  # noqa: F401  (registers status, methods, shutdown, call)
import btd.ctl.torrent  # noqa: F401  (registers add, list, info, pause, rm, ...)
import btd.ctl.wait  # noqa: F401  (registers wait)
import btd.ctl.watch  # noqa: F401  (registers watch)
from btd.core import paths
from btd.core.rpc.client import (
    DaemonUnreachable,
    RemoteError,
    RpcClient,
    RpcProtocolError,
    RpcTimeout,
)
from btd.ctl.base import (
    COMMANDS,
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REMOTE_ERROR,
    EXIT_TIMEOUT,
    EXIT_TORRENT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Output,
    UsageError,
    report_remote_error,
)
from btd.ctl.help import HelpFormatter, command_epilog
from btd.ctl.wait import parse_duration

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REMOTE_ERROR",
    "EXIT_TIMEOUT",
    "EXIT_TORRENT_FAILED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "resolve_socket",
]

DEFAULT_TIMEOUT = 30.0


def resolve_socket(option: str | None, env: Mapping[str, str] = os.environ) -> tuple[Path, str]:
    """The socket to use and where it came from: --socket, then $BTD_SOCKET, then default."""
    if option:
        return Path(option).expanduser(), "--socket"
    value = env.get("BTD_SOCKET")
    if value:
        return Path(value).expanduser(), "$BTD_SOCKET"
    return paths.default_socket(env), "the default location"


def _epilog() -> str:
    codes = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)
    return (
        "socket: --socket PATH, else $BTD_SOCKET, else the daemon's default\n"
        "  ($RUNTIME_DIRECTORY/btd.sock, $XDG_RUNTIME_DIR/btd/btd.sock or /tmp/btd-UID/btd.sock)\n"
        "\nexit codes:\n" + codes
    )


def _common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--socket/--json/--timeout, accepted before or after COMMAND.

    On subparsers the default is SUPPRESS so an option given before COMMAND is not
    overwritten by the subparser's default.
    """
    keep = argparse.SUPPRESS
    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=None if top else keep,
        help="control socket of the daemon (overrides $BTD_SOCKET)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else keep,
        help="print the raw result as one JSON document (for scripts)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=parse_duration,
        default=None if top else keep,
        help=f"give up waiting for an answer after this long (default {DEFAULT_TIMEOUT:g}; "
        "0 = wait for ever); for `wait` and `add --wait`: how long to wait for the torrents "
        "(default: for ever). Also 90s, 15m, 2h",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="btctl",
        description="Control a running btd daemon over its JSON-RPC socket.",
        epilog=_epilog(),
        formatter_class=HelpFormatter,
    )
    _common_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, cmd in COMMANDS.items():
        child = sub.add_parser(
            name,
            help=cmd.help,
            description=cmd.description,
            epilog=command_epilog(cmd),
            formatter_class=HelpFormatter,
        )
        _common_options(child, top=False)
        if cmd.setup is not None:
            cmd.setup(child)
    return parser


def _run(args: argparse.Namespace, out: Output) -> int:
    path, source = resolve_socket(args.socket)
    seconds = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    timeout = seconds if seconds > 0 else None
    client = RpcClient(path, timeout=timeout)
    try:
        return COMMANDS[args.command].run(client, args, out)
    except UsageError as exc:
        out.error(f"{exc}\nsee: btctl {args.command} --help")
        return EXIT_USAGE
    except RemoteError as exc:
        return report_remote_error(out, exc)
    except DaemonUnreachable as exc:
        out.error(str(exc))
        if source != "--socket":
            out.error(f"(socket from {source}; choose another with --socket PATH or $BTD_SOCKET)")
        return EXIT_UNREACHABLE
    except RpcTimeout as exc:
        out.error(f"{exc} (--timeout {seconds:g})")
        return EXIT_TIMEOUT
    except RpcProtocolError as exc:
        out.error(str(exc))
        return EXIT_REMOTE_ERROR
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    """The `btctl` console script; returns the exit code (see EXIT_CODES)."""
    out = Output(False, sys.stdout, sys.stderr)
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help (0) or a usage error (2), already printed
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        out.json_mode = args.json
        return _run(args, out)
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `btctl ... | head`: the reader left; stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

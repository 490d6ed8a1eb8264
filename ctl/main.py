"""`btctl`: the command-line control client for btd.

Parses the command line (``btd.ctl.parser``), finds the control socket, imports and runs
the one command asked for, and maps every failure to a documented exit code. It must start
fast: building the parser imports no command module, and only the command that runs is
imported (rich only for `watch`'s screen). Nothing here or below imports Twisted, PyYAML,
jsonrpcserver or pluggy; tests check both.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from btd.ctl.base import (
    DEFAULT_TIMEOUT,
    EXIT_BAD_INPUT,
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
from btd.ctl.parser import COMMANDS, Command, build_parser

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: btctl starts fast
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from btd.core.rpc.client import RpcClient

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
    "handler_of",
    "main",
    "resolve_socket",
]


def resolve_socket(option: str | None, env: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The socket to use and where it came from: --socket, then $BTD_SOCKET, then default."""
    from pathlib import Path

    from btd.core import paths

    env = os.environ if env is None else env
    if option:
        return Path(option).expanduser(), "--socket"
    value = env.get("BTD_SOCKET")
    if value:
        return Path(value).expanduser(), "$BTD_SOCKET"
    return paths.default_socket(env), "the default location"


def handler_of(cmd: Command) -> Callable[[RpcClient, argparse.Namespace, Output], int]:
    """Import the command's module (only now) and return its run function."""
    module, _, name = cmd.handler.partition(":")
    return getattr(importlib.import_module(module), name)


def _run(args: argparse.Namespace, out: Output) -> int:
    from btd.core.rpc.client import (
        DaemonUnreachable,
        RemoteError,
        RpcClient,
        RpcProtocolError,
        RpcTimeout,
    )

    path, source = resolve_socket(args.socket)
    seconds = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    timeout = seconds if seconds > 0 else None
    run = handler_of(COMMANDS[args.command])
    client = RpcClient(path, timeout=timeout)
    try:
        return run(client, args, out)
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
        except SystemExit as exc:  # --help/--version (0) or a usage error (2), already printed
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

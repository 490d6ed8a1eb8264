"""btctl's building blocks: exit codes, errors, the output helper and --timeout's parser.

Every command module and the parser use these; this module imports no other part of btctl
and, at import time, nothing but the standard library (so ``btctl --help`` stays light).
"""

from __future__ import annotations

import argparse
import json
import re

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: btctl starts fast
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TextIO

    from btd.core.rpc.client import RemoteError

DEFAULT_TIMEOUT = 30.0  # seconds to wait for the daemon's answer (--timeout)
HASH_HELP = "info hash or any unique prefix of it"

EXIT_OK = 0
EXIT_REMOTE_ERROR = 1  # the daemon answered with an error
EXIT_USAGE = 2  # bad command line (argparse uses 2 as well)
EXIT_UNREACHABLE = 3  # no daemon at the socket, or it went away
EXIT_NOT_FOUND = 4  # no torrent matches / the prefix is ambiguous
EXIT_TIMEOUT = 5  # no answer in time, or `wait` / `add --wait` gave up
EXIT_BAD_INPUT = 6  # a local input file (e.g. a .torrent for `add`) cannot be read
EXIT_TORRENT_FAILED = 7  # `wait` / `add --wait`: a torrent went to state error
EXIT_INTERRUPTED = 130  # Ctrl+C (128 + SIGINT)

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success"),
    (EXIT_REMOTE_ERROR, "the daemon returned an error (code and message on stderr)"),
    (EXIT_USAGE, "usage error (bad option, command or JSON-PARAMS)"),
    (EXIT_UNREACHABLE, "daemon unreachable (the message names the socket path tried)"),
    (EXIT_NOT_FOUND, "not found: no torrent matches, or the prefix is ambiguous"),
    (EXIT_TIMEOUT, "timed out waiting for an answer, or `wait` / `add --wait` gave up"),
    (EXIT_BAD_INPUT, "bad input file: `add` cannot read a FILE, `create` its PATH or -o FILE"),
    (EXIT_TORRENT_FAILED, "torrent failed: `wait` / `add --wait` saw it go to state error"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl+C)"),
)


class UsageError(Exception):
    """A command found its arguments unusable after argparse accepted them (exit 2)."""


class BadInput(Exception):
    """A local input file cannot be used (exit 6); nothing was sent for it."""


class Output:
    """Writes a command's result as human text or, with --json, as one JSON document."""

    def __init__(self, json_mode: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.json_mode = json_mode
        self.stdout = stdout
        self.stderr = stderr

    def emit(self, result: Any, human: Callable[[Any], str] | None = None) -> None:
        """Print ``result`` as JSON with --json (or with no human form), else ``human(result)``."""
        if self.json_mode or human is None:
            self.stdout.write(to_json(result) + "\n")
            return
        text = human(result)
        if text:
            self.stdout.write(text if text.endswith("\n") else text + "\n")

    def error(self, message: str) -> None:
        """Errors and hints go to stderr, each line prefixed ``btctl: ``."""
        for line in message.splitlines() or [""]:
            self.stderr.write(f"btctl: {line}\n")


def report_remote_error(out: Output, exc: RemoteError, context: str = "") -> int:
    """Print a daemon error (message, code, useful data) and return its exit code."""
    from btd.core.rpc.errors import AMBIGUOUS, NOT_FOUND  # only on the error path

    out.error(f"{context}{exc.message} (error {exc.code})")
    data = exc.data
    if data is not None and not (isinstance(data, dict) and set(data) <= {"field"}):
        out.error(f"{context}details: {to_json(data)}")
    return EXIT_NOT_FOUND if exc.code in (NOT_FOUND, AMBIGUOUS) else EXIT_REMOTE_ERROR


def to_json(value: Any) -> str:
    """The one JSON style btctl prints: indented, key order as the daemon sent it."""
    return json.dumps(value, indent=2, ensure_ascii=False)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"1.5"``, ``"15m"``, ``"2h"``, ``"1d"`` -> seconds (argparse type)."""
    match = _DURATION.match(str(text))
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: expected seconds or a number with s, m, h or d "
            "(90, 90s, 15m, 2h)"
        )
    return float(match.group(1)) * _UNIT[match.group(2).lower()]

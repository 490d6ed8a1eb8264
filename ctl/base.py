"""btctl's building blocks: exit codes, the subcommand registry and the output helper.

Kept apart from ``btd.ctl.main`` so command modules (``ctl_session``,
``ctl_torrent``) can register themselves without importing the entry point, which
runs as ``__main__`` under ``python -m btd.ctl.main``. Standard library only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from btd.core.rpc.client import RemoteError, RpcClient
from btd.core.rpc.errors import AMBIGUOUS, NOT_FOUND

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


Handler = Callable[[RpcClient, argparse.Namespace, Output], int]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, argument setup and handler.

    ``examples`` (indented command lines, shown under "Examples:" in ``--help`` and in the
    man page) is required in practice: a test checks every command's help has some.
    """

    name: str
    help: str
    run: Handler
    setup: Callable[[argparse.ArgumentParser], None] | None = None
    description: str = ""
    examples: str = ""


COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    help: str,
    setup: Callable[[argparse.ArgumentParser], None] | None = None,
    description: str = "",
    examples: str = "",
) -> Callable[[Handler], Handler]:
    """Register the decorated ``(client, args, out) -> exit code`` function as ``btctl NAME``."""

    def register(run: Handler) -> Handler:
        COMMANDS[name] = Command(name, help, run, setup, description or help, examples)
        return run

    return register


def report_remote_error(out: Output, exc: RemoteError, context: str = "") -> int:
    """Print a daemon error (message, code, useful data) and return its exit code."""
    out.error(f"{context}{exc.message} (error {exc.code})")
    data = exc.data
    if data is not None and not (isinstance(data, dict) and set(data) <= {"field"}):
        out.error(f"{context}details: {to_json(data)}")
    return EXIT_NOT_FOUND if exc.code in (NOT_FOUND, AMBIGUOUS) else EXIT_REMOTE_ERROR


# -- formatting helpers shared by commands ----------------------------------------------


def to_json(value: Any) -> str:
    """The one JSON style btctl prints: indented, key order as the daemon sent it."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def format_duration(seconds: float | int | None) -> str:
    """``93784`` -> ``1d 2h 03m``; ``3723`` -> ``1h 02m 03s``; ``42`` -> ``42s``."""
    if seconds is None:
        return "-"
    total = int(seconds)
    if total < 0:
        return "-"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_bytes(count: float | int | None) -> str:
    """Binary units, one decimal: ``1536`` -> ``1.5 KiB``."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_rate(per_second: float | int | None) -> str:
    """A transfer rate: ``1536`` -> ``1.5 KiB/s``."""
    return "-" if per_second is None else f"{format_bytes(per_second)}/s"


def format_progress(fraction: float | int | None) -> str:
    """``0.12345`` -> ``12.3%``; rounded down, so only a complete thing shows ``100.0%``."""
    if fraction is None:
        return "-"
    tenths = int(float(fraction) * 1000 + 1e-9)  # floor; the epsilon absorbs 0.1234999...
    return f"{tenths / 10:.1f}%"


def format_fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """Aligned ``key:  value`` lines (the human form of a single record)."""
    items = [(key, "-" if value is None else str(value)) for key, value in pairs]
    if not items:
        return ""
    width = max(len(key) for key, _ in items) + 1
    return "\n".join(f"{key + ':':<{width}}  {value}" for key, value in items)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain left-aligned table (the human form of a list)."""
    text_rows = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [list(headers), *text_rows]
    ]
    return "\n".join(lines)


def first_line(text: Any) -> str:
    """The first non-empty line of a docstring (or '')."""
    for line in str(text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""

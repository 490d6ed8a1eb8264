"""`btctl manpage`: btctl's man page in roff, generated from the parser.

One source of truth: ``btd.ctl.parser`` builds the argparse tree from its command table;
``--help``, this man page and the completion scripts (``btd.ctl.completion``) all come
from it, so a new command or option shows up everywhere without editing anything by hand.
Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from typing import TYPE_CHECKING

from btd.ctl.base import EXIT_CODES, EXIT_OK, Output
from btd.ctl.parser import (
    COMMANDS,
    metavar_of,
    options_of,
    parser_and_version,
    positionals_of,
    subparsers,
    synopsis,
    takes_value,
)

if TYPE_CHECKING:
    from btd.core.rpc.client import RpcClient


# -- the man page -------------------------------------------------------------------------------


def _roff(text: str) -> str:
    """Escape text for roff: backslashes, dashes, and a dot or quote opening a line."""
    text = str(text).replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"(?m)^([.'])", r"\\&\1", text)


def _roff_option(action: argparse.Action) -> list[str]:
    names = ", ".join(f"\\fB{_roff(s)}\\fR" for s in action.option_strings)
    if takes_value(action):
        names += f" \\fI{_roff(metavar_of(action))}\\fR"
    help_text = action.help if isinstance(action.help, str) else ""
    return [".TP", names, _roff(" ".join(help_text.split()))]


def manpage(parser: argparse.ArgumentParser, version: str = "", date: str | None = None) -> str:
    """A roff man page (section 1) for btctl, from the parser and the command registry."""
    if date is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        stamp = float(epoch) if epoch and epoch.isdigit() else time.time()
        date = time.strftime("%Y-%m-%d", time.gmtime(stamp))
    commands = subparsers(parser)
    out = [
        f'.TH BTCTL 1 "{date}" "btd {_roff(version)}" "btd manual"',
        ".SH NAME",
        "btctl \\- control a running btd BitTorrent daemon",
        ".SH SYNOPSIS",
        ".B btctl",
        (
            "[\\fB\\-\\-socket\\fR \\fIPATH\\fR] [\\fB\\-\\-json\\fR] "
            "[\\fB\\-\\-timeout\\fR \\fISECONDS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR...]"
        ),
        ".SH DESCRIPTION",
        _roff(parser.description or ""),
        ".PP",
        _roff(
            "btctl talks JSON-RPC 2.0 to btd over its Unix control socket. It prints text for "
            "people by default and, with --json, the daemon's result as one JSON document for "
            'scripts. Errors go to stderr, prefixed "btctl: ", and every outcome has an exit '
            "status (see EXIT STATUS). Torrents are named by their info hash or any unique "
            "prefix of it."
        ),
        ".SH OPTIONS",
        _roff("These options may be given before or after COMMAND."),
    ]
    for action in options_of(parser, common=True):
        out += _roff_option(action)
    out.append(".SH COMMANDS")
    for name, sub in commands.items():
        cmd = COMMANDS.get(name)
        out += [f'.SS "{_roff(synopsis(name, sub))}"', _roff(sub.description or "")]
        for action in options_of(sub, common=False):
            out += _roff_option(action)
        for action in positionals_of(sub):
            if action.help and action.help != argparse.SUPPRESS:
                out += [".TP", f"\\fI{_roff(metavar_of(action))}\\fR", _roff(action.help)]
        examples = cmd.examples.rstrip() if cmd else ""
        if examples:
            out += [".PP", "Examples:", ".PP", ".RS", ".nf"]
            out += [_roff(line.strip()) for line in examples.splitlines()]
            out += [".fi", ".RE"]
    out.append(".SH EXIT STATUS")
    for code, meaning in EXIT_CODES:
        out += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    out += [
        ".SH ENVIRONMENT",
        ".TP",
        ".B BTD_SOCKET",
        _roff("The control socket, when --socket is not given."),
        ".TP",
        ".B RUNTIME_DIRECTORY",
        _roff("Set by systemd (RuntimeDirectory=btd): the default socket is "
              "$RUNTIME_DIRECTORY/btd.sock."),
        ".TP",
        ".B XDG_RUNTIME_DIR",
        _roff("Otherwise the default socket is $XDG_RUNTIME_DIR/btd/btd.sock."),
        ".SH FILES",
        ".TP",
        ".I /run/btd/btd.sock",
        _roff("The socket of the system service (systemd)."),
        ".TP",
        ".I $XDG_RUNTIME_DIR/btd/btd.sock",
        _roff("The socket of a btd run by a user."),
        ".TP",
        ".I /tmp/btd\\-UID/btd.sock",
        _roff("The socket when no runtime directory is known."),
        ".SH SEE ALSO",
        ".BR btd (1),",
        _roff("docs/CLI.md and docs/RPC.md in the btd sources."),
        "",
    ]  # fmt: skip
    return "\n".join(out)


# -- the command ------------------------------------------------------------------------------


def cmd_manpage(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    parser, version = parser_and_version()
    out.stdout.write(manpage(parser, version.removeprefix("btd ")))
    return EXIT_OK

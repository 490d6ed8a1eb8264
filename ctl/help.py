"""btctl's help: examples, the help formatter, the man page, and walking the parser.

One source of truth: the argparse parser ``btd.ctl.main.build_parser()`` builds from the
command registry. ``--help`` epilogs, ``btctl manpage`` and the completion scripts
(``btd.ctl.completion``) all come from it, so a new command or option shows up
everywhere without editing anything by hand. Examples live with each command
(``@command(..., examples=...)``); ``EXAMPLES`` holds those of the commands registered
before that field existed. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import time

from btd.core.rpc.client import RpcClient
from btd.ctl.base import COMMANDS, EXIT_CODES, EXIT_OK, Command, Output, command

# Options every subcommand accepts (documented once, at the top level).
COMMON_OPTIONS = frozenset({"--socket", "--json", "--timeout", "-h", "--help"})

# Examples of the commands registered before Command.examples existed (new commands pass
# examples= to @command instead). Shown under "Examples:" in --help and in the man page.
EXAMPLES: dict[str, str] = {
    "status": """\
  btctl status
  btctl --json status | jq -r .version
  btctl --socket /run/btd/btd.sock status
""",
    "methods": """\
  btctl methods
  btctl --json methods | jq -r '.[].name'
""",
    "shutdown": """\
  btctl shutdown
  btctl shutdown && while btctl status >/dev/null 2>&1; do sleep 1; done
""",
    "plugins": """\
  btctl plugins
  btctl --json plugins | jq -r '.[] | select(.enabled) | .name'
""",
    "call": """\
  btctl call session.info
  btctl call torrent.get '{"info_hash": "3f9a"}'
  btctl call torrent.pause '["3f9a"]'
  jq -n '{info_hash: "3f9a"}' | btctl call torrent.get -
""",
    "add": """\
  btctl add debian.torrent ubuntu.torrent
  btctl add --paused --dir ~/iso debian.torrent
  curl -s https://example.org/x.torrent | btctl add -
  btctl add --wait --timeout 2h debian.torrent && echo done   # exit 0/5/7
""",
    "list": """\
  btctl list
  btctl list --state downloading
  btctl --json list | jq -r '.[] | select(.progress == 1) | .name'
""",
    "info": """\
  btctl info 3f9a
  btctl --json info 3f9a | jq .files
""",
    "pause": """\
  btctl pause 3f9a
  btctl pause $(btctl --json list --state downloading | jq -r '.[].info_hash')
""",
    "resume": """\
  btctl resume 3f9a 8c02
""",
    "verify": """\
  btctl verify 3f9a
  btctl verify 3f9a && btctl wait 3f9a   # recheck, then wait until complete
""",
    "rm": """\
  btctl rm 3f9a
  btctl rm --delete-data 3f9a 8c02
""",
    "peers": """\
  btctl peers 3f9a
  btctl --json peers 3f9a | jq length
""",
    "files": """\
  btctl files 3f9a
""",
    "trackers": """\
  btctl trackers 3f9a
""",
    "set": """\
  btctl set 3f9a strategy=sequential
""",
    "add-peer": """\
  btctl add-peer 3f9a 192.0.2.7:6881
  btctl add-peer 3f9a [::1]:6881
""",
    "stats": """\
  btctl stats
  btctl --json stats | jq .download_rate
""",
    "watch": """\
  btctl watch
  btctl watch --plain --interval 5 | tee torrents.log
  btctl watch --plain --count 1
""",
}


def examples_of(cmd: Command) -> str:
    return cmd.examples or EXAMPLES.get(cmd.name, "")


def command_epilog(cmd: Command) -> str | None:
    """The ``--help`` epilog of a command: its examples."""
    text = examples_of(cmd).rstrip()
    return f"Examples:\n{text}" if text else None


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps prose paragraphs to the terminal, keeps indented lines (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap  # only when help is shown

        blocks = []
        for block in text.split("\n\n"):
            lines = block.splitlines()
            if any(line.startswith(" ") for line in lines):
                blocks.append("\n".join(indent + line for line in lines))
            else:
                blocks.append(
                    textwrap.fill(
                        " ".join(block.split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                    )
                )
        return "\n\n".join(blocks)


# -- walking the parser --------------------------------------------------------------------


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def options_of(parser: argparse.ArgumentParser, *, common: bool) -> list[argparse.Action]:
    """Option actions: the common ones only, or only the command's own."""
    found = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if bool(set(action.option_strings) & COMMON_OPTIONS) == common:
            found.append(action)
    return found


def positionals_of(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
    ]


def metavar_of(action: argparse.Action) -> str:
    if isinstance(action.metavar, str):
        return action.metavar
    if action.choices:
        return "|".join(str(c) for c in action.choices)
    return action.dest.upper()


def takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def synopsis(name: str, parser: argparse.ArgumentParser) -> str:
    """``btctl add [--paused] [--dir DIR] FILE...`` (common options left out)."""
    parts = [f"btctl {name}"]
    for action in options_of(parser, common=False):
        flag = action.option_strings[-1]
        parts.append(f"[{flag} {metavar_of(action)}]" if takes_value(action) else f"[{flag}]")
    for action in positionals_of(parser):
        meta = metavar_of(action)
        if action.nargs in ("+", "*"):
            meta += "..."
        parts.append(f"[{meta}]" if action.nargs in ("?", "*") else meta)
    return " ".join(parts)


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
        examples = examples_of(cmd).rstrip() if cmd else ""
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


def parser_and_version() -> tuple[argparse.ArgumentParser, str]:
    from btd.core.version import __version__
    from btd.ctl.main import build_parser  # late: btd.ctl.main imports this module

    return build_parser(), f"btd {__version__}"


@command(
    "manpage",
    "print btctl's man page (roff), generated from its help",
    description="Print the btctl(1) man page in roff on stdout, generated from the same "
    "parser and examples as --help. --json is ignored.",
    examples="""\
  btctl manpage | man -l -
  btctl manpage > /usr/local/share/man/man1/btctl.1
""",
)
def cmd_manpage(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    parser, version = parser_and_version()
    out.stdout.write(manpage(parser, version.removeprefix("btd ")))
    return EXIT_OK

"""btctl's help examples, shell completion and man page, all generated from its parser.

One source of truth: the argparse parser ``btd.core.ctl.build_parser()`` builds from the
command registry. ``btctl completion bash|zsh`` and ``btctl manpage`` walk it, so a new
command or option shows up everywhere without editing a script by hand. Examples live
with each command (``@command(..., examples=...)``); ``EXAMPLES`` holds those of the
commands registered before that field existed. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import textwrap
import time
from collections.abc import Iterable

from btd.core.ctl_base import (
    COMMANDS,
    EXIT_CODES,
    EXIT_OK,
    Command,
    Output,
    command,
)
from btd.core.rpc.client import RpcClient

# Options every subcommand accepts (documented once, at the top level).
COMMON_OPTIONS = frozenset({"--socket", "--json", "--timeout", "-h", "--help"})

# What to offer for a value, by metavar: a kind of completion, or fixed words.
METAVAR_KIND = {"DIR": "dirs", "FILE": "files", "PATH": "files", "HASH": "hashes"}
METAVAR_WORDS = {
    "STATE": ("checking", "downloading", "seeding", "paused", "error", "stopped"),
    "SIZE": ("16K", "32K", "64K", "128K", "256K", "512K", "1M", "2M", "4M", "8M", "16M"),
    "KEY=VALUE": ("strategy=",),
    "NAME": ("rarest-first", "sequential"),
}

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
        blocks = []
        for block in text.split("\n\n"):
            lines = block.splitlines()
            if any(line.startswith(" ") for line in lines):
                blocks.append("\n".join(indent + line for line in lines))
            else:
                blocks.append(
                    textwrap.fill(
                        " ".join(block.split()), width,
                        initial_indent=indent, subsequent_indent=indent,
                    )  # fmt: skip
                )
        return "\n\n".join(blocks)


# -- walking the parser --------------------------------------------------------------------


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser, *, common: bool) -> list[argparse.Action]:
    """Option actions: the common ones only, or only the command's own."""
    found = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if bool(set(action.option_strings) & COMMON_OPTIONS) == common:
            found.append(action)
    return found


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
    ]


def _metavar(action: argparse.Action) -> str:
    if isinstance(action.metavar, str):
        return action.metavar
    if action.choices:
        return "|".join(str(c) for c in action.choices)
    return action.dest.upper()


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def value_completion(action: argparse.Action) -> tuple[str, tuple[str, ...]]:
    """("files" | "dirs" | "hashes" | "words" | "none", words) for an action's value."""
    if action.choices:
        return "words", tuple(str(c) for c in action.choices)
    metavar = _metavar(action)
    if metavar in METAVAR_WORDS:
        return "words", METAVAR_WORDS[metavar]
    return METAVAR_KIND.get(metavar, "none"), ()


def synopsis(name: str, parser: argparse.ArgumentParser) -> str:
    """``btctl add [--paused] [--dir DIR] FILE...`` (common options left out)."""
    parts = [f"btctl {name}"]
    for action in _options(parser, common=False):
        flag = action.option_strings[-1]
        parts.append(f"[{flag} {_metavar(action)}]" if _takes_value(action) else f"[{flag}]")
    for action in _positionals(parser):
        meta = _metavar(action)
        if action.nargs in ("+", "*"):
            meta += "..."
        parts.append(f"[{meta}]" if action.nargs in ("?", "*") else meta)
    return " ".join(parts)


# -- bash -------------------------------------------------------------------------------------


def _bash_words(words: Iterable[str]) -> str:
    return " ".join(words).replace('"', "")


def _bash_kind(kind: str, words: tuple[str, ...]) -> str:
    return f'_btctl_complete {kind} "{_bash_words(words)}"' if words else f"_btctl_complete {kind}"


def _bash_value_cases(actions: list[argparse.Action], indent: str) -> list[str]:
    lines = []
    for action in actions:
        if not _takes_value(action):
            continue
        kind, words = value_completion(action)
        pattern = "|".join(action.option_strings)
        body = "return" if kind == "none" else f"{_bash_kind(kind, words)}; return"
        lines.append(f"{indent}{pattern}) {body} ;;")
    return lines


def _bash_positional_case(parser: argparse.ArgumentParser, indent: str) -> list[str]:
    positionals = _positionals(parser)
    if not positionals:
        return [f"{indent}COMPREPLY=()"]
    lines = [f'{indent}case "$npos" in']
    for index, action in enumerate(positionals):
        kind, words = value_completion(action)
        last = index == len(positionals) - 1
        repeat = action.nargs in ("+", "*")
        label = "*" if (last and repeat) else str(index)
        lines.append(f"{indent}    {label}) {_bash_kind(kind, words)} ;;")
        if repeat:
            break
    lines.append(f"{indent}esac")
    return lines


def bash_script(parser: argparse.ArgumentParser, version: str = "") -> str:
    """A bash completion script for ``btctl`` (commands, options, values, torrent hashes)."""
    commands = subparsers(parser)
    common = _options(parser, common=True)
    common_flags = sorted(s for a in common for s in a.option_strings)
    common_values = "|".join(
        s for a in common if _takes_value(a) for s in a.option_strings if s != "--socket"
    )
    out = [
        f"# bash completion for btctl, generated by `btctl completion bash` ({version})",
        "# install: btctl completion bash > ~/.local/share/bash-completion/completions/btctl",
        "",
        "_btctl_hashes() {",
        '    command btctl ${_btctl_socket:+--socket "$_btctl_socket"} --timeout 3 --json list \\',
        "        2>/dev/null | sed -n 's/^ *\"info_hash\": \"\\([0-9a-fA-F]*\\)\".*/\\1/p'",
        "}",
        "",
        "_btctl_complete() {",
        '    case "$1" in',
        '        files) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;',
        '        dirs) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;',
        '        hashes) COMPREPLY=($(compgen -W "$(_btctl_hashes)" -- "$cur")) ;;',
        '        words) COMPREPLY=($(compgen -W "$2" -- "$cur")) ;;',
        "        *) COMPREPLY=() ;;",
        "    esac",
        "}",
        "",
        "_btctl() {",
        "    local cur prev cmd i j npos skip _btctl_socket",
        "    COMPREPLY=()",
        '    cur="${COMP_WORDS[COMP_CWORD]}"',
        '    prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    cmd=""',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        case "${COMP_WORDS[i]}" in',
        '            --socket) _btctl_socket="${COMP_WORDS[i+1]}"; ((i++)) ;;',
        f"            {common_values}) ((i++)) ;;",
        "            -*) ;;",
        '            *) cmd="${COMP_WORDS[i]}"; break ;;',
        "        esac",
        "    done",
        '    case "$prev" in',
        *_bash_value_cases(common, "        "),
        "    esac",
        '    if [[ -z "$cmd" ]]; then',
        '        if [[ "$cur" == -* ]]; then',
        f'            COMPREPLY=($(compgen -W "{_bash_words(common_flags)}" -- "$cur"))',
        "        else",
        f'            COMPREPLY=($(compgen -W "{_bash_words(commands)}" -- "$cur"))',
        "        fi",
        "        return",
        "    fi",
        '    case "$cmd" in',
    ]
    for name, sub in commands.items():
        own = _options(sub, common=False)
        flags = sorted({s for a in own for s in a.option_strings} | set(common_flags))
        value_opts = " ".join(s for a in [*own, *common] if _takes_value(a) for s in a.option_strings)
        out += [
            f"        {name})",
            '            case "$prev" in',
            *_bash_value_cases([*own, *common], "                "),
            "            esac",
            '            if [[ "$cur" == -* ]]; then',
            f'                COMPREPLY=($(compgen -W "{_bash_words(flags)}" -- "$cur"))',
            "                return",
            "            fi",
            "            npos=0; skip=",
            "            for ((j = i + 1; j < COMP_CWORD; j++)); do",
            '                if [[ -n "$skip" ]]; then skip=; continue; fi',
            f'                case " {value_opts} " in *" ${{COMP_WORDS[j]}} "*) skip=1; continue ;; esac',
            '                [[ "${COMP_WORDS[j]}" == -* ]] || ((npos++))',
            "            done",
            *_bash_positional_case(sub, "            "),
            "            ;;",
        ]
    out += [
        "    esac",
        "}",
        "",
        "complete -F _btctl btctl",
        "",
    ]
    return "\n".join(out)


# -- zsh --------------------------------------------------------------------------------------


def _zq(text: str) -> str:
    """Text for inside a single-quoted zsh spec: no quotes, brackets or newlines to break it."""
    text = " ".join(str(text or "").split())
    return text.replace("'", "'\\''").replace("[", "(").replace("]", ")")


def _zmsg(text: str) -> str:
    return _zq(text).replace(":", "\\:")


def _zsh_action(action: argparse.Action) -> str:
    kind, words = value_completion(action)
    if kind == "files":
        return "_files"
    if kind == "dirs":
        return "_files -/"
    if kind == "hashes":
        return "_btctl_hashes"
    if kind == "words":
        return "(" + " ".join(_zq(w) for w in words) + ")"
    return " "


def _zsh_option_specs(actions: list[argparse.Action]) -> list[str]:
    specs = []
    for action in actions:
        help_text = _zq(action.help if isinstance(action.help, str) else "")
        repeat = "*" if isinstance(action, argparse._AppendAction) else ""
        names = action.option_strings
        for name in names:
            exclude = "" if repeat or len(names) == 1 else "(" + " ".join(names) + ")"
            if _takes_value(action):
                sep = "+" if not name.startswith("--") else "="
                value = f":{_zmsg(_metavar(action))}:{_zsh_action(action)}"
                specs.append(f"'{exclude}{repeat}{name}{sep}[{help_text}]{value}'")
            else:
                specs.append(f"'{exclude}{repeat}{name}[{help_text}]'")
    return specs


def _zsh_positional_specs(parser: argparse.ArgumentParser) -> list[str]:
    specs = []
    for index, action in enumerate(_positionals(parser), start=1):
        message = _zmsg(_metavar(action))
        act = _zsh_action(action)
        if action.nargs in ("+", "*"):
            specs.append(f"'*:{message}:{act}'")
            break
        optional = ":" if action.nargs == "?" else ""
        specs.append(f"'{index}:{optional}{message}:{act}'")
    return specs


def zsh_script(parser: argparse.ArgumentParser, version: str = "") -> str:
    """A zsh completion function (``#compdef btctl``) for ``btctl``."""
    commands = subparsers(parser)
    common = _options(parser, common=True)
    out = [
        "#compdef btctl",
        f"# zsh completion for btctl, generated by `btctl completion zsh` ({version})",
        "# install: btctl completion zsh > ~/.zfunc/_btctl; in ~/.zshrc before compinit:",
        "#   fpath=(~/.zfunc $fpath)",
        "",
        "_btctl_hashes() {",
        "  local -a hashes",
        "  hashes=(${(f)\"$(command btctl --timeout 3 --json list 2>/dev/null | "
        "sed -n 's/^ *\"info_hash\": \"\\([0-9a-fA-F]*\\)\".*/\\1/p')\"})",
        "  compadd -a hashes",
        "}",
        "",
        "_btctl() {",
        '  local curcontext="$curcontext" state line ret=1',
        "  typeset -A opt_args",
        "  _arguments -C \\",
        *[f"    {spec} \\" for spec in _zsh_option_specs(common)],
        "    '1:command:->command' \\",
        "    '*::argument:->argument' && ret=0",
        "  case $state in",
        "    command)",
        "      local -a commands",
        "      commands=(",
        *[f"        '{name}:{_zq(COMMANDS[name].help if name in COMMANDS else '')}'"
          for name in commands],
        "      )",
        "      _describe -t commands 'btctl command' commands && ret=0",
        "      ;;",
        "    argument)",
        '      curcontext="${curcontext%:*:*}:btctl-$words[1]:"',
        "      case $words[1] in",
    ]  # fmt: skip
    for name, sub in commands.items():
        specs = _zsh_option_specs(_options(sub, common=False)) + _zsh_positional_specs(sub)
        out.append(f"        {name})")
        if specs:
            out.append("          _arguments \\")
            out += [f"            {spec} \\" for spec in specs[:-1]]
            out.append(f"            {specs[-1]} && ret=0")
        else:
            out.append("          _message 'no arguments' && ret=0")
        out.append("          ;;")
    out += [
        "      esac",
        "      ;;",
        "  esac",
        "  return ret",
        "}",
        "",
        '_btctl "$@"',
        "",
    ]
    return "\n".join(out)


# -- the man page -------------------------------------------------------------------------------


def _roff(text: str) -> str:
    """Escape text for roff: backslashes, dashes, and a dot or quote opening a line."""
    text = str(text).replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"(?m)^([.'])", r"\\&\1", text)


def _roff_option(action: argparse.Action) -> list[str]:
    names = ", ".join(f"\\fB{_roff(s)}\\fR" for s in action.option_strings)
    if _takes_value(action):
        names += f" \\fI{_roff(_metavar(action))}\\fR"
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
        "[\\fB\\-\\-socket\\fR \\fIPATH\\fR] [\\fB\\-\\-json\\fR] "
        "[\\fB\\-\\-timeout\\fR \\fISECONDS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR...]",
        ".SH DESCRIPTION",
        _roff(parser.description or ""),
        ".PP",
        _roff(
            "btctl talks JSON-RPC 2.0 to btd over its Unix control socket. It prints text for "
            "people by default and, with --json, the daemon's result as one JSON document for "
            "scripts. Errors go to stderr, prefixed \"btctl: \", and every outcome has an exit "
            "status (see EXIT STATUS). Torrents are named by their info hash or any unique "
            "prefix of it."
        ),
        ".SH OPTIONS",
        _roff("These options may be given before or after COMMAND."),
    ]
    for action in _options(parser, common=True):
        out += _roff_option(action)
    out.append(".SH COMMANDS")
    for name, sub in commands.items():
        cmd = COMMANDS.get(name)
        out += [f'.SS "{_roff(synopsis(name, sub))}"', _roff(sub.description or "")]
        for action in _options(sub, common=False):
            out += _roff_option(action)
        for action in _positionals(sub):
            if action.help and action.help != argparse.SUPPRESS:
                out += [".TP", f"\\fI{_roff(_metavar(action))}\\fR", _roff(action.help)]
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


# -- the commands ---------------------------------------------------------------------------------


def _parser_and_version() -> tuple[argparse.ArgumentParser, str]:
    from btd.core.ctl import build_parser  # late: btd.core.ctl imports this module
    from btd.core.version import __version__

    return build_parser(), f"btd {__version__}"


def _setup_completion(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", metavar="SHELL", choices=("bash", "zsh"), help="bash or zsh")


@command(
    "completion",
    "print a bash or zsh completion script for btctl",
    setup=_setup_completion,
    description="Print a completion script for SHELL (bash or zsh) on stdout, generated from "
    "btctl's own parser: commands, options, option values, and torrent hashes (asked from "
    "the daemon with `btctl --json list` when one is running). --json is ignored.",
    examples="""\
  btctl completion bash > ~/.local/share/bash-completion/completions/btctl
  source <(btctl completion bash)          # this shell only
  btctl completion zsh > ~/.zfunc/_btctl   # with fpath=(~/.zfunc $fpath) before compinit
""",
)
def cmd_completion(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    parser, version = _parser_and_version()
    script = bash_script(parser, version) if args.shell == "bash" else zsh_script(parser, version)
    out.stdout.write(script)
    return EXIT_OK


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
    parser, version = _parser_and_version()
    out.stdout.write(manpage(parser, version.removeprefix("btd ")))
    return EXIT_OK

"""btctl's command line: every command, its arguments and examples, and the argparse tree.

The one source of truth for what btctl accepts. ``--help``, the man page (``btd.ctl.help``)
and the completion scripts (``btd.ctl.completion``) are all generated from
:func:`build_parser`, so a new command or option shows up everywhere without editing
anything by hand. A command names its handler as ``"module:function"``; ``btd.ctl.main``
imports only the module of the command that runs, so building the parser imports no
command module (btctl starts fast). This module imports nothing of btctl's commands.
Size: about 600 lines, because it is the whole command-line surface in one place, as data.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from btd.ctl.base import DEFAULT_TIMEOUT, EXIT_CODES, HASH_HELP, parse_duration

Setup = Callable[[argparse.ArgumentParser], None]

# Options every subcommand accepts (documented once, at the top level).
COMMON_OPTIONS = frozenset({"--socket", "--json", "--timeout", "-h", "--help"})
TOP_OPTIONS = frozenset({"--version"})  # accepted before COMMAND only
SETTABLE = (  # torrent.set's keys, for help and completion (the daemon checks what is given)
    "strategy",
    "queue_position",
    "force_start",
    "ratio_limit",
    "seeding_time_limit",
    "idle_seeding_limit",
)
QUEUE_MOVES = ("top", "up", "down", "bottom")


class Command:
    """A subcommand: name, one-line help, argument setup, examples and where its handler is.

    ``handler`` is ``"btd.ctl.module:function"``, a ``(client, args, out) -> exit code``
    function imported only when the command runs. ``examples`` (indented command lines,
    shown under "Examples:" in ``--help`` and in the man page) is required: a test checks it.
    """

    __slots__ = ("name", "help", "handler", "setup", "description", "examples")

    def __init__(
        self,
        name: str,
        help: str,
        handler: str,
        setup: Setup | None = None,
        description: str = "",
        examples: str = "",
    ) -> None:
        self.name = name
        self.help = help
        self.handler = handler
        self.setup = setup
        self.description = description or help
        self.examples = examples


# -- argument setups ---------------------------------------------------------------------------


def _one_hash(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("info_hash", metavar="HASH", help=HASH_HELP)


def _many_hashes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("info_hashes", metavar="HASH", nargs="+", help=HASH_HELP)


def _setup_call(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method", metavar="METHOD", help="method name, e.g. session.info")
    parser.add_argument(
        "params",
        metavar="JSON-PARAMS",
        nargs="?",
        help="parameters as a JSON object or array ('-' reads them from stdin)",
    )


def _setup_add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        metavar="FILE",
        nargs="+",
        help=".torrent file ('-' reads one from stdin) or a magnet link ('magnet:?xt=...')",
    )
    parser.add_argument("--paused", action="store_true", help="add without starting it")
    parser.add_argument("--dir", metavar="DIR", help="save the data here (default: daemon's)")
    parser.add_argument("--strategy", metavar="NAME", help="piece strategy (e.g. rarest-first)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument(
        "--only", metavar="LIST", help="download only these files (0-based indices: 1,3,5-7)"
    )
    only.add_argument("--skip", metavar="LIST", help="skip these files (0-based indices)")
    parser.add_argument(
        "--label", metavar="LABEL", action="append", dest="labels",
        help="give the torrent this label (repeat for more); its per-label defaults apply",
    )  # fmt: skip
    parser.add_argument(
        "--wait",
        action="store_true",
        help="then wait until the torrents complete (exit 0), fail (7) or --timeout "
        "DURATION passes (5); see `btctl wait --help`",
    )


def _setup_files(parser: argparse.ArgumentParser) -> None:
    _one_hash(parser)
    parser.add_argument("--skip", metavar="LIST", help="skip these files (0-based: 1,3,5-7)")
    parser.add_argument("--want", metavar="LIST", help="want these files again")
    parser.add_argument(
        "--priority",
        nargs=2,
        action="append",
        metavar=("LEVEL", "LIST"),
        help="set these files' priority: low, normal or high (repeatable)",
    )


def _setup_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        metavar="STATE",
        help="only torrents in this state: metadata, checking, downloading, seeding, paused, "
        "error, stopped, queued",
    )
    parser.add_argument("--label", metavar="LABEL", help="only torrents with this label")


def _setup_rm(parser: argparse.ArgumentParser) -> None:
    _many_hashes(parser)
    parser.add_argument(
        "--delete-data", action="store_true", help="also delete the downloaded files"
    )


def _setup_set(parser: argparse.ArgumentParser) -> None:
    _one_hash(parser)
    parser.add_argument(
        "settings",
        metavar="KEY=VALUE",
        nargs="+",
        help=f"keys: {', '.join(SETTABLE)}; a value is JSON when it parses (2.0, -1, null, "
        "true), else text",
    )


def _rate(text: str) -> int:
    """argparse type of a speed limit (``5M``, ``500k``, ``0``)."""
    from btd.ctl.format import parse_rate  # standard library only: cheap

    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _setup_limit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "info_hash", metavar="HASH", nargs="?", help=f"{HASH_HELP} (none: the global limits)"
    )
    rate = "bytes/s, or 500k, 5M, 1.5G (binary units); 0 or none = unlimited"
    parser.add_argument("--down", metavar="RATE", type=_rate, help=f"download limit: {rate}")
    parser.add_argument("--up", metavar="RATE", type=_rate, help=f"upload limit: {rate}")


def _setup_alt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "switch", metavar="on|off", nargs="?", choices=("on", "off"), help="none: show the state"
    )


def _setup_move(parser: argparse.ArgumentParser) -> None:
    _one_hash(parser)
    parser.add_argument(
        "dir", metavar="DIR", help="the folder to move its files into (relative: to here)"
    )


def _setup_settings(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "settings", metavar="KEY[=VALUE]", nargs="*",
        help="KEY=VALUE changes a setting (values as in YAML; rates and sizes take 5M, 500k); "
        "KEY alone shows it; nothing shows them all",
    )  # fmt: skip
    parser.add_argument(
        "--reset", metavar="KEY", nargs="+",
        help="forget these saved settings: the configuration file's values apply again",
    )  # fmt: skip


def _setup_label(parser: argparse.ArgumentParser) -> None:
    _one_hash(parser)
    parser.add_argument(
        "labels", metavar="LABEL", nargs="*", help="the torrent's labels (they replace its labels)"
    )
    parser.add_argument("--clear", action="store_true", help="remove all its labels")


def _setup_queue(parser: argparse.ArgumentParser) -> None:
    _one_hash(parser)
    parser.add_argument("move", metavar="MOVE", choices=QUEUE_MOVES, help="top, up, down, bottom")


def _setup_add_peer(parser: argparse.ArgumentParser) -> None:
    _one_hash(parser)
    parser.add_argument("peer", metavar="HOST:PORT", help="e.g. 192.0.2.7:6881 or [::1]:6881")


def _setup_watch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval",
        metavar="SECONDS",
        type=float,
        default=1.0,
        help="refresh the list and totals this often (default 1)",
    )
    parser.add_argument(
        "--count", metavar="N", type=int, default=None, help="stop after N rounds (refreshes)"
    )
    parser.add_argument(
        "--plain", action="store_true", help="print status lines even on a terminal"
    )


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
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument(
        "--v2", action="store_true",
        help="a BitTorrent v2 torrent (BEP 52: SHA-256 merkle trees per file)",
    )  # fmt: skip
    kind.add_argument(
        "--hybrid", action="store_true",
        help="a hybrid torrent: v1 and v2 of the same data (pad files align each file to a "
        "piece), for clients of both kinds",
    )  # fmt: skip


def _setup_completion(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", metavar="SHELL", choices=("bash", "zsh"), help="bash or zsh")


# -- the commands, in the order --help lists them ------------------------------------------

_SESSION = "btd.ctl.session"
_TORRENT = "btd.ctl.torrent"

COMMAND_LIST: tuple[Command, ...] = (
    Command(
        "status", "show the daemon's version, pid, uptime, config file and plugins",
        f"{_SESSION}:cmd_status",
        examples="""\
  btctl status
  btctl --json status | jq -r .version
  btctl --socket /run/btd/btd.sock status
""",
    ),
    Command(
        "config", "print the daemon's effective configuration (section.key: value)",
        f"{_SESSION}:cmd_config",
        description="Call session.config: the configuration the daemon runs with (its file, "
        "if any, merged over the built-in defaults and command-line options), one "
        "`section.key: value` line per setting, the file in use first. --json prints the "
        "object as the daemon sent it.",
        examples="""\
  btctl config
  btctl config | grep ^session.
  btctl --json config | jq .session.download_dir
""",
    ),
    Command(
        "settings", "show or change the daemon's run-time settings (kept across restarts)",
        "btd.ctl.settings:cmd_settings", _setup_settings,
        description="Without arguments, show every setting the daemon can change while it "
        "runs (session.get): speed limits, queue, seeding goals and the other live keys of "
        "the session section, by their YAML name, and daemon.log_level. KEY=VALUE changes "
        "them (session.set): every value is checked first (a bad one changes nothing), then "
        "they apply at once, as a SIGHUP reload would, and are saved in "
        "STATE_DIR/settings.yaml, which is read over the configuration file at every start "
        "and reload. Values are read as in YAML (null, true/false, numbers, text); rates and "
        "sizes take binary units (5M = 5 MiB). --reset KEY forgets a saved value so the "
        "configuration file's applies again.",
        examples="""\
  btctl settings
  btctl settings upload_slots
  btctl settings upload_slots=8 daemon.log_level=debug
  btctl settings --reset upload_slots
  btctl --json settings | jq .upload_slots
""",
    ),
    Command(
        "methods", "list the daemon's JSON-RPC methods with a one-line description",
        f"{_SESSION}:cmd_methods",
        examples="""\
  btctl methods
  btctl --json methods | jq -r '.[].name'
""",
    ),
    Command(
        "plugins", "list plugins, enabled or not, with their version and hooks",
        "btd.ctl.plugins:cmd_plugins",
        description="Call session.plugins: every plugin the daemon knows (built-in or "
        "installed through the btd.plugins entry points), whether it is enabled, its version "
        "and the hooks it implements (shown for enabled plugins only).",
        examples="""\
  btctl plugins
  btctl --json plugins | jq -r '.[] | select(.enabled) | .name'
""",
    ),
    Command(
        "shutdown", "ask the daemon to stop (it finishes writing resume data first)",
        f"{_SESSION}:cmd_shutdown",
        examples="""\
  btctl shutdown
  btctl shutdown && while btctl status >/dev/null 2>&1; do sleep 1; done
""",
    ),
    Command(
        "call", "call any JSON-RPC method and print its result as JSON",
        f"{_SESSION}:cmd_call", _setup_call,
        description="Call METHOD with JSON-PARAMS (an object or an array) and print the "
        "result as JSON, in both human and --json mode.",
        examples="""\
  btctl call session.info
  btctl call torrent.get '{"info_hash": "3f9a"}'
  btctl call torrent.pause '["3f9a"]'
  jq -n '{info_hash: "3f9a"}' | btctl call torrent.get -
""",
    ),
    Command(
        "add", "add .torrent files or magnet links (already present is not an error)",
        f"{_TORRENT}:cmd_add", _setup_add,
        description="Read each FILE (a .torrent; '-' reads stdin) and add it to the daemon; a "
        "magnet link is sent as it is and waits in the list (state `metadata`) for its info "
        "dictionary from peers. "
        "btctl reads the file itself, so the daemon needs no access to it. A torrent already "
        "there stays where it is: --dir does not move it (btctl says so). With --wait, btctl "
        "then waits like `btctl wait` (--timeout DURATION bounds the whole wait: 90, 15m, 2h).",
        examples="""\
  btctl add debian.torrent ubuntu.torrent
  btctl add --paused --dir ~/iso debian.torrent
  btctl add --label tv show.torrent          # with the tv label's defaults (save path, ...)
  curl -s https://example.org/x.torrent | btctl add -
  btctl add --wait --timeout 2h debian.torrent && echo done   # exit 0/5/7
""",
    ),
    Command(
        "list", "list the torrents with their state, progress and rates",
        f"{_TORRENT}:cmd_list", _setup_list,
        examples="""\
  btctl list
  btctl list --state downloading
  btctl list --label tv
  btctl --json list | jq -r '.[] | select(.progress == 1) | .name'
""",
    ),
    Command(
        "info", "show one torrent: fields, piece map, files, peers and trackers",
        f"{_TORRENT}:cmd_info", _one_hash,
        description="Everything `btctl watch` shows in its detail pane, once. --json prints "
        "torrent.get's result with the connected peers (torrent.peers) under `peer_list`.",
        examples="""\
  btctl info 3f9a
  btctl --json info 3f9a | jq .files
""",
    ),
    Command(
        "pause", "pause torrents (peers closed, trackers told)",
        f"{_TORRENT}:cmd_pause", _many_hashes,
        examples="""\
  btctl pause 3f9a
  btctl pause $(btctl --json list --state downloading | jq -r '.[].info_hash')
""",
    ),
    Command(
        "resume", "resume paused (or failed) torrents",
        f"{_TORRENT}:cmd_resume", _many_hashes,
        examples="""\
  btctl resume 3f9a 8c02
""",
    ),
    Command(
        "verify", "recheck every piece of torrents against the disk",
        f"{_TORRENT}:cmd_verify", _many_hashes,
        examples="""\
  btctl verify 3f9a
  btctl verify 3f9a && btctl wait 3f9a   # recheck, then wait until complete
""",
    ),
    Command(
        "rm", "remove torrents (and with --delete-data their files)",
        f"{_TORRENT}:cmd_rm", _setup_rm,
        examples="""\
  btctl rm 3f9a
  btctl rm --delete-data 3f9a 8c02
""",
    ),
    Command(
        "peers", "list a torrent's connected peers (flags: see docs/CLI.md)",
        f"{_TORRENT}:cmd_peers", _one_hash,
        examples="""\
  btctl peers 3f9a
  btctl --json peers 3f9a | jq length
""",
    ),
    Command(
        "files", "list a torrent's files (0-based index, progress, wanted, priority); "
        "want, skip or prioritise them",
        "btd.ctl.files:cmd_files", _setup_files,
        examples="""\
  btctl files 3f9a
  btctl files 3f9a --skip 2,3 --want 1 --priority high 4
  btctl files 3f9a --priority low 0-9
""",
    ),
    Command(
        "trackers", "list a torrent's trackers with their status",
        f"{_TORRENT}:cmd_trackers", _one_hash,
        examples="""\
  btctl trackers 3f9a
""",
    ),
    Command(
        "set", "change a torrent's settings (KEY=VALUE ...)",
        "btd.ctl.torrent_set:cmd_set", _setup_set,
        description="Any setting torrent.set takes; the daemon checks keys and values. A "
        "value is read as JSON when it parses, else as text. Seeding goals: null = the "
        "session's, -1 = unlimited.",
        examples="""\
  btctl set 3f9a strategy=sequential
  btctl set 3f9a ratio_limit=2.0 seeding_time_limit=1440
  btctl set 3f9a ratio_limit=null      # back to the session's goal
  btctl set 3f9a force_start=true queue_position=0
""",
    ),
    Command(
        "queue", "move a torrent in the queue (top, up, down, bottom)",
        "btd.ctl.torrent_set:cmd_queue", _setup_queue,
        description="Torrents beyond session.max_active_downloads / max_active_seeds wait "
        "in state queued; the queue position decides which run first.",
        examples="""\
  btctl queue 3f9a top
  btctl queue 3f9a down
""",
    ),
    Command(
        "limit", "show or set speed limits: global, or one torrent's",
        "btd.ctl.limits:cmd_limit", _setup_limit,
        description="Without HASH: the daemon's global limits (session.set), and the "
        "alternative (turtle) pair and schedule; with HASH: that torrent's (torrent.set). "
        "Without --down/--up the limits are shown. RATE is bytes per second or a number with "
        "k, M or G (binary: 500k = 500 KiB/s); 0 or none removes the limit.",
        examples="""\
  btctl limit
  btctl limit --up 1M
  btctl limit --down 5M --up 500k 3f9a
  btctl limit --up 0 3f9a
""",
    ),
    Command(
        "alt", "switch the alternative (turtle) speed limits on or off",
        "btd.ctl.limits:cmd_alt", _setup_alt,
        description="Turn the alternative limits (session.alt_download_limit, "
        "alt_upload_limit) on or off by hand; with a schedule (session.alt_schedule) the switch "
        "holds until the schedule's next edge. Without on|off the state is shown.",
        examples="""\
  btctl alt on
  btctl alt off
  btctl --json alt | jq .alt_enabled
""",
    ),
    Command(
        "move", "move a torrent's files to another folder (it keeps seeding meanwhile)",
        "btd.ctl.move:cmd_move", _setup_move,
        description="Call torrent.move: the daemon moves the torrent's files into DIR file "
        "by file, off its main thread (a rename on one file system; across file systems a "
        "copy, fsync, then the original is removed), and from then on saves to DIR. The "
        "torrent seeds from wherever each file is meanwhile. It must be seeding, paused or "
        "in error (pause a download first). A failure (DIR fills up, ...) puts every file "
        "back where it was and the torrent in state error, saying why. Files of the same "
        "names already in DIR with other content are refused, never overwritten.",
        examples="""\
  btctl move 3f9a /srv/media/done
  btctl move 3f9a ../archive && btctl info 3f9a | grep move_progress
""",
    ),
    Command(
        "label", "set a torrent's labels (replacing them), or --clear them",
        "btd.ctl.settings:cmd_label", _setup_label,
        description="Give the torrent exactly these labels (torrent.set labels=[...]); "
        "--clear removes them all. A label is 1 to 64 characters after trimming, no control "
        "characters, at most 32 per torrent. Per-label defaults (YAML labels:) apply when a "
        "torrent is added (btctl add --label), not here. `btctl list --label LABEL` lists "
        "the torrents with a label.",
        examples="""\
  btctl label 3f9a tv
  btctl label 3f9a tv hd "season 2"
  btctl label 3f9a --clear
  btctl list --label tv
""",
    ),
    Command(
        "add-peer", "give a torrent a peer to connect to",
        f"{_TORRENT}:cmd_add_peer", _setup_add_peer,
        examples="""\
  btctl add-peer 3f9a 192.0.2.7:6881
  btctl add-peer 3f9a [::1]:6881
""",
    ),
    Command(
        "reannounce", "announce torrents to their trackers now (within their min interval)",
        f"{_TORRENT}:cmd_reannounce", _many_hashes,
        examples="""\
  btctl reannounce 3f9a
  btctl reannounce $(btctl --json list --state downloading | jq -r '.[].info_hash')
""",
    ),
    Command(
        "stats", "totals over all torrents: counts by state, rates, bytes, peers",
        f"{_TORRENT}:cmd_stats",
        examples="""\
  btctl stats
  btctl --json stats | jq .download_rate
""",
    ),
    Command(
        "wait", "wait until torrents complete (exit 0), fail (exit 7) or --timeout passes (exit 5)",
        "btd.ctl.wait:cmd_wait", _many_hashes,
        description="Block until every HASH has completed (exit 0), or one failed (state "
        "error: exit 7), was removed or is unknown (exit 4), or --timeout DURATION (90, 90s, "
        "15m, 2h; default: wait for ever) passed (exit 5). A torrent already complete returns "
        "at once. Paused torrents are waited for, not resumed. Ctrl+C stops waiting and leaves "
        "the torrents running (exit 130). On a terminal a progress bar is shown on stderr; the "
        "result is one line per torrent on stdout (completed/failed/timeout/removed HASH NAME), "
        "or a JSON list with --json.",
        examples="""\
  btctl wait 3f9a                      # until complete; exit 0
  btctl wait 3f9a 8c02 --timeout 2h    # both, at most two hours (exit 5 after)
  btctl wait 3f9a --timeout 90s && mv ~/dl/debian-12.iso /srv/iso/
  btctl --json wait 3f9a | jq -r '.[0].result'
""",
    ),
    Command(
        "watch", "live full-screen view of the torrents (plain lines when piped)",
        "btd.ctl.watch:cmd_watch", _setup_watch,
        description="A live view of every torrent, driven by the daemon's events. On a "
        "terminal: up/down or j/k select, enter or i toggles details, p pauses/resumes, d "
        "removes (asks y/n; data is kept), q quits. Otherwise one line per torrent per "
        "interval: HASH8 STATE PROGRESS DOWN UP PEERS NAME.",
        examples="""\
  btctl watch
  btctl watch --plain --interval 5 | tee torrents.log
  btctl watch --plain --count 1
""",
    ),
    Command(
        "create", "make a .torrent (v1, --v2 or --hybrid) of a file or folder; --add seeds it",
        "btd.ctl.create:cmd_create", _setup_create,
        description="Hash PATH (a file, or a folder: every file under it, sorted by path, "
        "hidden files included, symlinks and special files skipped) into a .torrent (v1; v2 "
        "or hybrid v1+v2 with --v2/--hybrid, as libtorrent makes them: same info hashes) written "
        "to -o FILE (default NAME.torrent in the current folder; an existing file is kept "
        "unless --force). The piece size is chosen like libtorrent does unless --piece-size is "
        "given. Hashing uses every core. 'created by' is btd's version, 'creation date' now. "
        "With --add the daemon adds it with save path = PATH's parent folder: it checks the "
        "data and seeds. No daemon is needed without --add.",
        examples="""\
  btctl create ~/share/photos                        # writes photos.torrent here
  btctl create debian-12.iso -t http://tracker.example/announce -o /tmp/debian.torrent
  btctl create ./dataset -t udp://a.example:6969 -t http://b.example/announce --private
  btctl create ./dataset --piece-size 1M --comment "v2 of the data" --force
  btctl create ~/share/photos --add                  # and seed it from ~/share at once
  btctl create ./dataset --hybrid                    # v1 and v2 swarms (BEP 52)
""",
    ),
    Command(
        "completion", "print a bash or zsh completion script for btctl",
        "btd.ctl.completion:cmd_completion", _setup_completion,
        description="Print a completion script for SHELL (bash or zsh) on stdout, generated "
        "from btctl's own parser: commands, options, option values, and torrent hashes (asked "
        "from the daemon with `btctl --json list` when one is running). --json is ignored.",
        examples="""\
  btctl completion bash > ~/.local/share/bash-completion/completions/btctl
  source <(btctl completion bash)          # this shell only
  btctl completion zsh > ~/.zfunc/_btctl   # with fpath=(~/.zfunc $fpath) before compinit
""",
    ),
    Command(
        "manpage", "print btctl's man page (roff), generated from its help",
        "btd.ctl.help:cmd_manpage",
        description="Print the btctl(1) man page in roff on stdout, generated from the same "
        "parser and examples as --help. --json is ignored.",
        examples="""\
  btctl manpage | man -l -
  btctl manpage > /usr/local/share/man/man1/btctl.1
""",
    ),
)  # fmt: skip

COMMANDS: dict[str, Command] = {cmd.name: cmd for cmd in COMMAND_LIST}
EXAMPLES: dict[str, str] = {cmd.name: cmd.examples for cmd in COMMAND_LIST}


def command_epilog(cmd: Command) -> str | None:
    """The ``--help`` epilog of a command: its examples."""
    text = cmd.examples.rstrip()
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


class VersionAction(argparse.Action):
    """``--version``: print btd's version and exit 0 (the version is read only when asked)."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        import sys

        sys.stdout.write(f"{version_text()}\n")
        parser.exit()


def version_text() -> str:
    """``btctl (btd) 0.1.0``: importlib.metadata is loaded only here."""
    from btd.core.version import __version__

    return f"btctl (btd) {__version__}"


# -- building the tree ---------------------------------------------------------------------


def _epilog() -> str:
    codes = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)
    return (
        "socket: --socket PATH, else $BTD_SOCKET, else the daemon's default\n"
        "  ($RUNTIME_DIRECTORY/btd.sock, $XDG_RUNTIME_DIR/btd/btd.sock or /tmp/btd-UID/btd.sock)\n"
        "\nexit codes:\n" + codes
    )


def common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
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
    """The whole argparse tree; imports no command module."""
    parser = argparse.ArgumentParser(
        prog="btctl",
        description="Control a running btd daemon over its JSON-RPC socket.",
        epilog=_epilog(),
        formatter_class=HelpFormatter,
    )
    common_options(parser, top=True)
    parser.add_argument("--version", action=VersionAction, help="print btd's version and exit")
    # prog given: argparse would otherwise build a help formatter (and import shutil) now
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, prog="btctl")
    for cmd in COMMAND_LIST:
        child = sub.add_parser(
            cmd.name,
            help=cmd.help,
            description=cmd.description,
            epilog=command_epilog(cmd),
            formatter_class=HelpFormatter,
        )
        common_options(child, top=False)
        if cmd.setup is not None:
            cmd.setup(child)
    return parser


def parser_and_version() -> tuple[argparse.ArgumentParser, str]:
    """The parser and ``btd VERSION``, for the man page and the completion scripts."""
    from btd.core.version import __version__

    return build_parser(), f"btd {__version__}"


# -- walking the tree (argparse keeps its actions in private attributes) ------------------


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def options_of(parser: argparse.ArgumentParser, *, common: bool) -> list[argparse.Action]:
    """Option actions: the common (and top-level only) ones, or only the command's own."""
    shared = COMMON_OPTIONS | TOP_OPTIONS
    found = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if bool(set(action.option_strings) & shared) == common:
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

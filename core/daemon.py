"""``btd``: the daemon's entry point; the only module that imports the global reactor.

Exit statuses: 0 clean stop (SIGTERM, SIGINT, ``session.shutdown``); 78 (EX_CONFIG) a bad
configuration; 75 (EX_TEMPFAIL) another daemon holds the state directory or the control
socket; 1 any other failure to start.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from btd.core.config import Config, load_config, with_overrides
from btd.core.config_render import to_yaml
from btd.core.errors import BtdError, ConfigError
from btd.core.lock import StateLock
from btd.core.logsetup import LEVELS, LogControl
from btd.core.plugin import PluginHost, make_plugin_manager
from btd.core.plugin_config import with_location
from btd.core.sdnotify import Notifier
from btd.core.settings_store import apply_saved, load_saved
from btd.core.torrent_data import check_download_dir, make_download_dir
from btd.core.version import __version__

EX_OK = 0
EX_FAILURE = 1
EX_TEMPFAIL = 75
EX_CONFIG = 78


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="btd",
        description="btd, a BitTorrent daemon. Runs in the foreground; control it with btctl.",
        epilog="Exit status: 0 stopped cleanly, 1 failed to start, 75 already running, "
        "78 bad configuration.",
    )
    parser.add_argument("--config", type=Path, help="configuration file (YAML)")
    parser.add_argument("--state-dir", type=Path, help="resume data, lock, torrent copies")
    parser.add_argument("--socket", type=Path, help="control socket path")
    parser.add_argument("--download-dir", type=Path, help="where downloads go by default")
    parser.add_argument("--listen-port", type=int, help="peer port (0 = any free port)")
    parser.add_argument("--log-level", choices=sorted(LEVELS), help="log verbosity")
    parser.add_argument(
        "--check-config",
        nargs="?",
        const=True,
        default=None,
        metavar="FILE",
        help="validate the configuration (FILE, or the one btd would use), print it, exit",
    )
    parser.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password on stdin, print its hash for plugins.http.password_hash, exit",
    )
    parser.add_argument("--version", action="version", version=f"btd {__version__}")
    return parser.parse_args(argv)


def effective_config(args: argparse.Namespace) -> Config:
    """The configuration after the search order, the settings saved by ``session.set``
    (``<state_dir>/settings.yaml``, core/settings_store.py) and the command-line flags, in
    that order. A saved entry that no longer checks is skipped with a warning on stderr."""
    explicit = args.config
    if isinstance(args.check_config, str):
        explicit = Path(args.check_config)
    config = load_config(explicit)

    def flags(config: Config) -> Config:
        return with_overrides(
            config,
            state_dir=args.state_dir,
            socket=args.socket,
            download_dir=args.download_dir,
            listen_port=args.listen_port,
            log_level=args.log_level,
        )

    config, problems = apply_saved(config, load_saved(flags(config).daemon.state_dir))
    for problem in problems:
        print(f"btd: warning: {problem}", file=sys.stderr)
    return flags(config)


def load_plugins(config: Config) -> PluginHost:
    """Enable exactly the configured plugins and let them validate their settings."""
    try:
        plugins = make_plugin_manager(config.plugins)
    except ConfigError as exc:
        raise with_location(exc, config) from exc
    plugins.configure(config)  # the service registers the core's own hooks
    return plugins


def current_umask() -> int:
    """The process umask (reading it means setting it; this runs before any thread exists)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def apply_umask(mask: int | None, inherited: int) -> None:
    """``session.umask`` for the whole process; None means the one btd was started with."""
    os.umask(inherited if mask is None else mask)


GIL_SWITCH_INTERVAL = 0.001  # seconds; see run() and docs/SECURITY.md section 5


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.hash_password:
        return hash_password_command()
    try:
        config = effective_config(args)
        plugins = load_plugins(config)
        check_download_dir(Path(config.session.download_dir))
    except ConfigError as exc:
        print(f"btd: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    if args.check_config is not None:
        sys.stdout.write(to_yaml(config))  # its one header comment names the source
        return EX_OK
    return run(config, plugins, args)


def hash_password_command() -> int:
    """``btd --hash-password``: the password is one line on stdin (never an argument, so it
    stays out of ps and shell history); the hash goes to stdout."""
    from btd.plugins.http.passwords import hash_password

    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        print("btd: --hash-password: give the password on stdin (one line)", file=sys.stderr)
        return EX_FAILURE
    print(hash_password(line))
    return EX_OK


def run(config: Config, plugins: PluginHost, args: argparse.Namespace) -> int:
    inherited = current_umask()
    apply_umask(config.session.umask, inherited)  # before the first file or folder is made
    try:
        make_download_dir(Path(config.session.download_dir))
    except ConfigError as exc:
        print(f"btd: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    log = LogControl(config.daemon.log_level)
    log.install()
    lock = StateLock(Path(config.daemon.state_dir))
    try:
        lock.acquire()
    except BtdError as exc:
        print(f"btd: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    except OSError as exc:
        print(f"btd: cannot use the state directory: {exc}", file=sys.stderr)
        return EX_FAILURE

    from twisted.internet import reactor

    from btd.core.service import BtdService

    # The reactor thread waits for the GIL whenever it blocks (each epoll, recv, send);
    # while the pool parses a huge .torrent it gets it back only after the switch interval
    # (5 ms by default), several times per request: 1 ms keeps a reply within milliseconds.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)

    outcome = {"status": EX_OK}
    service = BtdService(
        config,
        plugins,
        reactor,
        notifier=Notifier(),
        on_level_change=log.set_level,
        on_umask_change=lambda mask: apply_umask(mask, inherited),
        reread=lambda: effective_config(args),
    )
    service.session.heap.enabled = True  # thousands of torrents out of the GC's way (core/heap.py)

    def start() -> None:
        try:
            service.startService()
        except Exception as exc:
            if isinstance(exc, ConfigError):
                outcome["status"] = EX_CONFIG
            elif isinstance(exc, BtdError):
                outcome["status"] = EX_TEMPFAIL
            else:
                outcome["status"] = EX_FAILURE
            print(f"btd: failed to start: {exc}", file=sys.stderr)
            if not isinstance(exc, BtdError):
                import traceback

                traceback.print_exc()
            reactor.stop()

    def stop() -> Any:
        return service.stopService() if service.running else None

    def reload() -> None:
        """SIGHUP: re-read the file (same search order and flags); a bad file changes nothing."""
        try:
            new = effective_config(args)
        except ConfigError as exc:
            service.reload_refused(str(exc))
            return
        service.reload(new)

    signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(reload))
    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    lock.release()
    return outcome["status"]


if __name__ == "__main__":
    sys.exit(main())

"""Run a program when something happens to a torrent (``notify_command`` plugin).

The program is started as an argv list with ``reactor.spawnProcess``: never through a
shell and without any interpolation, so a hostile torrent name (quotes, ``;``, ``$()``,
backticks, newlines) reaches the child byte-exact in ``BTD_NAME`` and is never run.
The child gets the daemon's environment plus ``BTD_EVENT``, ``BTD_INFO_HASH``,
``BTD_NAME``, ``BTD_SAVE_PATH``, ``BTD_DATA`` (JSON of ``event.data``) and the
configured ``env``. It is stopped after ``timeout`` seconds (SIGTERM, then SIGKILL);
its exit status and output (capped) are logged. At most ``max_concurrent`` children
run at once; the rest wait in a bounded queue, beyond which events are dropped.

Settings (``plugins.notify_command``)::

    max_concurrent: 4
    commands:
      - events: [completed]          # default: every event kind
        argv: [/usr/local/bin/on-done, --verbose]
        timeout: 60
        env: {MAILTO: me@example.org}
"""

from __future__ import annotations

import json
import os
import shlex
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from btd.core.errors import ConfigError
from btd.core.events import EVENT_KINDS, TorrentEvent
from btd.core.plugin import hookimpl
from btd.core.plugin_config import check_keys, plugin_settings

if TYPE_CHECKING:
    from btd.core.config_schema import Config
    from btd.core.hookspecs import SessionView

PLUGIN = "notify_command"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_CONCURRENT = 4
QUEUE_LIMIT = 100  # events waiting for a free slot; more are dropped with a warning
OUTPUT_LIMIT = 64 * 1024  # bytes of each stream (stdout, stderr) that are logged
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
COMMAND_KEYS = ("argv", "events", "timeout", "env")
TOP_KEYS = ("commands", "max_concurrent")


# -- settings (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class CommandSpec:
    """One configured command: the argv run as is, for which events, how long, extra env."""

    argv: tuple[str, ...]
    events: frozenset[str] = frozenset(EVENT_KINDS)
    timeout: float = DEFAULT_TIMEOUT
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Settings:
    commands: tuple[CommandSpec, ...] = ()
    max_concurrent: int = DEFAULT_MAX_CONCURRENT


def check_mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping, got {type(value).__name__}", key=key)
    return value


def check_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"must be a list, got {type(value).__name__}", key=key)
    return list(value)


def parse_events(value: Any, key: str) -> frozenset[str]:
    """A non-empty list of event kinds (``btd.core.events.EVENT_KINDS``)."""
    kinds = check_list(value, key)
    if not kinds:
        raise ConfigError("must name at least one event kind (leave it out for all)", key=key)
    for i, kind in enumerate(kinds):
        if kind not in EVENT_KINDS:
            raise ConfigError(
                f"unknown event kind {kind!r} (known: {', '.join(EVENT_KINDS)})",
                key=f"{key}[{i}]",
            )
    return frozenset(kinds)


def parse_seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"must be a number of seconds > 0, got {value!r}", key=key)
    return float(value)


def parse_count(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", key=key)
    return value


def _parse_argv(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError:
            words = value.split()
        hint = json.dumps(words[:6] + (["..."] if len(words) > 6 else []) or ["program"])
        raise ConfigError(
            f"must be a list [program, arg, ...], not a string (no shell is used): e.g. {hint}",
            key=key,
        )
    argv = check_list(value, key)
    if not argv:
        raise ConfigError("must name a program: [program, arg, ...]", key=key)
    for i, arg in enumerate(argv):
        if not isinstance(arg, str):
            raise ConfigError(
                f"must be a string, got {type(arg).__name__} {arg!r} (quote it in YAML)",
                key=f"{key}[{i}]",
            )
        if "\0" in arg or (i == 0 and not arg):
            raise ConfigError("must be a non-empty string without NUL", key=f"{key}[{i}]")
    return tuple(argv)


def _parse_env(value: Any, key: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for name, val in check_mapping(value, key).items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise ConfigError("variable names must be non-empty, without '='", key=f"{key}.{name}")
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise ConfigError(f"must be a string, got {val!r}", key=f"{key}.{name}")
        if "\0" in str(val):
            raise ConfigError("must not contain NUL", key=f"{key}.{name}")
        pairs.append((name, str(val)))
    return tuple(pairs)


def parse_settings(raw: Mapping[str, Any] | None) -> Settings:
    """Validate ``plugins.notify_command``; ConfigError names the exact bad key."""
    base = f"plugins.{PLUGIN}"
    raw = check_mapping(raw if raw is not None else {}, base)
    check_keys(raw, TOP_KEYS, base)
    max_concurrent = parse_count(
        raw.get("max_concurrent", DEFAULT_MAX_CONCURRENT), f"{base}.max_concurrent", 1
    )
    commands = []
    for i, entry in enumerate(check_list(raw.get("commands", []), f"{base}.commands")):
        key = f"{base}.commands[{i}]"
        entry = check_mapping(entry, key)
        check_keys(entry, COMMAND_KEYS, key)
        if "argv" not in entry:
            raise ConfigError("is required: [program, arg, ...]", key=f"{key}.argv")
        commands.append(
            CommandSpec(
                argv=_parse_argv(entry["argv"], f"{key}.argv"),
                events=(
                    parse_events(entry["events"], f"{key}.events")
                    if "events" in entry
                    else frozenset(EVENT_KINDS)
                ),
                timeout=parse_seconds(entry.get("timeout", DEFAULT_TIMEOUT), f"{key}.timeout"),
                env=_parse_env(entry.get("env", {}), f"{key}.env"),
            )
        )
    return Settings(tuple(commands), max_concurrent)


def child_env(
    event: TorrentEvent, extra: Iterable[tuple[str, str]], base: Mapping[str, str]
) -> dict[str, str]:
    """The daemon's environment, the event's BTD_* variables, then the configured ones."""
    env = dict(base)
    env.update(
        BTD_EVENT=event.kind,
        BTD_INFO_HASH=event.info_hash,
        BTD_NAME=event.name,
        BTD_SAVE_PATH=event.save_path,
        BTD_DATA=json.dumps(event.data, ensure_ascii=False, default=str),
    )
    env.update(extra)
    return env


# -- running children (Twisted) ----------------------------------------------------------


class _Child(ProcessProtocol):
    """One running command: logs its output line by line (capped) and its exit status."""

    def __init__(self, runner: CommandRunner, spec: CommandSpec, event: TorrentEvent) -> None:
        self.runner = runner
        self.spec = spec
        self.event = event
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.timed_out = False
        self._partial = {"stdout": b"", "stderr": b""}
        self._seen = {"stdout": 0, "stderr": 0}
        self._timers: list[Any] = []

    @property
    def what(self) -> str:
        return f"{self.spec.argv[0]} ({self.event.kind} {self.event.info_hash[:8]})"

    def connectionMade(self) -> None:
        self.transport.closeStdin()  # type: ignore[union-attr]
        clock = self.runner.reactor
        self._timers.append(clock.callLater(self.spec.timeout, self._expire))

    def _expire(self) -> None:
        self.timed_out = True
        self.runner.log.warn(
            "command {what} still running after {timeout:g} s: stopping it (SIGTERM)",
            what=self.what, timeout=self.spec.timeout,
        )  # fmt: skip
        self.signal("TERM")
        self._timers.append(self.runner.reactor.callLater(KILL_GRACE, self.signal, "KILL"))

    def signal(self, name: str) -> None:
        try:
            self.transport.signalProcess(name)  # type: ignore[union-attr]
        except (ProcessExitedAlready, OSError):
            pass

    def outReceived(self, data: bytes) -> None:
        self._output("stdout", data)

    def errReceived(self, data: bytes) -> None:
        self._output("stderr", data)

    def _output(self, stream: str, data: bytes) -> None:
        room = OUTPUT_LIMIT - self._seen[stream]
        self._seen[stream] += len(data)
        if room <= 0:
            return
        lines = (self._partial[stream] + data[:room]).split(b"\n")
        self._partial[stream] = lines.pop()
        for line in lines:
            self._log_line(stream, line)

    def _log_line(self, stream: str, line: bytes) -> None:
        self.runner.log.info(
            "command {what} {stream}: {line}",
            what=self.what, stream=stream, line=line.decode("utf-8", "replace").rstrip("\r"),
        )  # fmt: skip

    def processEnded(self, reason: Failure) -> None:
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        for stream in ("stdout", "stderr"):
            if self._partial[stream]:
                self._log_line(stream, self._partial[stream])
            if self._seen[stream] > OUTPUT_LIMIT:
                self.runner.log.warn(
                    "command {what} {stream}: {count} more bytes not logged",
                    what=self.what, stream=stream, count=self._seen[stream] - OUTPUT_LIMIT,
                )  # fmt: skip
        value = reason.value
        code = getattr(value, "exitCode", None)
        sig = getattr(value, "signal", None)
        if reason.check(ProcessDone):
            self.runner.log.info("command {what} exited with status 0", what=self.what)
        elif sig is not None:
            self.runner.log.warn(
                "command {what} killed by signal {signal}{late}",
                what=self.what, signal=sig, late=" (timed out)" if self.timed_out else "",
            )  # fmt: skip
        else:
            self.runner.log.warn(
                "command {what} exited with status {code}", what=self.what, code=code
            )
        self.runner._finished(self)
        self.ended.callback(None)


class CommandRunner:
    """Starts commands for events, at most ``max_concurrent`` at once, never blocking.

    ``reactor`` may be given later (``start``): events that arrive before the session
    is up wait in the queue.
    """

    def __init__(
        self,
        settings: Settings,
        reactor: Any = None,
        *,
        environ: Mapping[str, str] | Callable[[], Mapping[str, str]] = os.environ,
        log: Logger | None = None,
    ) -> None:
        self.settings = settings
        self.reactor = reactor
        self._environ = environ
        self.log = log or Logger(namespace=f"btd.plugins.{PLUGIN}")
        self.running: list[_Child] = []
        self.queue: deque[tuple[CommandSpec, TorrentEvent]] = deque()
        self.stopping = False
        self.dropped = 0

    def start(self, reactor: Any) -> None:
        self.reactor = reactor
        self._pump()

    def notify(self, event: TorrentEvent) -> None:
        """Queue every command that wants this event, then start what fits."""
        if self.stopping:
            return
        for spec in self.settings.commands:
            if event.kind not in spec.events:
                continue
            if len(self.queue) >= QUEUE_LIMIT:
                self.dropped += 1
                self.log.warn(
                    "{n} commands are waiting: {what} for {kind} {name!r} dropped",
                    n=len(self.queue), what=spec.argv[0], kind=event.kind, name=event.name,
                )  # fmt: skip
                continue
            self.queue.append((spec, event))
        self._pump()

    def _pump(self) -> None:
        while (
            self.reactor is not None
            and not self.stopping
            and self.queue
            and len(self.running) < self.settings.max_concurrent
        ):
            self._spawn(*self.queue.popleft())

    def _spawn(self, spec: CommandSpec, event: TorrentEvent) -> None:
        base = self._environ() if callable(self._environ) else self._environ
        child = _Child(self, spec, event)
        try:
            self.reactor.spawnProcess(
                child, spec.argv[0], list(spec.argv), env=child_env(event, spec.env, base)
            )
        except Exception as exc:  # noqa: BLE001 - e.g. no such program: log, never raise
            self.log.error(
                "command {what} could not be started: {error}", what=child.what, error=str(exc)
            )
            return
        self.running.append(child)

    def _finished(self, child: _Child) -> None:
        if child in self.running:
            self.running.remove(child)
        self._pump()

    def stop(self, timeout: float) -> defer.Deferred[None]:
        """Start nothing new; wait up to ``timeout`` s for running commands, then kill them."""
        self.stopping = True
        if self.queue:
            self.log.warn("shutting down: {n} queued command(s) not run", n=len(self.queue))
            self.queue.clear()
        if not self.running:
            return defer.succeed(None)
        result: defer.Deferred[None] = defer.Deferred()

        def all_ended(_: object) -> None:
            if timer.active():
                timer.cancel()
            result.callback(None)

        def give_up() -> None:
            for child in list(self.running):
                self.log.warn("shutting down: stopping command {what}", what=child.what)
                child.signal("TERM")
                self.reactor.callLater(1.0, child.signal, "KILL")

        timer = self.reactor.callLater(timeout, give_up)
        ended = [c.ended for c in self.running]
        defer.DeferredList(ended, consumeErrors=True).addCallback(all_ended)
        return result


# -- hooks -------------------------------------------------------------------------------


def stop_wait(session: SessionView) -> float:
    """How long btd_session_stopping lets commands finish: a bit less than the daemon's
    bound, so they are killed by us rather than left behind."""
    return max(0.5, float(session.config.daemon.shutdown_timeout) - 2.0)


class NotifyCommandPlugin:
    """The plugin: one CommandRunner, built from the settings (one instance per manager)."""

    def __init__(self) -> None:
        self.runner: CommandRunner | None = None

    @hookimpl
    def btd_configure(self, config: Config) -> None:
        self.runner = CommandRunner(parse_settings(plugin_settings(config, PLUGIN)))

    @hookimpl
    def btd_session_started(self, session: SessionView) -> None:
        if self.runner is not None:
            self.runner.start(session.reactor)

    @hookimpl
    def btd_torrent_event(self, event: TorrentEvent) -> None:
        if self.runner is not None:
            self.runner.notify(event)

    @hookimpl
    def btd_session_stopping(self, session: SessionView) -> defer.Deferred[None] | None:
        runner = self.runner
        if runner is None or runner.reactor is None:
            return None
        return runner.stop(stop_wait(session))

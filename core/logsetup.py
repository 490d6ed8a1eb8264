"""Logging: twisted.logger to stderr in a journald-friendly line format.

Under systemd (``$JOURNAL_STREAM`` set) each line starts with the sd-daemon(3) priority
prefix ``<N>`` so journald records the level, and carries no timestamp (journald adds
one). Elsewhere lines read ``2026-11-22T10:00:00 info btd.core.session: message``.
The level can change live (SIGHUP reload). Twisted's routine info lines (a factory
starting or stopping for every tracker announce, ports opening) are re-levelled to
debug, so that info tells the daemon's own story.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warning": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}
_SYSLOG_PRIORITY = {
    LogLevel.debug: 7,
    LogLevel.info: 6,
    LogLevel.warn: 4,
    LogLevel.error: 3,
    LogLevel.critical: 2,
}
_NAMES = {level: name for name, level in LEVELS.items()}
# Logged by twisted.internet.protocol.Factory.doStart/doStop under the factory's class name.
_FACTORY_FORMATS = frozenset({"Starting factory {factory!r}", "Stopping factory {factory!r}"})


def is_twisted_chatter(event: Mapping[str, Any]) -> bool:
    """Twisted's routine info lines: legacy ``log.msg`` ("... starting on 6881", "Starting
    protocol") and a Factory starting or stopping (one pair per HTTP tracker announce)."""
    if event.get("log_level") != LogLevel.info:
        return False
    return event.get("log_namespace") == "log_legacy" or event.get("log_format") in _FACTORY_FORMATS


def format_line(event: Mapping[str, Any], journald: bool) -> str:
    """One event as one line (tracebacks indented on following lines)."""
    level = event.get("log_level", LogLevel.info)
    namespace = event.get("log_namespace", "btd")
    text = formatEvent(dict(event))
    failure = event.get("log_failure")
    if failure is not None:
        text = f"{text}\n{failure.getTraceback()}".rstrip()
    text = text.replace("\n", "\n    ")
    if journald:
        return f"<{_SYSLOG_PRIORITY.get(level, 6)}>{namespace}: {text}\n"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(event.get("log_time", time.time())))
    return f"{stamp} {_NAMES.get(level, 'info')} {namespace}: {text}\n"


class LineObserver:
    """Writes formatted lines to a stream (stderr by default)."""

    def __init__(self, stream: IO[str] | None = None, journald: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.journald = bool(os.environ.get("JOURNAL_STREAM")) if journald is None else journald

    def __call__(self, event: Mapping[str, Any]) -> None:
        try:
            self.stream.write(format_line(event, self.journald))
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must never take the daemon down


class LogControl:
    """The installed observer and its level, which a reload may change.

    ``observer`` re-levels Twisted's chatter to debug, then filters by level.
    """

    def __init__(
        self, level: str, stream: IO[str] | None = None, journald: bool | None = None
    ) -> None:
        self.level = LEVELS[level]
        self.predicate = LogLevelFilterPredicate(defaultLogLevel=self.level)
        self._filtered = FilteringLogObserver(LineObserver(stream, journald), [self.predicate])

    def observer(self, event: Mapping[str, Any]) -> None:
        if is_twisted_chatter(event):
            event = {**event, "log_level": LogLevel.debug}
        self._filtered(event)

    def set_level(self, level: str) -> None:
        self.level = LEVELS[level]
        self.predicate.setLogLevelForNamespace("", self.level)

    def install(self) -> None:
        globalLogBeginner.beginLoggingTo([self.observer], redirectStandardIO=False)

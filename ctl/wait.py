"""`btctl wait` and `btctl add --wait`: block until torrents complete, fail or time out.

Race-free by construction: a dedicated connection subscribes to events *first*, then each
torrent's current state is read (``torrent.get``), so a torrent that is already complete
returns at once and a completion that happens in between is still seen as an event.
After that only pushed events are read (``completed``, ``error``, ``removed``; ``started``
and ``verified`` trigger a re-read, since a check can finish a torrent without a
``completed`` event). On a terminal a one-line progress bar on stderr is refreshed from
``torrent.list`` at most once a second; otherwise nothing is printed until the end.
Ctrl+C stops waiting and leaves the torrents running (exit 130, from btctl's main).
Standard library only, like the rest of btctl.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from btd.core.rpc.client import DaemonUnreachable, Notification, RemoteError, RpcClient, RpcTimeout
from btd.ctl.base import (
    EXIT_BAD_INPUT,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_TORRENT_FAILED,
    BadInput,
    Output,
    report_remote_error,
)
from btd.ctl.format import clean, format_duration, format_progress, format_rate, human_added

# Event kinds that end a wait or call for a re-read of the torrent's state.
WAIT_EVENTS = ("completed", "error", "removed", "started", "verified")
LIST_FIELDS = ["info_hash", "name", "state", "progress", "size", "left", "download_rate", "error"]
REFRESH_SECONDS = 1.0  # the progress bar re-reads torrent.list at most this often

# result -> exit code; the worst (highest) over all torrents is btctl's exit code
RESULT_EXIT = {
    "completed": EXIT_OK,
    "removed": EXIT_NOT_FOUND,
    "not_found": EXIT_NOT_FOUND,
    "timeout": EXIT_TIMEOUT,
    "failed": EXIT_TORRENT_FAILED,
}

# -- the progress line ---------------------------------------------------------------------


class ProgressBar:
    """One line on a terminal, redrawn in place with a carriage return (no colours)."""

    def __init__(self, stream: TextIO, width: int | None = None) -> None:
        self.stream = stream
        self.width = width
        self._last = 0

    @staticmethod
    def wanted(stream: TextIO) -> bool:
        """Only on a real terminal (not a pipe, a file, or TERM=dumb)."""
        try:
            return stream.isatty() and os.environ.get("TERM") != "dumb"
        except (AttributeError, ValueError):
            return False

    def draw(self, fraction: float, label: str, suffix: str = "") -> None:
        width = self.width
        if width is None:
            import shutil  # only on a terminal (asked each time: the window may be resized)

            width = shutil.get_terminal_size((80, 24)).columns
        fraction = min(max(fraction, 0.0), 1.0)
        bar_width = max(10, min(30, width // 4))
        filled = int(fraction * bar_width)
        bar = "#" * filled + "-" * (bar_width - filled)
        line = f"{label} [{bar}] {format_progress(fraction):>6}"
        if suffix:
            line += f"  {suffix}"
        line = line[: max(0, width - 1)]
        pad = " " * max(0, self._last - len(line))
        self.stream.write(f"\r{line}{pad}")
        self.stream.flush()
        self._last = len(line)

    def clear(self) -> None:
        """Blank the line so what follows starts on a clean one."""
        if self._last:
            self.stream.write("\r" + " " * self._last + "\r")
            self.stream.flush()
            self._last = 0


# -- waiting --------------------------------------------------------------------------------


@dataclass
class Target:
    """One torrent named on the command line and what became of it."""

    given: str  # the HASH (prefix) or FILE as typed
    info_hash: str | None = None
    name: str | None = None
    state: str | None = None
    progress: float | None = None
    size: int | None = None
    left: int | None = None
    rate: int = 0
    result: str | None = None  # None while waiting
    error: str | None = None
    file: str | None = None  # set for `add --wait`
    exit: int = EXIT_OK

    def finish(self, result: str, error: str | None = None, code: int | None = None) -> None:
        self.result = result
        self.error = error
        self.exit = RESULT_EXIT[result] if code is None else code

    def update(self, record: dict[str, Any]) -> None:
        """Take the fields of a torrent.get/list record; finish on error or completion."""
        self.name = record.get("name", self.name)
        self.state = record.get("state", self.state)
        self.progress = record.get("progress", self.progress)
        self.size = record.get("size", self.size)
        self.left = record.get("left", self.left)
        self.rate = record.get("download_rate") or 0
        if self.result is not None:
            return
        if self.state == "error":
            self.finish("failed", str(record.get("error") or "unknown error"))
        elif self.left == 0 or (self.left is None and (self.progress or 0) >= 1):
            self.progress = 1.0
            self.finish("completed")

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {} if self.file is None else {"file": self.file}
        data.update(
            info_hash=self.info_hash or (None if self.file else self.given), name=self.name, state=self.state,
            progress=self.progress, result=self.result, error=self.error,
        )  # fmt: skip
        return data

    def line(self) -> str:
        """The final human line (stdout); empty when stderr already said it all."""
        head = f"{self.info_hash} {clean(self.name, '-')}"
        if self.result == "completed":
            return f"completed {head}"
        if self.result == "failed":
            return f"failed {head}: {clean(self.error, '-')}"
        if self.result == "timeout":
            return f"timeout {head} ({format_progress(self.progress)})"
        if self.result == "removed":
            return f"removed {head}"
        return ""


class Waiter:
    """Subscribe, then track torrents, then wait for their events until a deadline."""

    def __init__(self, client: RpcClient, out: Output, timeout: float | None) -> None:
        self.client = client
        self.out = out
        self.started = time.monotonic()
        self.deadline = None if not timeout or timeout <= 0 else self.started + timeout
        self.timeout = timeout
        self.targets: list[Target] = []
        self.events = RpcClient(client.path, timeout=client.timeout, max_line=client.max_line)
        self.bar = ProgressBar(out.stderr) if ProgressBar.wanted(out.stderr) else None

    # -- setting up ----------------------------------------------------------------------

    def subscribe(self) -> None:
        """Before anything is read or added, so no event can slip through."""
        self.events.call("events.subscribe", {"events": list(WAIT_EVENTS)})

    def track(self, prefix: str, file: str | None = None) -> Target:
        """Resolve ``prefix`` with torrent.get and record its current state."""
        target = Target(prefix, file=file)
        self.targets.append(target)
        try:
            record = self.client.call("torrent.get", {"info_hash": prefix})
        except RemoteError as exc:
            code = report_remote_error(self.out, exc, context=f"{prefix}: ")
            target.finish("not_found", exc.message, code=code)
            return target
        target.info_hash = str(record.get("info_hash") or prefix)
        target.update(record)
        return target

    def not_added(self, file: str, message: str, code: int) -> None:
        target = Target(file, file=file)
        target.finish("not_added", message, code=code)
        self.targets.append(target)

    # -- waiting -------------------------------------------------------------------------

    def pending(self) -> list[Target]:
        return [t for t in self.targets if t.result is None]

    def refresh(self) -> None:
        """Re-read every waited-for torrent in one torrent.list call."""
        records = self.client.call("torrent.list", {"fields": LIST_FIELDS})
        by_hash = {r.get("info_hash"): r for r in records if isinstance(r, dict)}
        for target in self.pending():
            record = by_hash.get(target.info_hash)
            if record is None:
                target.finish("removed", "removed while waiting")
            else:
                target.update(record)

    def handle(self, note: Notification) -> bool:
        """Apply one event; True when the torrents should be re-read."""
        params = note.params if isinstance(note.params, dict) else {}
        kind, info_hash = params.get("event"), params.get("info_hash")
        mine = [t for t in self.pending() if t.info_hash == info_hash]
        if note.method != "event" or not mine:
            return False
        for target in mine:
            if kind == "completed":
                target.state, target.progress, target.left = "seeding", 1.0, 0
                target.finish("completed")
            elif kind == "error":
                target.state = str(params.get("state") or "error")
                target.finish("failed", str(params.get("error") or "unknown error"))
            elif kind == "removed":
                target.finish("removed", "removed while waiting")
        return kind in ("started", "verified")

    def _next_event(self, timeout: float | None) -> Notification | None:
        """One pushed event, or None when ``timeout`` passed without one."""
        try:
            for note in self.events.notifications(timeout=timeout):
                return note
        except RpcTimeout:
            return None
        raise DaemonUnreachable(self.events.path, "the daemon closed the connection")

    def wait(self) -> None:
        """Until every target has a result or the deadline passes (then: timeout)."""
        next_draw = 0.0
        try:
            while self.pending():
                now = time.monotonic()
                if self.bar is not None and now >= next_draw:
                    self.refresh()
                    self.draw()
                    next_draw = now + REFRESH_SECONDS
                    continue
                if self.deadline is not None and now >= self.deadline:
                    break
                limits = [x - now for x in (self.deadline, next_draw if self.bar else None) if x]
                note = self._next_event(max(0.0, min(limits)) if limits else None)
                if note is not None and self.handle(note):
                    self.refresh()
            if self.pending():
                try:
                    self.refresh()  # a last look: it may have completed at the boundary
                except RpcTimeout:
                    pass
                for target in self.pending():
                    target.finish("timeout")
        finally:
            if self.bar is not None:
                self.bar.clear()
            self.events.close()

    def draw(self) -> None:
        assert self.bar is not None
        known = [t for t in self.targets if t.size is not None and t.info_hash]
        size = sum(t.size or 0 for t in known)
        left = sum(t.left or 0 for t in known if t.result != "completed")
        rate = sum(t.rate for t in self.pending())
        fraction = (size - left) / size if size else 0.0
        if len(self.targets) == 1:
            label = clean(self.targets[0].name or self.targets[0].given, "-")[:40]
        else:
            done = sum(1 for t in self.targets if t.result is not None)
            label = f"{done}/{len(self.targets)} done"
        suffix = format_rate(rate)
        if rate and left:
            suffix += f"  ETA {format_duration(left / rate)}"
        elif self.pending() and not rate:
            suffix += "  waiting"
        self.bar.draw(fraction, label, suffix)

    # -- reporting -----------------------------------------------------------------------

    def report(self) -> int:
        out = self.out
        for target in self.targets:
            where = f"{target.info_hash or target.given}"
            if target.result == "failed":
                out.error(f"{where}: torrent failed: {clean(target.error, '-')}")
            elif target.result == "removed":
                out.error(f"{where}: removed while waiting")
        late = [t for t in self.targets if t.result == "timeout"]
        if late:
            out.error(
                f"gave up after {_seconds(self.timeout)} (--timeout): "
                f"{len(late)} of {len(self.targets)} not complete"
            )
        if out.json_mode:
            out.emit([t.as_json() for t in self.targets])
        else:
            for target in self.targets:
                text = target.line()
                if text:
                    out.stdout.write(text + "\n")
        return max((t.exit for t in self.targets), default=EXIT_OK)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}s" if value < 60 else format_duration(value)


# -- the commands ---------------------------------------------------------------------------


def wait_timeout(args: argparse.Namespace) -> float | None:
    """--timeout for waiting: None (not given) and 0 mean for ever."""
    value = getattr(args, "timeout", None)
    return value if value else None


def add_and_wait(
    client: RpcClient, args: argparse.Namespace, out: Output, add_one: Callable[[str], Any]
) -> int:
    """`btctl add --wait`: subscribe, add each FILE, then wait for all that were added."""
    waiter = Waiter(client, out, wait_timeout(args))
    waiter.subscribe()
    for name in args.files:
        try:
            reply = add_one(name)
        except BadInput as exc:
            out.error(str(exc))
            waiter.not_added(name, str(exc), EXIT_BAD_INPUT)
            continue
        except RemoteError as exc:
            code = report_remote_error(out, exc, context=f"{name}: ")
            waiter.not_added(name, exc.message, code)
            continue
        if not out.json_mode:
            if waiter.bar is not None:
                waiter.bar.clear()
            out.stdout.write(human_added(reply) + "\n")
            out.stdout.flush()
        waiter.track(str(reply.get("info_hash")), file=name)
    waiter.wait()
    return waiter.report()


def cmd_wait(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    waiter = Waiter(client, out, wait_timeout(args))
    waiter.subscribe()
    for prefix in _unique(args.info_hashes):
        waiter.track(prefix)
    waiter.wait()
    return waiter.report()


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))

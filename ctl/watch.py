"""`btctl watch`: a live full-screen view of every torrent (rich), or plain lines when piped.

The daemon's pushed events arrive on a second connection (``events.subscribe``), read by a
thread that pokes a pipe; the loop waits in ``select`` on that pipe and the keyboard, and
refreshes ``torrent.list`` + ``session.stats`` every ``--interval``: no busy polling. What
is shown and how keys act is pure and lives in ``btd.ctl.watch_view``; this module is
the impure rest (sockets, the terminal). rich is imported only once `watch` runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any

from btd.core.errors import BtdError
from btd.core.rpc.client import DaemonUnreachable, Notification, RemoteError, RpcClient, RpcTimeout
from btd.ctl.base import EXIT_OK, Output, UsageError
from btd.ctl.watch_view import (
    Action,
    WatchState,
    decode_keys,
    on_key,
    plain_line,
    render,
    with_data,
    with_detail,
)

EVENT_POLL = 0.5  # while the daemon is quiet, the event thread looks for "stop" this often
MIN_INTERVAL = 0.1
ACTIONS = {
    "pause": ("torrent.pause", "paused"),
    "resume": ("torrent.resume", "resumed"),
    "remove": ("torrent.remove", "removed"),
}


class EventFeed:
    """``events.subscribe`` on a connection of its own, read by a thread.

    Each batch of notifications is queued and one byte is written to ``fd``'s pipe, so the
    loop can ``select`` on it next to the keyboard. ``ended`` once the daemon hangs up.
    """

    def __init__(self, path: Any, timeout: float | None) -> None:
        self._client = RpcClient(path, timeout=timeout)
        try:
            self._client.call("events.subscribe")
        except BaseException:
            self._client.close()
            raise
        self._queue: deque[Notification] = deque()
        self.fd, self._poke_fd = os.pipe()
        self.ended = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="btctl-watch-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    for note in self._client.notifications(timeout=EVENT_POLL):
                        self._queue.append(note)
                        self._poke()
                    break  # the iterator ends when the daemon closes the connection
                except RpcTimeout:
                    continue
        except (BtdError, OSError):
            pass
        self.ended = True
        self._poke()

    def wake(self) -> None:
        """Make the loop's ``select`` return (e.g. the window was resized: redraw)."""
        self._poke()

    def _poke(self) -> None:
        try:
            os.write(self._poke_fd, b".")
        except OSError:
            pass

    def drain(self) -> list[Notification]:
        """The notifications received so far (and empty the wake-up pipe)."""
        try:
            os.read(self.fd, 4096)
        except OSError:
            pass
        notes = []
        while self._queue:
            notes.append(self._queue.popleft())
        return notes

    def close(self) -> None:
        self._stop.set()
        self._thread.join(EVENT_POLL * 4)
        self._client.close()
        for fd in (self.fd, self._poke_fd):
            os.close(fd)


def _gone(client: RpcClient) -> DaemonUnreachable:
    return DaemonUnreachable(client.path, "the daemon closed the connection")


# -- the RPC side of the screen ----------------------------------------------------------


def refresh(client: RpcClient, state: WatchState) -> WatchState:
    """One batch: the list and totals, and the detail pane's torrent when it is open."""
    want = state.selected if state.detail_open else None
    calls: list[tuple[str, Any]] = [("torrent.list", None), ("session.stats", None)]
    if want:
        calls += [("torrent.get", {"info_hash": want}), ("torrent.peers", {"info_hash": want})]
    replies = client.batch(calls)
    if isinstance(replies[0], RemoteError):
        raise replies[0]
    stats = replies[1] if isinstance(replies[1], dict) else None
    state = with_data(state, replies[0], stats)
    if want and isinstance(replies[2], dict):
        peers = replies[3] if isinstance(replies[3], list) else []
        state = with_detail(state, replies[2], peers)
    return state


def perform(client: RpcClient, state: WatchState, action: Action) -> WatchState:
    """Pause, resume or remove (never deleting data) the torrent ``action`` names."""
    method, verb = ACTIONS[action.kind]
    params: dict[str, Any] = {"info_hash": action.info_hash}
    if action.kind == "remove":
        params["delete_data"] = False
    try:
        client.call(method, params)
    except RemoteError as exc:
        return replace(state, message=f"{action.kind}: {exc.message}")
    name = next(
        (str(t.get("name")) for t in state.torrents if t.get("info_hash") == action.info_hash),
        action.info_hash[:8],
    )
    return replace(state, message=f"{verb} {name}")


def _event_message(notes: list[Notification]) -> str | None:
    for note in reversed(notes):
        params = note.params if isinstance(note.params, dict) else {}
        if note.method == "event" and params.get("event"):
            return f"{params['event']}: {params.get('name') or params.get('info_hash', '')}"
    return None


# -- the terminal ----------------------------------------------------------------------------


def _keyboard() -> tuple[int | None, bool]:
    """The fd to read keys from (stdin, else /dev/tty) and whether we opened it."""
    try:
        if sys.stdin is not None and sys.stdin.isatty():
            return sys.stdin.fileno(), False
    except (OSError, ValueError):
        pass
    try:
        return os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY), True
    except OSError:
        return None, False


def run_screen(client: RpcClient, feed: EventFeed, args: argparse.Namespace, out: Output) -> int:
    """The full-screen view until `q`/Ctrl+C; the terminal is restored whatever happens."""
    import termios
    import tty

    from rich.console import Console
    from rich.live import Live

    console = Console(file=out.stdout)
    key_fd, opened = _keyboard()
    saved = None
    state = WatchState(title=str(client.path))
    rounds = 0
    try:  # redraw at once when the window is resized (only the main thread may do this)
        resized: Any = signal.signal(signal.SIGWINCH, lambda *_: feed.wake())
    except ValueError:
        resized = None
    try:
        if key_fd is not None:
            saved = termios.tcgetattr(key_fd)
            tty.setcbreak(key_fd)
        with Live(
            console=console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live:
            due = 0.0
            while True:
                if time.monotonic() >= due:
                    state, rounds = refresh(client, state), rounds + 1
                    due = time.monotonic() + args.interval
                size = console.size
                live.update(render(state, size.width, size.height), refresh=True)
                if args.count and rounds >= args.count:
                    return EXIT_OK
                fds = [feed.fd] + ([key_fd] if key_fd is not None else [])
                ready = select.select(fds, [], [], max(0.0, due - time.monotonic()))[0]
                if feed.fd in ready:
                    message = _event_message(feed.drain())
                    if feed.ended:
                        raise _gone(client)
                    if message:
                        state, due = replace(state, message=message), 0.0
                if key_fd is not None and key_fd in ready:
                    data = os.read(key_fd, 1024)
                    for key in decode_keys(data.decode("utf-8", "replace")) if data else ["q"]:
                        state, action = on_key(state, key)
                        if action is None:
                            continue
                        if action.kind == "quit":
                            return EXIT_OK
                        if action.kind in ACTIONS:
                            state = perform(client, state, action)
                        due = 0.0  # refresh now: after an action, or to fill the detail pane
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl+C is the other way to leave
    finally:
        if resized is not None:
            signal.signal(signal.SIGWINCH, resized)
        if key_fd is not None and saved is not None:
            termios.tcsetattr(key_fd, termios.TCSADRAIN, saved)
        if opened and key_fd is not None:
            os.close(key_fd)


def run_plain(client: RpcClient, feed: EventFeed, args: argparse.Namespace, out: Output) -> int:
    """One line per torrent every interval (one JSON list per round with --json)."""
    rounds = 0
    due = time.monotonic()
    try:
        while True:
            while (wait := due - time.monotonic()) > 0:
                if select.select([feed.fd], [], [], wait)[0]:
                    feed.drain()
                    if feed.ended:
                        raise _gone(client)
            torrents = client.call("torrent.list")
            if out.json_mode:
                text = json.dumps(torrents, ensure_ascii=False, separators=(",", ":")) + "\n"
            else:
                text = "".join(plain_line(t) + "\n" for t in torrents)
            out.stdout.write(text)
            out.stdout.flush()
            rounds += 1
            if args.count and rounds >= args.count:
                return EXIT_OK
            due = max(due + args.interval, time.monotonic())
    except KeyboardInterrupt:
        return EXIT_OK


# -- the command ---------------------------------------------------------------------------


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def cmd_watch(client: RpcClient, args: argparse.Namespace, out: Output) -> int:
    if not math.isfinite(args.interval) or args.interval < MIN_INTERVAL:
        raise UsageError(f"watch: --interval must be at least {MIN_INTERVAL:g} seconds")
    if args.count is not None and args.count < 1:
        raise UsageError("watch: --count must be at least 1")
    feed = EventFeed(client.path, client.timeout)
    try:
        if _is_terminal(out.stdout) and not args.plain and not out.json_mode:
            return run_screen(client, feed, args, out)
        return run_plain(client, feed, args, out)
    finally:
        feed.close()

"""The pure half of `btctl watch`: its state, keys, piece map and screen (see btd.ctl.watch).

The screen is a function of a :class:`WatchState` (:func:`render`); keys change the state
through :func:`on_key`, which may ask the loop for an :class:`Action` (an RPC call). Nothing
here touches a terminal or a socket, so all of it is tested with a recording rich Console.
rich is imported inside functions only: btctl's other commands never load it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from btd.ctl.format import (
    clean,
    eta,
    format_bytes,
    format_duration,
    format_progress,
    format_rate,
    peer_row,
    piece_cells,
    ratio,
    trunc,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

STATE_STYLES = {
    "downloading": "cyan",
    "seeding": "green",
    "paused": "yellow",
    "checking": "magenta",
    "error": "bold red",
    "stopped": "dim",
    "queued": "blue",
}
COLUMNS = ("STATE", "PROGRESS", "DOWN", "UP", "PEERS", "ETA", "RATIO")
DROP_ORDER = ("RATIO", "PEERS", "UP", "ETA", "DOWN")  # what goes first on narrow screens
NAME_MIN = 18
KEYS_HELP = "↑/↓ j/k select · enter/i details · p pause/resume · d remove · q quit"
ESCAPES = {"\x1b[A": "up", "\x1b[B": "down", "\x1bOA": "up", "\x1bOB": "down"}


# -- state and keys (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class WatchState:
    """Everything the screen shows; replaced (never mutated) on each change."""

    torrents: tuple[dict[str, Any], ...] = ()
    stats: dict[str, Any] | None = None
    selected: str | None = None  # info hash of the highlighted torrent
    detail_open: bool = False
    detail: dict[str, Any] | None = None  # torrent.get of the selected torrent
    peers: tuple[dict[str, Any], ...] = ()  # torrent.peers of the selected torrent
    confirm: str | None = None  # info hash waiting for the y/n of a removal
    message: str = ""
    title: str = "btd"


@dataclass(frozen=True)
class Action:
    """What a key asks the loop to do: quit, refresh, detail, pause, resume or remove."""

    kind: str
    info_hash: str = ""


def selected_index(state: WatchState) -> int | None:
    for i, t in enumerate(state.torrents):
        if t.get("info_hash") == state.selected:
            return i
    return None


def selected_torrent(state: WatchState) -> dict[str, Any] | None:
    index = selected_index(state)
    return None if index is None else state.torrents[index]


def _name(state: WatchState, info_hash: str) -> str:
    for t in state.torrents:
        if t.get("info_hash") == info_hash:
            return trunc(t.get("name"), 40)
    return info_hash[:8]


def with_data(
    state: WatchState, torrents: list[dict[str, Any]], stats: dict[str, Any] | None
) -> WatchState:
    """New list and totals; the selection follows its torrent (or its row, when removed)."""
    old = selected_index(state) or 0
    hashes = [t.get("info_hash") for t in torrents]
    selected = state.selected
    if selected not in hashes:
        selected = hashes[min(old, len(hashes) - 1)] if hashes else None
    new = replace(state, torrents=tuple(torrents), stats=stats, selected=selected)
    if selected != state.selected:
        new = replace(new, detail=None, peers=())
    return new


def with_detail(
    state: WatchState, detail: dict[str, Any], peers: list[dict[str, Any]]
) -> WatchState:
    if detail.get("info_hash") != state.selected:
        return state  # the selection moved on while this was fetched
    return replace(state, detail=detail, peers=tuple(peers))


def _move(state: WatchState, step: int) -> tuple[WatchState, Action | None]:
    if not state.torrents:
        return state, None
    index = selected_index(state)
    index = 0 if index is None else max(0, min(len(state.torrents) - 1, index + step))
    target = state.torrents[index].get("info_hash")
    if target == state.selected:
        return state, None
    moved = replace(state, selected=target, detail=None, peers=())
    return moved, (Action("detail", str(target)) if state.detail_open else None)


def on_key(state: WatchState, key: str) -> tuple[WatchState, Action | None]:
    """The state after ``key`` and what, if anything, the loop must do for it."""
    if state.confirm is not None:
        target, state = state.confirm, replace(state, confirm=None)
        if key in ("y", "Y"):
            return replace(state, message=f"removing {_name(state, target)}"), Action(
                "remove", target
            )
        return replace(state, message="not removed"), None
    if key in ("q", "Q", "ctrl-c"):
        return state, Action("quit")
    if key in ("up", "k"):
        return _move(state, -1)
    if key in ("down", "j"):
        return _move(state, 1)
    if key == "r":
        return state, Action("refresh")
    if state.detail_open and key in ("enter", "i", "escape"):
        return replace(state, detail_open=False, detail=None, peers=()), None
    torrent = selected_torrent(state)
    if key not in ("enter", "i", "p", "d"):
        return state, None
    if torrent is None:
        return replace(state, message="no torrent selected"), None
    info_hash = str(torrent.get("info_hash"))
    if key in ("enter", "i"):
        return replace(state, detail_open=True, detail=None, peers=()), Action("detail", info_hash)
    if key == "p":
        kind = "resume" if torrent.get("state") in ("paused", "error") else "pause"
        return state, Action(kind, info_hash)
    question = f"remove {_name(state, info_hash)}? its data stays on disk [y/n]"
    return replace(state, confirm=info_hash, message=question), None


def decode_keys(data: str) -> list[str]:
    """Terminal input -> key names: arrows, "enter", "escape", "ctrl-c" or the character."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        if data[i] != "\x1b":
            keys.append({"\r": "enter", "\n": "enter", "\x03": "ctrl-c"}.get(data[i], data[i]))
            i += 1
            continue
        seq = next((s for s in ESCAPES if data.startswith(s, i)), None)
        if seq is not None:
            keys.append(ESCAPES[seq])
            i += len(seq)
        elif data.startswith(("\x1b[", "\x1bO"), i):  # another key's sequence: skip it
            i += 2
            while i < len(data) and not "@" <= data[i] <= "~":
                i += 1
            i += 1
        else:
            keys.append("escape")
            i += 1
    return keys


def plain_line(t: dict[str, Any]) -> str:
    """``HASH8 STATE PROGRESS% DOWN UP PEERS NAME`` (no spaces inside a field but the name)."""
    rates = (format_rate(t.get(k)).replace(" ", "") for k in ("download_rate", "upload_rate"))
    return " ".join(
        [
            str(t.get("info_hash", ""))[:8],
            str(clean(t.get("state"))),
            format_progress(t.get("progress")),
            *rates,
            str(t.get("peers")),
            str(clean(t.get("name"))),
        ]
    )


# -- rendering (pure) --------------------------------------------------------------------


def _bar(fraction: Any, width: int, style: str) -> Any:
    from rich.text import Text

    full = int(max(0.0, min(1.0, float(fraction or 0))) * width + 1e-9)
    return Text.assemble(
        ("█" * full, style), ("░" * (width - full), "grey35"), f" {format_progress(fraction):>6}"
    )


def _section(title: str, headers: tuple[str, ...], rows: list[list[Any]], cap: int) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Text(f"{title} ({len(rows)})", style="bold")
    if not rows:
        return Group(head, Text(f"  no {title}", style="dim"))
    shown = rows if len(rows) <= cap else rows[: max(0, cap - 1)]
    parts: list[Any] = [head]
    if shown:
        table = Table(*headers, box=None, padding=(0, 1), header_style="bold dim")
        for row in shown:
            table.add_row(*[Text(c) if isinstance(c, str) else c for c in row])
        parts.append(table)
    if len(shown) < len(rows):
        parts.append(Text(f"  … {len(rows) - len(shown)} more", style="dim"))
    return Group(*parts)


def _detail_pane(state: WatchState, width: int, room: int | None) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    torrent = selected_torrent(state) or {}
    name = str(clean(torrent.get("name", "")))
    d = state.detail
    if d is None:
        return Panel(Text("loading…", style="dim"), title=name, width=width)
    files, trackers = d.get("files") or [], d.get("trackers") or []
    caps = [8, 8, 4]  # files, peers, trackers
    if room is not None:  # share what is left of the screen: 2 borders, 2 lines, 3 heads
        spare = max(3, room - 2 - 2 - 6)
        caps[2] = max(1, min(len(trackers) or 1, spare // 4))
        caps[1] = max(1, min(len(state.peers) or 1, (spare - caps[2]) // 2))
        caps[0] = max(1, spare - caps[1] - caps[2])
    size, left = format_bytes(d.get("size")), format_bytes(d.get("left"))
    facts = [
        f"{d.get('info_hash')}  {size} ({left} left)",
        f"{d.get('pieces_have')}/{d.get('pieces')} pieces of {format_bytes(d.get('piece_length'))}",
        str(clean(d.get("save_path"))),
    ]
    if d.get("error"):
        facts.append(f"error: {clean(d.get('error'))}")
    cells = piece_cells(d.get("piece_map"), d.get("pieces"))
    pieces = Text.assemble(("pieces ", "bold"), (cells, "green"))
    file_rows = [
        [clean(f.get("path")), format_bytes(f.get("length")), _bar(f.get("progress"), 10, "green")]
        for f in files
    ]
    peer_rows = [peer_row(p) for p in state.peers]
    tracker_rows = [
        [
            str(t.get("tier")),
            trunc(t.get("url"), 50),
            str(t.get("status")),
            format_duration(t.get("next_announce")),
            trunc(t.get("last_error") or "-", 40),
        ]
        for t in trackers
    ]
    body = Group(
        Text(" · ".join(facts), no_wrap=True, overflow="ellipsis"),
        pieces,
        _section("files", ("PATH", "SIZE", "DONE"), file_rows, caps[0]),
        _section("peers", ("ADDRESS", "CLIENT", "HAS", "DOWN", "UP", "FLAGS"), peer_rows, caps[1]),
        _section(
            "trackers", ("TIER", "URL", "STATUS", "NEXT", "LAST ERROR"), tracker_rows, caps[2]
        ),
    )
    return Panel(body, title=name, title_align="left", width=width)


def _count(n: Any, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _totals(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "totals: -"
    states = ", ".join(f"{n} {s}" for s, n in sorted((stats.get("states") or {}).items()))
    parts = [
        _count(stats.get("torrents"), "torrent") + (f" ({states})" if states else ""),
        _count(stats.get("peers"), "peer"),
        f"↓ {format_rate(stats.get('download_rate'))}",
        f"↑ {format_rate(stats.get('upload_rate'))}",
        f"downloaded {format_bytes(stats.get('downloaded'))}",
        f"uploaded {format_bytes(stats.get('uploaded'))}",
        f"up {format_duration(stats.get('uptime'))}",
    ]
    return " · ".join(parts)


def _cells(t: dict[str, Any]) -> dict[str, Any]:
    """A torrent's cells as text (PROGRESS is filled in once the bar's width is known)."""
    return {
        "STATE": str(clean(t.get("state"))),
        "PROGRESS": "",
        "DOWN": format_rate(t.get("download_rate")),
        "UP": format_rate(t.get("upload_rate")),
        "PEERS": str(t.get("peers")),
        "ETA": eta(t),
        "RATIO": ratio(t.get("ratio")),
    }


def _fit(rows: list[dict[str, Any]], width: int) -> tuple[list[str], int]:
    """The columns to show and the bar's width, so the name keeps NAME_MIN columns."""
    bar = 10 if width < 120 else 16 if width < 160 else 24
    sizes = {head: max([len(head)] + [len(r[head]) for r in rows]) for head in COLUMNS}
    columns = list(COLUMNS)

    def need() -> int:  # each column: its cells and a 2-space gap
        sizes["PROGRESS"] = max(len("PROGRESS"), bar + 7)
        return NAME_MIN + sum(sizes[head] + 2 for head in columns)

    for head in DROP_ORDER:
        if need() <= width:
            break
        columns.remove(head)
    while need() > width and bar > 0:
        bar = bar - 1 if bar > 4 else 0
    return columns, bar


def render(state: WatchState, width: int, height: int | None = None) -> RenderableType:
    """The whole screen for ``state`` at ``width`` columns (and ``height`` rows, if known)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    count = len(state.torrents)
    list_rows = count
    room = None
    if height is not None:  # fixed lines: title, table head, totals, keys, message
        free = max(1, height - 5)
        list_rows = min(count, max(1, free // 4) if state.detail_open else free)
        room = free - max(list_rows, 1)
    index = selected_index(state) or 0
    start = max(0, min(index - list_rows // 2, count - list_rows))
    visible = state.torrents[start : start + list_rows]
    cells = [_cells(t) for t in visible]
    columns, bar = _fit(cells, width)
    table = Table(box=None, pad_edge=False, width=width, header_style="bold", padding=(0, 1))
    table.add_column("  NAME", ratio=1, min_width=8, no_wrap=True, overflow="ellipsis")
    for head in columns:
        right = head in ("DOWN", "UP", "PEERS", "RATIO")
        table.add_column(head, no_wrap=True, justify="right" if right else "left")
    for t, row in zip(visible, cells, strict=True):
        chosen = t.get("info_hash") == state.selected
        style = STATE_STYLES.get(str(t.get("state")), "")
        row["STATE"] = Text(row["STATE"], style=style)
        row["PROGRESS"] = _bar(t.get("progress"), bar, style or "white")
        table.add_row(
            Text(("› " if chosen else "  ") + str(clean(t.get("name")))),
            *[row[head] for head in columns],
            style="reverse" if chosen else None,
        )
    shown = f"{start + 1}-{start + list_rows} of {count}" if list_rows < count else str(count)
    title = Text.assemble(
        (f"btctl watch · {state.title}", "bold"),
        f" · {shown} torrent{'' if count == 1 else 's'}",
        no_wrap=True,
        overflow="ellipsis",
    )
    parts: list[Any] = [title, table if count else Text("no torrents", style="dim")]
    if state.detail_open:
        parts.append(_detail_pane(state, width, room))
    parts.append(Text(_totals(state.stats), no_wrap=True, overflow="ellipsis"))
    parts.append(Text(KEYS_HELP, style="dim", no_wrap=True, overflow="ellipsis"))
    style = "bold yellow" if state.confirm else ""
    parts.append(Text(clean(state.message), style=style, no_wrap=True, overflow="ellipsis"))
    return Group(*parts)
